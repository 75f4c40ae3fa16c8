"""The interactive API docs (Swagger UI at /docs), served by the API itself: no CDN.

FastAPI's own /docs page loads Swagger UI's JavaScript and CSS from cdn.jsdelivr.net, which a
cluster without egress (or a browser behind a strict proxy) cannot reach. Here the same page
references files shipped in the image by the `fastapi-offline` package (Swagger UI's dist
bundle, stylesheet and a favicon), mounted under `STATIC_PATH`. The page carries a Content
Security Policy that allows its one inline script by hash and loads nothing from elsewhere.
The OpenAPI document's bearer scheme gives the page its Authorize button: paste a token there.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
STATIC_PATH = "/docs/static"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def docs_csp(page: bytes) -> str:
    """A CSP for the docs page: its own origin only, and its inline script by hash.

    Swagger UI styles elements inline and draws icons from `data:` URIs; it fetches the
    OpenAPI document, and "Try it out" calls the API, on the same origin."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()}'"
        for m in _INLINE_SCRIPT.finditer(page)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'"
    )


def add_offline_docs(app: FastAPI) -> None:
    """Serve /docs and its static files from the API (the app is made with `docs_url=None`
    and `redoc_url=None`)."""
    app.mount(
        STATIC_PATH,
        StaticFiles(directory=str(files("fastapi_offline") / "static")),
        name="docs-static",
    )

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")  # behind a proxy that strips a prefix
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - docs",
            swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PATH}/favicon.png",
            # no validity badge fetched from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = docs_csp(bytes(page.body))
        return page
