"""GET /v1/model: what is being served, and the rollout around it."""

from typing import Any

from fastapi import APIRouter, Request

from apps.api.auth import require
from apps.api.deps import Client, Model, services
from apps.api.schemas import error_responses

router = APIRouter()


@router.get("/v1/model", tags=["model"], responses=error_responses(401, 403, 429, 503))
async def model_info(principal: Client, current: Model, request: Request) -> dict[str, Any]:
    require(principal, "model:read")
    return {**current.describe(), "rollout": services(request).rollout.describe()}
