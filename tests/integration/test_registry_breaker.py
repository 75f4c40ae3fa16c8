"""The API's model refresher against a real `mlflow server` that freezes (SIGSTOP: it accepts
connections and never answers) and thaws (SIGCONT), issue #18: while it is frozen, predictions
keep being served by the current model and none waits on MLflow; the refresher's calls time
out, the breaker opens after a few of them and the outage is logged once; while it is open no
registry call is made and /readyz says `registry` false; when MLflow answers again the breaker
closes and the alias, moved during the outage, is followed to the new version."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pybreaker
import pytest
import uvicorn

from apps.api.app import create_app
from apps.api.auth import issue_token
from apps.api.model_store import REGISTRY_FAILURES, ModelStore
from apps.api.settings import ApiSettings
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "breaker-test-model"
SECRET = "registry-breaker-secret-" + "x" * 32
MLFLOW_TIMEOUT = 1.0
"""The MLflow client's request timeout in this test (the API's default is 5 s)."""
BREAKER = 4.0
ROW = {
    "location": "berlin",
    "temp_max_c": 5.0,
    "temp_min_c": 1.0,
    "temp_mean_c": 3.0,
    "precipitation_mm": 0.0,
    "humidity_mean_pct": 70.0,
    "wind_max_ms": 4.0,
    "doy_sin": 0.1,
    "doy_cos": 0.99,
}


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`mlflow server` on loopback (SQLite, proxied local artifacts), in its own process group:
    the CLI starts the web server as a child, and a freeze must reach both."""
    port = free_port()
    log = tmp_path / "mlflow.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db",
             "--artifacts-destination", (tmp_path / "artifacts").as_uri()],
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        yield url, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def register(tracking_uri: str, value: float) -> str:
    """A model version that predicts `value` for every row (logged fast: explicit
    requirements, no signature inference)."""
    import mlflow
    from sklearn.dummy import DummyRegressor

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment("registry-breaker")
        with mlflow.start_run():
            mlflow.log_metric("mae", 1.0)
            info = mlflow.sklearn.log_model(
                DummyRegressor(strategy="constant", constant=value).fit([[0.0]], [value]),
                name="model",
                registered_model_name=NAME,
                pip_requirements=["scikit-learn"],
            )
        return str(info.registered_model_version)
    finally:
        mlflow.set_tracking_uri(previous)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """The app under uvicorn on loopback, in a thread of this process (its lifespan loads
    the model and starts the refresher)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive(), "the API stopped while starting"
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def predict(c: httpx.Client, headers: dict[str, str]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    r = c.post("/v1/predict", headers=headers, json={"rows": [ROW]})
    return r, time.perf_counter() - started


def test_a_frozen_registry_opens_the_breaker_and_a_thawed_one_closes_it(
    mlflow_server: tuple[str, subprocess.Popen[bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mlflow.tracking import MlflowClient

    url, proc = mlflow_server
    first, second = register(url, 10.0), register(url, 20.0)
    registry = MlflowClient(tracking_uri=url)
    registry.set_registered_model_alias(NAME, "champion", first)
    # short client timeouts and no retries, or each failed call takes 11 s (5 s, retried)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(MLFLOW_TIMEOUT)))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings = ApiSettings(
        jwt_secret=SECRET,
        tracking_uri=url,
        model_name=NAME,
        model_cache_dir=str(tmp_path / "cache"),
        refresh_seconds=0.2,
        registry_breaker_seconds=BREAKER,
        rate_limit="100000/minute",
    )
    store = ModelStore(
        settings.tracking_uri,
        settings.model_name,
        settings.model_alias,
        settings.model_cache_dir,
        settings.refresh_seconds,
        breaker_seconds=settings.registry_breaker_seconds,
    )
    calls = {"n": 0}
    real_resolve = store.resolve

    def counted() -> tuple[str, str]:
        calls["n"] += 1
        return real_resolve()

    store.resolve = counted  # type: ignore[method-assign]
    app = create_app(settings, store=store)
    dex_log = logging.getLogger("dex")  # the app's logs do not propagate to the root
    dex_log.addHandler(caplog.handler)
    headers = {"Authorization": "Bearer " + issue_token(SECRET, "svc", ["predict"])}
    try:
        with serving(app) as base, httpx.Client(base_url=base, timeout=30) as c:
            r, _ = predict(c, headers)
            assert r.status_code == 200, r.text
            assert (r.json()["model_version"], r.json()["predictions"][0]["temp_max_c"]) == (
                first,
                10.0,
            )
            assert c.get("/readyz").status_code == 200
            healthy = [predict(c, headers)[1] for _ in range(30)]

            os.killpg(proc.pid, signal.SIGSTOP)
            served: list[float] = []
            deadline = time.monotonic() + 60
            while store.breaker.current_state != pybreaker.STATE_OPEN:
                assert time.monotonic() < deadline, "the breaker never opened"
                r, took = predict(c, headers)
                assert r.status_code == 200, r.text  # the current model keeps answering
                assert r.json()["model_version"] == first
                served.append(took)
                time.sleep(0.01)
            opened = calls["n"]
            assert opened >= REGISTRY_FAILURES
            # while open: requests served, and the refresher does not ask MLflow at all
            until = time.monotonic() + 1.0  # five refresh intervals, well inside BREAKER
            while time.monotonic() < until:
                r, took = predict(c, headers)
                assert r.status_code == 200, r.text
                served.append(took)
                time.sleep(0.01)
            assert calls["n"] == opened
            assert max(served) < MLFLOW_TIMEOUT, max(served)  # none waited on MLflow
            assert statistics.median(served) <= 2 * statistics.median(healthy) + 0.005
            ready = c.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["registry"] is False
            assert ready.json()["degraded"] == ["registry"]
            assert ready.json()["serving"]["version"] == first
            assert c.get("/readyz", params={"only": "serving"}).status_code == 200
            outage = [r for r in caplog.records if "registry failing" in r.getMessage()]
            assert len(outage) == 1, [r.getMessage() for r in outage]  # once, not per refresh

            os.killpg(proc.pid, signal.SIGCONT)
            registry.set_registered_model_alias(NAME, "champion", second)  # moved meanwhile
            deadline = time.monotonic() + BREAKER + 30
            while store.current is None or store.current.version != second:
                assert time.monotonic() < deadline, "the new version was never swapped in"
                time.sleep(0.1)
            assert store.breaker.current_state == pybreaker.STATE_CLOSED
            assert any("registry answers again" in r.getMessage() for r in caplog.records)
            r, _ = predict(c, headers)
            assert (r.json()["model_version"], r.json()["predictions"][0]["temp_max_c"]) == (
                second,
                20.0,
            )
            ready = c.get("/readyz")
            assert ready.status_code == 200, ready.json()
            assert ready.json()["checks"]["registry"] is True
    finally:
        dex_log.removeHandler(caplog.handler)
