"""The API's outermost layer, a pure ASGI middleware (`Edge`) wrapped around the FastAPI app:
request id, authentication before any body is read, the body size limit, security headers,
and the access metrics and logs."""

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from apps.api.auth import header_problem
from apps.api.observability import Metrics, request_id
from apps.api.settings import ApiSettings

log = logging.getLogger("dex.api")

Scope = Callable[..., Awaitable[Any]]


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
