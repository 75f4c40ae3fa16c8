"""POST /v1/predict: a batch of feature rows -> next-day max temperatures."""

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request, Response, status
from pydantic_core import to_json

from apps.api.auth import require
from apps.api.deps import Client, Model, services
from apps.api.rows import FastJSONRoute, documented_as, parse_rows
from apps.api.schemas import PredictRequest, PredictResponse, error_responses

# the body's JSON parsed by pydantic-core, not json.loads (same values, same errors)
router = APIRouter(route_class=FastJSONRoute)


@router.post(
    "/v1/predict",
    response_model=PredictResponse,
    tags=["predictions"],
    responses=error_responses(401, 403, 413, 422, 429, 503),
)
async def predict(
    body: Annotated[Any, documented_as(PredictRequest), Body()],
    principal: Client,
    current: Model,
    request: Request,
) -> Response:
    # validated here, not by FastAPI: column by column when valid (apps/api/rows.py),
    # with PredictRequest's own 422 otherwise; `rows` are dicts that carry their columns
    rows = parse_rows(body, PredictRequest)
    require(principal, "predict")
    s = services(request)
    if len(rows) > s.settings.max_batch_rows:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail=f"at most {s.settings.max_batch_rows} rows per request, got {len(rows)}",
        )
    choice = s.rollout.pick(principal.subject, current)
    served = choice.model
    known = served.locations
    unknown = sorted(set(rows.columns["location"]) - set(known)) if known else []
    if unknown:
        # the model one-hot encodes what it was trained on: anything else would be
        # predicted as no location at all, silently
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail=f"unknown location(s) {', '.join(unknown)}: the model "
            f"{served.version} knows {', '.join(known)}",
        )
    values = s.rollout.score(served, choice.role, rows)
    rid = request.state.request_id
    caller = {"request_id": rid, "client": principal.subject, "route": "predict"}
    s.rollout.answered(choice, rows, values, **caller)
    # Returned as bytes: FastAPI then skips re-validating what was just built (the
    # response_model still documents the shape in OpenAPI), and pydantic-core encodes
    # a 1,000-row answer in a fraction of json.dumps's time.
    return Response(
        to_json(
            {
                "model_name": served.name,
                "model_version": served.version,
                "request_id": rid,
                "predictions": _predictions(rows, values),
            }
        ),
        media_type="application/json",
    )


def _predictions(rows: Sequence[dict[str, Any]], values: list[float]) -> list[dict[str, Any]]:
    """The answer per row: its location, the value to 3 decimals, and the day predicted
    when the row gave its date."""
    columns = getattr(rows, "columns", None)
    locations = columns["location"] if columns else [r["location"] for r in rows]
    days = columns.get("date") if columns else [r.get("date") for r in rows]
    out = [
        {"location": loc, "temp_max_c": round(float(v), 3)}
        for loc, v in zip(locations, values, strict=True)
    ]
    if days is not None:
        for day, o in zip(days, out, strict=True):
            if day is not None:
                o["for_date"] = (day + dt.timedelta(days=1)).isoformat()
    return out
