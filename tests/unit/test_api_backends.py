"""The API's Redis client trusts the CA it is told to (Memorystore presents a private CA that
no system trust store holds), for the cache and the rate limiter alike."""

from __future__ import annotations

from typing import Any

import pytest

from apps.api.backends import Backends
from apps.api.settings import ApiSettings

pytestmark = pytest.mark.unit

DEAD = "rediss://:token@127.0.0.1:1/0"  # nothing listens: construction must not fail


def test_a_private_ca_reaches_the_cache_and_the_limiter_clients() -> None:
    backends = Backends(DEAD, "10/minute", ca_file="/etc/dex/cache-ca/ca.crt")
    pool = backends.redis.connection_pool
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/dex/cache-ca/ca.crt"
    assert pool.connection_class.__name__ == "SSLConnection"
    storage = backends.remote.storage  # type: ignore[union-attr]
    assert storage.storage.connection_pool.connection_kwargs["ssl_ca_certs"] == (
        "/etc/dex/cache-ca/ca.crt"
    )
    assert backends.redis_ok is False  # down, and said so, not raised


def test_without_a_ca_file_the_system_trust_store_verifies() -> None:
    backends = Backends(DEAD, "10/minute")
    assert "ssl_ca_certs" not in backends.redis.connection_pool.connection_kwargs


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEX_API_REDIS_CA_FILE", "/etc/dex/cache-ca/ca.crt")
    assert ApiSettings().redis_ca_file == "/etc/dex/cache-ca/ca.crt"


def test_readiness_errors_name_no_internal_address() -> None:
    from apps.api.routes.operations import without_urls

    text = (
        "ConnectionError: HTTPConnectionPool(host='mlflow.mlflow.svc.cluster.local', port=80): "
        "Max retries exceeded with url: http://mlflow.mlflow.svc.cluster.local:80/api/2.0/x "
        "(10.0.3.7:5000 refused)"
    )
    cleaned = without_urls(text)
    assert cleaned is not None
    assert "cluster.local:80/api" not in cleaned
    assert "10.0.3.7:5000" not in cleaned
    assert "<url>" in cleaned
    assert without_urls(None) is None


def test_a_cached_model_the_registry_confirms_is_no_longer_cached(tmp_path: Any) -> None:
    from apps.api.model_store import LoadedModel, ModelStore

    store = ModelStore("sqlite:///unused.db", "m", "champion", str(tmp_path))
    store.current = LoadedModel(
        name="m", version="3", alias="champion (cached)", run_id="r", metrics={},
        loaded_at="now", model=None,
    )  # fmt: skip
    store.resolve = lambda: ("3", "r")  # type: ignore[method-assign]
    assert store.refresh() is False  # same version: nothing to swap
    assert store.current.alias == "champion"
    assert store.registry_ok is True


def test_the_openapi_document_says_every_status_and_how_to_authenticate(tmp_path: Any) -> None:
    from apps.api.app import create_app

    settings = ApiSettings(tracking_uri=f"sqlite:///{tmp_path}/m.db", model_cache_dir=str(tmp_path))
    spec = create_app(settings).app.openapi()  # type: ignore[attr-defined]
    schemes = spec["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    wanted = {
        ("post", "/v1/predict"): {"200", "401", "403", "413", "422", "429", "503"},
        ("get", "/v1/forecast/{location}"): {"200", "401", "403", "404", "422", "429", "503"},
        ("get", "/v1/model"): {"200", "401", "403", "429", "503"},
        ("get", "/readyz"): {"200", "400", "503"},
    }
    for (method, path), codes in wanted.items():
        operation = spec["paths"][path][method]
        assert set(operation["responses"]) >= codes, (path, sorted(operation["responses"]))
        for code in codes:
            content = operation["responses"][code].get("content", {})
            assert "application/json" in content, (path, code)
            assert content["application/json"]["schema"], (path, code)
        if path.startswith("/v1"):
            assert operation.get("security"), path
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    assert spec["components"]["schemas"][ref]["examples"][0]["rows"][0]["location"] == "berlin"
