"""The serving API (FastAPI).

    POST /v1/predict              a batch of feature rows -> next-day max temperatures
    GET  /v1/forecast/{location}  latest gold features -> prediction (cached with a TTL)
    GET  /v1/model                what is being served
    GET  /healthz  /readyz  /metrics  /docs

Every /v1 route needs a JWT bearer token with its scope (`predict`, `forecast`, `model:read`)
and is rate limited per client. Requests carry an `X-Request-ID` (kept or made) into the JSON
logs, the prediction log and the response.
"""

# No `from __future__ import annotations`: FastAPI must see the dependency types defined
# inside create_app at definition time.

import asyncio
import datetime as dt
import gc
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Body,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Request,
    Response,
    Security,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import to_json

from apps.api.auth import Authenticator, Principal, header_problem, require
from apps.api.backends import Backends
from apps.api.docs import add_offline_docs
from apps.api.model_store import LoadedModel, ModelStore
from apps.api.observability import Metrics, configure_logging, configure_tracing, request_id
from apps.api.predlog import PredictionLog, entry
from apps.api.rollout import ChallengerStore, Rollout
from apps.api.rows import FastJSONRoute, documented_as, parse_rows
from apps.api.settings import ApiSettings
from apps.shared.lake import Lake, open_lake
from apps.shared.schema import FEATURE_COLUMNS
from contracts.lake import gold_features

log = logging.getLogger("dex.api")
LOCATION = re.compile(r"^[a-z][a-z0-9-]{0,40}$")

Scope = Callable[..., Awaitable[Any]]


class FeatureRow(BaseModel):
    """One location-day of gold features (nulls allowed where history is missing)."""

    # NaN and the infinities (JSON `NaN`, `Infinity`, `1e999`) are refused, never predicted
    # on; strict: a string or a boolean where a number belongs is an error, not coerced
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
    location: str = Field(pattern=LOCATION.pattern, examples=["berlin"])
    date: dt.date | None = Field(
        None,
        strict=False,
        description="The day these features describe (optional): the prediction is for the "
        "day after, and the feedback loop compares it with that day's actual.",
        examples=["2024-06-01"],
    )
    temp_max_c: float = Field(ge=-100, le=70)
    temp_min_c: float = Field(ge=-100, le=70)
    temp_mean_c: float = Field(ge=-100, le=70)
    precipitation_mm: float = Field(ge=0, le=2000)
    humidity_mean_pct: float = Field(ge=0, le=100)
    wind_max_ms: float = Field(ge=0, le=150)
    temp_max_lag1: float | None = Field(None, ge=-100, le=70)
    temp_max_lag2: float | None = Field(None, ge=-100, le=70)
    temp_max_lag3: float | None = Field(None, ge=-100, le=70)
    temp_max_roll7_mean: float | None = Field(None, ge=-100, le=70)
    precip_roll3_sum: float | None = Field(None, ge=0, le=6000)
    doy_sin: float = Field(ge=-1, le=1)
    doy_cos: float = Field(ge=-1, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> "FeatureRow":
        if self.temp_min_c > self.temp_max_c:
            raise ValueError(
                f"temp_min_c ({self.temp_min_c}) is above temp_max_c ({self.temp_max_c})"
            )
        return self


assert set(FeatureRow.model_fields) == {"location", "date", *FEATURE_COLUMNS}  # gold's columns


MAX_ROWS = 10_000
"""The most rows any request may carry, checked before a single row is validated: a body of
tiny rows (`{"rows":[{},{},...]}`) is refused in one error, not validated into millions."""


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "rows": [
                        {
                            "location": "berlin",
                            "temp_max_c": 5.0,
                            "temp_min_c": 1.0,
                            "temp_mean_c": 3.0,
                            "precipitation_mm": 0.0,
                            "humidity_mean_pct": 70.0,
                            "wind_max_ms": 4.0,
                            "temp_max_lag1": 4.0,
                            "doy_sin": 0.1,
                            "doy_cos": 0.99,
                        }
                    ]
                }
            ]
        },
    )
    rows: list[FeatureRow] = Field(min_length=1, max_length=MAX_ROWS)


class Prediction(BaseModel):
    location: str
    temp_max_c: float
    for_date: dt.date | None = None
    """The day predicted, when the row gave its date."""


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Prediction]
    request_id: str


class Forecast(BaseModel):
    location: str
    date: dt.date
    """The day forecast (the day after the latest features)."""
    temp_max_c: float
    based_on: dt.date
    model_version: str
    cached: bool


class ErrorBody(BaseModel):
    """Every error the API answers: what went wrong, and the request's id."""

    detail: str
    request_id: str | None = None


class FieldError(BaseModel):
    type: str | None
    loc: list[str]
    msg: str
    input: str
    """The offending value, as JSON-safe text (at most 200 characters)."""


class ValidationErrorBody(BaseModel):
    """A 422: at most 50 field errors, how many there were, and the request's id."""

    detail: list[FieldError]
    errors: int
    request_id: str | None = None


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool]
    degraded: list[str]
    serving: dict[str, Any] | None
    registry_error: str | None


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, each with its body's schema."""
    text = {
        401: "missing, malformed, expired or foreign bearer token",
        403: "the token lacks the route's scope",
        404: "no such location in the lake",
        413: "request body too large",
        422: "invalid request",
        429: "rate limit exceeded (see Retry-After)",
        503: "no model served yet, or a dependency is down",
    }
    return {
        c: {"model": ValidationErrorBody if c == 422 else ErrorBody, "description": text[c]}
        for c in codes
    }


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"permissions-policy", b"geolocation=(), camera=(), microphone=()"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class Edge:
    """Pure ASGI middleware: request id, body size limit, security headers, access metrics and
    logs. (Starlette's BaseHTTPMiddleware would cost a task per request.)"""

    def __init__(self, app: Any, settings: ApiSettings, metrics: Metrics) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Scope, send: Scope) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:128]
        if not rid or not re.fullmatch(r"[A-Za-z0-9._:-]+", rid):
            rid = uuid.uuid4().hex
        token = request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500}
        if scope["path"].startswith("/v1/") and scope.get("method") != "OPTIONS":
            # authenticate before parsing: no token, no body read (401, not 400/422)
            auth = headers.get(b"authorization")
            problem = header_problem(auth.decode("latin-1") if auth is not None else None)
            if problem is not None:
                await self._unauthorized(send, rid, problem)
                self._observe(scope, 401, started)
                request_id.reset(token)
                return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._too_large(send, rid)
            self._observe(scope, 413, started)
            request_id.reset(token)
            return
        received = 0

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    state["too_large"] = True
                    raise _BodyTooLarge
            return message

        async def send_wrapper(message: dict[str, Any]) -> None:
            if state.get("too_large"):
                # a body without a Content-Length (chunked) that outgrew the limit: whatever
                # the app made of the interrupted read (FastAPI: 400), the answer is 413
                if message["type"] == "http.response.start":
                    await self._too_large(send, rid)
                    state["status"] = 413
                return
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                extra = [(b"x-request-id", rid.encode()), *SECURITY_HEADERS]
                if scope["path"].startswith("/v1"):
                    extra += [API_CSP, (b"cache-control", b"no-store")]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except _BodyTooLarge:
            if state["status"] != 413:
                await self._too_large(send, rid)
                state["status"] = 413
        finally:
            self._observe(scope, state["status"], started)
            request_id.reset(token)

    async def _unauthorized(self, send: Scope, rid: str, detail: str) -> None:
        body = json.dumps({"detail": detail, "request_id": rid}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer error="invalid_request"'),
                    (b"x-request-id", rid.encode()),
                    *SECURITY_HEADERS,
                    API_CSP,
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _too_large(self, send: Scope, rid: str) -> None:
        body = b'{"detail":"request body too large"}'
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", rid.encode()),
                    *SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _observe(self, scope: dict[str, Any], status_code: int, started: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(path, scope.get("method", ""), str(status_code)).inc()
        self.metrics.latency.labels(path, scope.get("method", "")).observe(elapsed)
        if path not in ("/metrics", "/healthz", "/readyz"):
            log.info(
                "%s %s %s",
                scope.get("method"),
                scope.get("path"),
                status_code,
                extra={
                    "route": path,
                    "status": status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )


class _BodyTooLarge(Exception):
    pass


_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\",)]+", re.IGNORECASE)
_HOST_PORT = re.compile(r"\b(?:[a-z0-9-]+\.)*[a-z0-9-]+:\d{2,5}\b", re.IGNORECASE)


def _without_urls(text: str | None) -> str | None:
    """An error message for anyone to read: URLs and host:port pairs replaced."""
    if text is None:
        return None
    return _HOST_PORT.sub("<host>", _URL.sub("<url>", text))


def _safe_text(value: object) -> str:
    """Text any JSON encoder and UTF-8 accept: lone surrogates escaped."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


class Features:
    """The latest gold features per location, re-read at most once a minute."""

    def __init__(self, lake: Lake | None) -> None:
        self.lake = lake
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def latest(self, location: str) -> dict[str, Any] | None:
        hit = self._cache.get(location)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        row = None
        if self.lake is not None:
            rel = gold_features(location)
            if self.lake.exists(*rel):
                table = self.lake.read_parquet(*rel)
                if table.num_rows:
                    row = table.slice(table.num_rows - 1).to_pylist()[0]
        self._cache[location] = (time.monotonic() + 60, row)
        return row


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


def create_app(settings: ApiSettings | None = None, store: ModelStore | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    configure_logging(settings.log_level)
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
    features = Features(lake)
    authenticator = Authenticator(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if store.current is None:
            await asyncio.to_thread(store.load)
        if challenger is not None:
            await asyncio.to_thread(challenger.load)
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
    app.state.store, app.state.backends, app.state.predlog = store, backends, predlog
    app.state.rollout = rollout
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    configure_tracing(app, settings.otlp_endpoint)

    # Dependencies are coroutines: a plain `def` would cost a thread-pool round trip per
    # request. What may block on the network (a JWKS fetch, Redis) still goes to a thread.
    bearer = HTTPBearer(auto_error=False, description="A JWT with the route's scope.")

    async def client(
        request: Request,
        _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
    ) -> Principal:
        token = authenticator.token_of(request)
        principal = authenticator.remembered(token)
        if principal is None:
            if authenticator.verifies_remotely:
                principal = await asyncio.to_thread(authenticator.verify, token)
            else:
                principal = authenticator.verify(token)
        if backends.remote is not None:
            wait = await asyncio.to_thread(backends.hit, principal.subject)
        else:
            wait = backends.hit(principal.subject)
        if wait is not None:
            metrics.limited.inc()
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=f"rate limit {settings.rate_limit} exceeded",
                headers={"Retry-After": str(wait)},
            )
        return principal

    Client = Annotated[Principal, Depends(client)]

    async def model() -> LoadedModel:
        current = store.current
        if current is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="no model loaded yet: the registry has no "
                f"'{settings.model_alias}' and no local copy exists",
            )
        metrics.model.labels(current.name, current.version, current.alias).set(1)
        return current

    Model = Annotated[LoadedModel, Depends(model)]

    # the body's JSON parsed by pydantic-core, not json.loads (same values, same errors)
    fast_json = APIRouter(route_class=FastJSONRoute)

    @fast_json.post(
        "/v1/predict",
        response_model=PredictResponse,
        tags=["predictions"],
        responses=_errors(401, 403, 413, 422, 429, 503),
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
        if len(rows) > settings.max_batch_rows:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                detail=f"at most {settings.max_batch_rows} rows per request, got {len(rows)}",
            )
        choice = rollout.pick(principal.subject, current)
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
        values = rollout.score(served, choice.role, rows)
        rid = request.state.request_id
        metrics.predictions.labels(served.version).inc(len(values))
        fields = {"request_id": rid, "client": principal.subject, "route": "predict"}
        if predlog.enabled:
            predlog.add(
                entry(
                    **fields,
                    model_name=served.name,
                    model_version=served.version,
                    role=choice.role,
                    served=True,
                    inputs=rows,
                    outputs=values,
                )
            )
        if choice.shadow is not None:
            rollout.shadow(choice.shadow, rows, **fields)
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

    app.include_router(fast_json)

    @app.get(
        "/v1/forecast/{location}",
        response_model=Forecast,
        tags=["predictions"],
        responses=_errors(401, 403, 404, 422, 429, 503),
    )
    async def forecast(
        principal: Client,
        current: Model,
        request: Request,
        location: Annotated[str, Path(pattern=LOCATION.pattern)],
    ) -> Forecast:
        require(principal, "forecast")
        choice = rollout.pick(principal.subject, current)
        served = choice.model
        key = f"dex:forecast:{served.name}:{served.version}:{location}"
        cached = backends.cache_get(key)
        if cached is not None:
            metrics.cache.labels("hit").inc()
            return Forecast(**{**cached, "cached": True})
        metrics.cache.labels("miss").inc()
        row = await asyncio.to_thread(features.latest, location)
        if row is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"no gold features for location '{location}'"
            )
        inputs = {k: row[k] for k in ("location", "date", *FEATURE_COLUMNS)}
        (value,) = rollout.score(served, choice.role, [inputs])
        result = {
            "location": location,
            "date": (row["date"] + dt.timedelta(days=1)).isoformat(),
            "temp_max_c": round(value, 3),
            "based_on": row["date"].isoformat(),
            "model_version": served.version,
        }
        backends.cache_set(key, result, settings.forecast_ttl_seconds)
        metrics.predictions.labels(served.version).inc()
        fields = {
            "request_id": request.state.request_id,
            "client": principal.subject,
            "route": "forecast",
        }
        predlog.add(
            entry(
                **fields,
                model_name=served.name,
                model_version=served.version,
                role=choice.role,
                served=True,
                inputs=[inputs],
                outputs=[value],
            )
        )
        if choice.shadow is not None:
            rollout.shadow(choice.shadow, [inputs], **fields)
        return Forecast(**result, cached=False)

    @app.get("/v1/model", tags=["model"], responses=_errors(401, 403, 429, 503))
    async def model_info(principal: Client, current: Model) -> dict[str, Any]:
        require(principal, "model:read")
        return {**current.describe(), "rollout": rollout.describe()}

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={
            200: {"model": Readiness, "description": "ready"},
            400: {"model": ErrorBody, "description": "unknown readiness check"},
            503: {"model": Readiness, "description": "not ready: what is degraded"},
        },
    )
    async def readyz(only: str | None = None) -> JSONResponse:
        """Ready when the model is loaded and Redis and the registry answer. `?only=serving`
        judges only the named checks (comma-separated). The Kubernetes readiness probe asks
        for `serving` alone: a pod is routable once it serves the registry's current model,
        or the registry answered that none exists yet (day 0: predictions answer 503 until
        the first training), so a first deploy finishes, and a Redis or MLflow outage
        degrades but never unroutes a pod that still serves predictions."""
        redis_ok = await asyncio.to_thread(backends.ping)
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
            "registry_error": _without_urls(store.last_error),
        }
        return JSONResponse(body, status_code=200 if not degraded else 503)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # at most 50 errors, each with what was wrong and where; the offending input is
        # echoed only as JSON-safe text (no NaN, no lone surrogate can break the answer)
        errors = [
            {
                "type": e.get("type"),
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": _safe_text(e.get("msg", "")),
                "input": _safe_text(repr(e.get("input")))[:200],
            }
            for e in exc.errors()[:50]
        ]
        return JSONResponse(
            {"detail": errors, "errors": len(exc.errors()), "request_id": request_id.get()},
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        # the connection's state is unknown after a crash: say it will close
        return JSONResponse(
            {"detail": "internal error", "request_id": request_id.get()},
            status_code=500,
            headers={"Connection": "close"},
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail, "request_id": request_id.get()},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    return Edge(app, settings, metrics)  # type: ignore[return-value]
