"""GET /healthz, /readyz and /metrics: what the kubelet and Prometheus ask."""

import asyncio
import re

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from apps.api.deps import services
from apps.api.schemas import ErrorBody, Readiness

router = APIRouter()

_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\",)]+", re.IGNORECASE)
_HOST_PORT = re.compile(r"\b(?:[a-z0-9-]+\.)*[a-z0-9-]+:\d{2,5}\b", re.IGNORECASE)


def without_urls(text: str | None) -> str | None:
    """An error message for anyone to read: URLs and host:port pairs replaced."""
    if text is None:
        return None
    return _HOST_PORT.sub("<host>", _URL.sub("<url>", text))


@router.get("/healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.get(
    "/readyz",
    tags=["operations"],
    responses={
        200: {"model": Readiness, "description": "ready"},
        400: {"model": ErrorBody, "description": "unknown readiness check"},
        503: {"model": Readiness, "description": "not ready: what is degraded"},
    },
)
async def readyz(request: Request, only: str | None = None) -> JSONResponse:
    """Ready when the model is loaded and Redis and the registry answer. `?only=serving`
    judges only the named checks (comma-separated). The Kubernetes readiness probe asks
    for `serving` alone: a pod is routable once it serves the registry's current model,
    or the registry answered that none exists yet (day 0: predictions answer 503 until
    the first training), so a first deploy finishes, and a Redis or MLflow outage
    degrades but never unroutes a pod that still serves predictions."""
    s = services(request)
    store = s.store
    redis_ok = await asyncio.to_thread(s.backends.ping)
    checks = {
        "serving": store.serving,
        "model": store.current is not None,
        "redis": redis_ok,
        "registry": store.registry_ok,
    }
    judged = list(checks) if only is None else [c.strip() for c in only.split(",")]
    unknown = [c for c in judged if c not in checks]
    if unknown:
        return JSONResponse(
            {"detail": f"unknown readiness check(s) {unknown}; known: {sorted(checks)}"},
            status_code=400,
        )
    degraded = [name for name in judged if not checks[name]]
    body = {
        "ready": not degraded,
        "checks": checks,
        "degraded": degraded,
        "serving": store.current.describe() if store.current else None,
        # the kind of failure, never the internal address it was reached at
        "registry_error": without_urls(store.last_error),
    }
    return JSONResponse(body, status_code=200 if not degraded else 503)


@router.get("/metrics", tags=["operations"], include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    registry = services(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
