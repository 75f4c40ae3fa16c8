"""The API in RS256 mode against a real JWKS endpoint (an HTTP server in a subprocess) that
freezes (SIGSTOP: it accepts connections and never answers) and thaws (SIGCONT), issue #18:
while it is frozen, tokens signed with a key fetched before keep verifying and no request
waits out a fetch timeout; the breaker opens after a few failed background fetches and the
outage is logged once; a token naming an unknown key gets a fast 503 with Retry-After instead
of a timeout; when the endpoint answers again the breaker closes and a key rotated in during
the outage verifies."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pybreaker
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import HTTPException

import apps.api.app as api
from apps.api.auth import JWKS_FAILURES, Authenticator, JwksKeys
from apps.api.model_store import LoadedModel, ModelStore
from apps.api.settings import ApiSettings
from tests.integration.conftest import free_port, reachable

pytestmark = pytest.mark.integration

TIMEOUT = 0.5
"""The API's JWKS fetch timeout in this test: no request may take this long."""
BREAKER = 3.0
ISSUER = "https://idp.example"

JWKS_SERVER = """
import http.server, sys

port, path = int(sys.argv[1]), sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64(numbers.n), "e": b64(numbers.e)}  # fmt: skip


@pytest.fixture
def jwks_endpoint(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """A JWKS endpoint in its own process, serving `keys.json` as it is at each request."""
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": []}))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", JWKS_SERVER, str(port), str(keys)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", port):
            assert proc.poll() is None, "the JWKS server exited"
            assert time.monotonic() < deadline, "the JWKS server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/.well-known/jwks.json", proc, keys
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """The app under uvicorn on loopback, in a thread of this process."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "the API stopped while starting"
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def served_model(tmp_path: Path) -> ModelStore:
    """A store already holding a (trivial) model: auth is what this test is about."""
    from sklearn.dummy import DummyRegressor

    registry = f"sqlite:///{tmp_path}/mlflow.db"
    store = ModelStore(registry, "m", "champion", str(tmp_path / "cache"), refresh_seconds=3600)
    store.current = LoadedModel.wrap(
        DummyRegressor().fit([[0.0]], [1.0]),
        name="m",
        version="1",
        alias="champion",
        run_id="r",
        metrics={},
        loaded_at="now",
    )
    return store


def bearer(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    """A fresh token each time (its own subject), so the API's memory of verified tokens
    never answers for it: every request looks its key up."""
    now = int(time.time())
    claims = {
        "sub": uuid.uuid4().hex,
        "aud": "dex-api",
        "iss": ISSUER,
        "iat": now,
        "exp": now + 300,
        "scope": "model:read",
    }
    return {"Authorization": "Bearer " + jwt.encode(claims, key, "RS256", headers={"kid": kid})}


def timed(c: httpx.Client, headers: dict[str, str]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    r = c.get("/v1/model", headers=headers)
    return r, time.perf_counter() - started


def test_a_frozen_jwks_endpoint_opens_the_breaker_and_a_thawed_one_closes_it(
    jwks_endpoint: tuple[str, subprocess.Popen[bytes], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, proc, keys_file = jwks_endpoint
    k1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    k2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys_file.write_text(json.dumps({"keys": [_jwk(k1, "k1")]}))
    made: list[Authenticator] = []

    class Recorded(Authenticator):
        def __init__(self, settings: ApiSettings) -> None:
            super().__init__(settings)
            made.append(self)

    monkeypatch.setattr(api, "Authenticator", Recorded)
    settings = ApiSettings(
        auth_mode="jwks",
        jwks_url=url,
        jwt_issuer=ISSUER,
        jwks_timeout_seconds=TIMEOUT,
        jwks_refresh_seconds=0.5,
        jwks_breaker_seconds=BREAKER,
        rate_limit="100000/minute",
        model_cache_dir=str(tmp_path / "cache"),
    )
    app = api.create_app(settings, store=served_model(tmp_path))
    (auth,) = made
    keys = auth.jwks
    assert isinstance(keys, JwksKeys)
    dex_log = logging.getLogger("dex")  # the app's logs do not propagate to the root
    dex_log.addHandler(caplog.handler)
    try:
        with serving(app) as base, httpx.Client(base_url=base, timeout=30) as c:
            healthy = []
            for _ in range(30):
                r, took = timed(c, bearer(k1, "k1"))
                assert r.status_code == 200, r.text
                healthy.append(took)
            assert keys.fetches >= 1

            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(0.6)  # the fetched set is now older than jwks_refresh_seconds
            before = keys.fetches
            frozen: list[float] = []
            deadline = time.monotonic() + 30
            while keys.breaker.current_state != pybreaker.STATE_OPEN:
                assert time.monotonic() < deadline, "the breaker never opened"
                r, took = timed(c, bearer(k1, "k1"))
                assert r.status_code == 200, r.text  # the known key keeps verifying
                frozen.append(took)
            # the breaker opened after its failures in a row, each a background fetch
            assert keys.fetches - before == JWKS_FAILURES
            opened = keys.fetches
            for _ in range(50):
                r, took = timed(c, bearer(k1, "k1"))
                assert r.status_code == 200, r.text
                frozen.append(took)
            # an unknown key while the breaker is open: 503 at once, not a timeout
            r, took = timed(c, bearer(k2, "k2"))
            assert r.status_code == 503, r.text
            assert 1 <= int(r.headers["Retry-After"]) <= BREAKER
            assert took < TIMEOUT
            assert keys.fetches == opened  # nothing asked the frozen endpoint while open
            # no request waited for the frozen endpoint; the rate held up
            assert max(frozen) < TIMEOUT, max(frozen)
            assert statistics.median(frozen) <= 2 * statistics.median(healthy) + 0.005
            outage = [r for r in caplog.records if "jwks endpoint failing" in r.getMessage()]
            assert len(outage) == 1, [r.getMessage() for r in outage]  # once, not per request

            # a key rotated in during the outage; the endpoint thaws
            keys_file.write_text(json.dumps({"keys": [_jwk(k1, "k1"), _jwk(k2, "k2")]}))
            os.kill(proc.pid, signal.SIGCONT)
            deadline = time.monotonic() + BREAKER + 10
            while True:
                r, took = timed(c, bearer(k2, "k2"))
                if r.status_code == 200:
                    break
                assert r.status_code == 503, r.text
                assert time.monotonic() < deadline, "the breaker never closed"
                time.sleep(0.1)
            assert keys.breaker.current_state == pybreaker.STATE_CLOSED
            assert any("jwks endpoint answers again" in r.getMessage() for r in caplog.records)
            assert timed(c, bearer(k1, "k1"))[0].status_code == 200
    finally:
        dex_log.removeHandler(caplog.handler)


def test_an_unknown_key_from_a_healthy_endpoint_is_401_and_not_refetched_each_time(
    jwks_endpoint: tuple[str, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    """Tokens with made-up keys are refused without each of them fetching the set again."""
    url, _proc, keys_file = jwks_endpoint
    k1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys_file.write_text(json.dumps({"keys": [_jwk(k1, "k1")]}))
    keys = JwksKeys(url, timeout_seconds=TIMEOUT, refresh_seconds=300, breaker_seconds=BREAKER)
    assert keys.key("k1").key_id == "k1"
    assert keys.fetches == 1
    for _ in range(20):
        with pytest.raises(HTTPException) as refused:
            keys.key("made-up")
        assert refused.value.status_code == 401
    assert keys.fetches == 1  # within the cooldown: not asked again
    with pytest.raises(HTTPException) as refused:
        keys.key(None)
    assert refused.value.status_code == 401
