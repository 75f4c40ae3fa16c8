"""The docs page works without a CDN (issue #18): /docs references only the API's own files,
those answer with the right content types, the page's CSP admits its inline script (and
nothing from elsewhere), and the OpenAPI document has the bearer scheme the page's Authorize
button takes a token for."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from apps.api.app import create_app
from apps.api.model_store import ModelStore
from apps.api.settings import ApiSettings

pytestmark = pytest.mark.integration

SECRET = "docs-test-secret-" + "x" * 32


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The app in-process, without its lifespan: the docs need no model."""
    registry = f"sqlite:///{tmp_path}/mlflow.db"
    store = ModelStore(registry, "m", "champion", str(tmp_path / "cache"))
    settings = ApiSettings(
        jwt_secret=SECRET, tracking_uri=registry, model_cache_dir=str(tmp_path / "cache")
    )
    c = TestClient(create_app(settings, store=store), base_url="http://api.test")
    yield c  # not entered: no lifespan
    c.close()


def test_docs_load_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert not re.search(r"(?i)\b(?:https?:)?//", html), "the page names another host"
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs, html
    assert all(r.startswith("/") and not r.startswith("//") for r in refs), refs
    kinds = {
        "swagger-ui-bundle.js": "javascript",
        "swagger-ui.css": "text/css",
        "favicon.png": "image/png",
    }
    for ref in refs:
        answer = client.get(ref)
        assert answer.status_code == 200, ref
        kind = next(v for k, v in kinds.items() if ref.endswith(k))
        assert kind in answer.headers["content-type"], (ref, answer.headers["content-type"])
        assert len(answer.content) > 1000 or kind == "image/png"
    assert {r.rsplit("/", 1)[-1] for r in refs} == set(kinds)
    # the default pages are gone: nothing serves the CDN version any more
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 404


def test_the_pages_csp_admits_its_inline_script_and_no_other_origin(
    client: TestClient,
) -> None:
    page = client.get("/docs")
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    (inline,) = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in directives["script-src"].split()
    assert "SwaggerUIBundle(" in inline
    assert "'/openapi.json'" in inline
    for directive in directives.values():
        for source in directive.split():
            assert source.startswith("'") or source == "data:", (source, csp)
    assert "unsafe-inline" not in directives["script-src"]
    assert page.headers["x-frame-options"] == "DENY"


def test_openapi_has_the_bearer_scheme_on_every_v1_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    bearer = [n for n, s in schemes.items() if (s["type"], s.get("scheme")) == ("http", "bearer")]
    assert bearer, schemes
    for path, item in spec["paths"].items():
        if path.startswith("/v1/"):
            for operation in item.values():
                assert {"HTTPBearer": []} in operation["security"], path
    assert not any(p.startswith("/docs") for p in spec["paths"])
