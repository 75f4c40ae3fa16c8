"""The API's circuit breaker in front of a real Redis that freezes (SIGSTOP: it accepts
connections and never answers) and thaws (SIGCONT): while it is frozen, requests stop waiting
out a socket timeout each and take the in-process path; the outage is logged once; when Redis
answers again, the API goes back to it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.api.backends import BREAKER_FAILURES, Backends
from tests.integration.conftest import free_port, redis_server

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    with redis_server(tmp_path, ["--port", str(port)]) as proc:
        yield f"redis://127.0.0.1:{port}/0", proc


def test_a_frozen_redis_opens_the_breaker_and_a_thawed_one_closes_it(
    redis_process: tuple[str, subprocess.Popen[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    url, proc = redis_process
    backends = Backends(url, "1000/minute", breaker_seconds=1.0)
    assert backends.hit("a") is None
    assert backends.redis_ok is True
    calls = {"n": 0}
    real_hit = backends.remote.hit  # type: ignore[union-attr]

    def counted(*args: Any) -> Any:
        calls["n"] += 1
        return real_hit(*args)

    backends.remote.hit = counted  # type: ignore[union-attr, method-assign]
    caplog.set_level(logging.INFO, logger="dex.api.backends")
    os.kill(proc.pid, signal.SIGSTOP)
    for _ in range(40):
        assert backends.hit("a") is None  # served in-process, never an error
    # only the failures that opened the breaker waited on Redis; the rest did not touch it
    assert calls["n"] == BREAKER_FAILURES
    assert backends.redis_ok is False
    opened = [r for r in caplog.records if "redis failing" in r.getMessage()]
    assert len(opened) == 1  # once per outage, not once per request
    assert backends.cache_get("k") is None  # the cache falls back too
    backends.cache_set("k", {"v": 1}, ttl=60)
    assert backends.cache_get("k") == {"v": 1}
    os.kill(proc.pid, signal.SIGCONT)
    time.sleep(1.2)  # the breaker's retry interval
    assert backends.hit("a") is None
    assert calls["n"] == BREAKER_FAILURES + 1  # the half-open try went to Redis, and worked
    assert backends.redis_ok is True
    assert any("answers again" in r.getMessage() for r in caplog.records)
