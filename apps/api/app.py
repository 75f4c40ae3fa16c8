"""The serving API (FastAPI).

    POST /v1/predict              a batch of feature rows -> next-day max temperatures
    GET  /v1/forecast/{location}  latest gold features -> prediction (cached with a TTL)
    GET  /v1/model                what is being served
    GET  /healthz  /readyz  /metrics  /docs

Every /v1 route needs a JWT bearer token with its scope (`predict`, `forecast`, `model:read`)
and is rate limited per client. Requests carry an `X-Request-ID` (kept or made) into the JSON
logs, the prediction log and the response.

Laid out the way FastAPI projects are: one `APIRouter` per resource (apps/api/routes/), the
dependencies at module level (apps/api/deps.py) reading the `Services` that `create_app` keeps
on `app.state`, the bodies in apps/api/schemas.py, the error answers in apps/api/errors.py and
the outermost ASGI layer in apps/api/edge.py.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from apps.api.auth import Authenticator
from apps.api.backends import Backends
from apps.api.deps import Services
from apps.api.docs import add_offline_docs
from apps.api.edge import Edge
from apps.api.errors import add_error_handlers
from apps.api.features import Features
from apps.api.model_store import ModelStore
from apps.api.observability import Metrics, configure_logging, configure_tracing
from apps.api.predlog import PredictionLog
from apps.api.rollout import ChallengerStore, Rollout
from apps.api.routes import forecast, model, operations, predict
from apps.api.schemas import MAX_ROWS, FeatureRow, PredictRequest
from apps.api.settings import ApiSettings
from apps.shared.lake import open_lake

__all__ = ["MAX_ROWS", "FeatureRow", "Features", "PredictRequest", "create_app"]

log = logging.getLogger("dex.api")


def create_app(settings: ApiSettings | None = None, store: ModelStore | None = None) -> FastAPI:
    """The API, wrapped in its `Edge` (typed as the FastAPI app it wraps: `.app` reaches it)."""
    settings = settings or ApiSettings()
    configure_logging(settings.log_level)
    services = make_services(settings, store)
    app = FastAPI(
        title="DEX serving API",
        version="0.1.0",
        lifespan=lifespan,
        description="Next-day maximum temperature per location, from the registry's "
        "champion model.",
        docs_url=None,  # served from the API's own files below, not from a CDN
        redoc_url=None,
    )
    add_offline_docs(app)
    app.state.services = services
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    configure_tracing(app, settings.otlp_endpoint)
    for resource in (predict, forecast, model, operations):  # their order in OpenAPI
        app.include_router(resource.router)
    add_error_handlers(app)
    return Edge(app, settings, services.metrics)  # type: ignore[return-value]


def make_services(settings: ApiSettings, store: ModelStore | None = None) -> Services:
    """The app's long-lived parts, from its settings (`store`: a champion store made
    elsewhere, e.g. by a test)."""
    metrics = Metrics()
    store = store or ModelStore(
        settings.tracking_uri,
        settings.model_name,
        settings.model_alias,
        settings.model_cache_dir,
        settings.refresh_seconds,
        breaker_seconds=settings.registry_breaker_seconds,
    )
    backends = Backends(
        settings.redis_url,
        settings.rate_limit,
        settings.redis_ca_file,
        settings.redis_breaker_seconds,
    )
    lake = open_lake(settings.lake_url) if settings.lake_url else None
    predlog = PredictionLog(lake, settings.prediction_log_flush_seconds)
    challenger = (
        ChallengerStore(
            settings.tracking_uri,
            settings.model_name,
            settings.challenger_alias,
            f"{settings.model_cache_dir}/challenger",
            settings.refresh_seconds,
            breaker_seconds=settings.registry_breaker_seconds,
        )
        if settings.rollout != "off"
        else None
    )
    rollout = Rollout(
        settings.rollout,
        store,
        challenger,
        metrics,
        predlog,
        canary_share=settings.canary_share,
        shadow_share=settings.shadow_share,
    )
    return Services(
        settings=settings,
        metrics=metrics,
        store=store,
        backends=backends,
        predlog=predlog,
        rollout=rollout,
        features=Features(lake),
        authenticator=Authenticator(settings),
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    s: Services = app.state.services
    store, rollout, predlog = s.store, s.rollout, s.predlog
    if store.current is None:
        await asyncio.to_thread(store.load)
    if rollout.challenger is not None:
        await asyncio.to_thread(rollout.challenger.load)
    # Everything loaded so far (MLflow, pandas, scikit-learn, the model) lives as long as
    # the process: move it out of the collector's reach, or each full collection walks
    # millions of objects and stalls requests for ~100 ms.
    gc.collect()
    gc.freeze()
    store.start()
    rollout.start()
    predlog.start()
    log.info("api started", extra={"status": "model" if store.current else "no model"})
    yield
    store.stop()
    await asyncio.to_thread(rollout.stop)  # queued shadow scores are logged first
    await asyncio.to_thread(predlog.close)  # nothing buffered is lost on shutdown
