"""The API's error answers: every error is JSON with its `detail` and the request's id
(`ErrorBody`, `ValidationErrorBody` in apps/api/schemas.py)."""

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from apps.api.observability import request_id

log = logging.getLogger("dex.api")


def _safe_text(value: object) -> str:
    """Text any JSON encoder and UTF-8 accept: lone surrogates escaped."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


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


async def crashed(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    # the connection's state is unknown after a crash: say it will close
    return JSONResponse(
        {"detail": "internal error", "request_id": request_id.get()},
        status_code=500,
        headers={"Connection": "close"},
    )


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse(
        {"detail": exc.detail, "request_id": request_id.get()},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, crashed)
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
