"""GET /v1/forecast/{location}: the latest gold features -> a prediction, cached with a TTL."""

import asyncio
import datetime as dt
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, status

from apps.api.auth import require
from apps.api.deps import Client, Model, services
from apps.api.schemas import LOCATION, Forecast, error_responses
from apps.shared.schema import FEATURE_COLUMNS

router = APIRouter()


@router.get(
    "/v1/forecast/{location}",
    response_model=Forecast,
    tags=["predictions"],
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
async def forecast(
    principal: Client,
    current: Model,
    request: Request,
    location: Annotated[str, Path(pattern=LOCATION.pattern)],
) -> Forecast:
    require(principal, "forecast")
    s = services(request)
    choice = s.rollout.pick(principal.subject, current)
    served = choice.model
    key = f"dex:forecast:{served.name}:{served.version}:{location}"
    cached = s.backends.cache_get(key)
    if cached is not None:
        s.metrics.cache.labels("hit").inc()
        return Forecast(**{**cached, "cached": True})
    s.metrics.cache.labels("miss").inc()
    row = await asyncio.to_thread(s.features.latest, location)
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no gold features for location '{location}'"
        )
    inputs = {k: row[k] for k in ("location", "date", *FEATURE_COLUMNS)}
    (value,) = s.rollout.score(served, choice.role, [inputs])
    result = {
        "location": location,
        "date": (row["date"] + dt.timedelta(days=1)).isoformat(),
        "temp_max_c": round(value, 3),
        "based_on": row["date"].isoformat(),
        "model_version": served.version,
    }
    s.backends.cache_set(key, result, s.settings.forecast_ttl_seconds)
    s.rollout.answered(
        choice,
        [inputs],
        [value],
        request_id=request.state.request_id,
        client=principal.subject,
        route="forecast",
    )
    return Forecast(**result, cached=False)
