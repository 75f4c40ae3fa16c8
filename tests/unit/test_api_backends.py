"""The API's Redis client trusts the CA it is told to (Memorystore presents a private CA that
no system trust store holds), for the cache and the rate limiter alike."""

from __future__ import annotations

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
