"""`dex local up --canary 0.2`, end to end on the real local services (an MLflow server and the
API as processes), on the data a first `dex local up --once` left (reused, not retrained): a
challenger answers about a fifth of the callers, each caller keeps its
model, the daily model operations ran (batch scores in the lake), and `dex model rollback`
moves the champion under load with zero failed requests, recorded in MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.api.auth import issue_token
from tests.conftest import ROOT
from tests.integration.conftest import free_port
from tests.integration.test_api import ROW
from tests.integration.test_local import local_up, prediction

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "weather-next-day-tmax"


def dex(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dex.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def platform(tmp_path: Path) -> Any:
    """`dex local up --canary 0.2` serving, on a data directory a `--once` run filled first
    (so the platform comes up on what is there: gold unchanged, the champion not retrained)."""

    data = tmp_path / "local"
    first = local_up(data)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    log = open(tmp_path / "up.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dex.cli",
            "local",
            "up",
            "--canary",
            "0.2",
            "--data-dir",
            str(data),
            "--api-port",
            str(free_port()),
            "--mlflow-port",
            str(free_port()),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 900
        while "running" not in (tmp_path / "up.log").read_text():
            assert proc.poll() is None, (tmp_path / "up.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "dex local up did not finish starting"
            time.sleep(1)
        state = json.loads((data / "local.json").read_text())
        yield {
            "api": state["api"],
            "mlflow": state["mlflow"],
            "data": data,
            "secret": (data / "jwt-secret").read_text().strip(),
            "output": (tmp_path / "up.log").read_text(),
            "first": first.stdout,
        }
    finally:
        proc.terminate()  # dex local up stops what it started on SIGTERM, as on Ctrl-C
        proc.wait(timeout=60)
        log.close()
        leftover = (
            json.loads((data / "local.json").read_text())
            if (data / "local.json").exists()
            else None
        )
        if leftover:
            dex("local", "down", "--data-dir", str(data))
        assert leftover is None, f"dex local up left processes running: {leftover['pids']}"


def _version(client: httpx.Client, secret: str, sub: str) -> str:
    token = issue_token(secret, sub, ["predict"])
    r = client.post(
        "/v1/predict", headers={"Authorization": f"Bearer {token}"}, json={"rows": [ROW]}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["model_version"])


def test_local_canary_model_ops_and_rollback_under_load(platform: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    secret, mlflow = platform["secret"], platform["mlflow"]
    client = MlflowClient(tracking_uri=mlflow)
    champion = str(client.get_model_version_by_alias(MODEL, "champion").version)
    challenger = str(client.get_model_version_by_alias(MODEL, "challenger").version)
    assert champion != challenger
    # the second run reused the first's data: nothing retrained, the same champion serves
    assert "gold unchanged: not retrained" in platform["output"], platform["output"][-3000:]
    assert prediction(platform["first"])["model_version"] == champion
    assert "model ops score: ok" in platform["output"], platform["output"][-3000:]
    scored = list((platform["data"] / "lake").rglob("predictions/for_date=*/part-0.parquet"))
    assert scored, "batch scoring wrote nothing"

    callers = [uuid.uuid4().hex for _ in range(300)]
    with httpx.Client(base_url=platform["api"], timeout=10) as c:
        first = {s: _version(c, secret, s) for s in callers}
        again = {s: _version(c, secret, s) for s in callers[:50]}
    share = sum(v == challenger for v in first.values()) / len(first)
    assert 0.10 <= share <= 0.30, share  # binomial(300, 0.2): sd 0.023
    assert all(first[s] == again[s] for s in again), "a caller changed models"

    # roll the champion to the challenger, then back, each under load: no request fails
    # champion callers, each under its own rate limit (120 a minute per subject)
    steady = [issue_token(secret, s, ["predict"]) for s in callers if first[s] == champion]
    for args, expected in (
        (["--to", challenger, "--reason", "drill: forward"], challenger),
        (["--reason", "drill: back"], champion),
    ):
        codes: list[int] = []
        versions: list[str] = []
        stop = threading.Event()

        def hammer(
            stop: threading.Event = stop, codes: list[int] = codes, versions: list[str] = versions
        ) -> None:
            with httpx.Client(base_url=platform["api"], timeout=10) as c:
                n = 0
                while not stop.is_set():
                    n += 1
                    r = c.post(
                        "/v1/predict",
                        headers={"Authorization": f"Bearer {steady[n % len(steady)]}"},
                        json={"rows": [ROW]},
                    )
                    codes.append(r.status_code)
                    versions.append(r.json().get("model_version", ""))

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            done = dex("model", "rollback", "--tracking-uri", mlflow, *args)
            assert done.returncode == 0, done.stdout + done.stderr
            deadline = time.monotonic() + 60
            while not versions or versions[-1] != expected:
                assert time.monotonic() < deadline, f"the API never served v{expected}"
                time.sleep(0.5)
            time.sleep(1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert codes
        assert set(codes) == {200}, f"failed requests during the rollback: {set(codes)}"
        assert versions[-1] == expected
        assert len(set(versions)) == 2
        assert str(client.get_model_version_by_alias(MODEL, "champion").version) == expected
    tags = client.get_model_version(MODEL, champion).tags
    assert any("rollback" in k for k in tags), tags
