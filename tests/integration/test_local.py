"""`dex local up --once`, end to end: sample data, pipeline, MLflow, training, the API, one
authenticated prediction over HTTP, then everything stopped; and the clear refusals. The same
loop on real services is test_local_services.py, under Airflow test_local_airflow.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def local_up(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "dex.cli",
            "local",
            "up",
            "--once",
            "--data-dir",
            str(data_dir),
            "--api-port",
            str(free_port()),
            "--mlflow-port",
            str(free_port()),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def prediction(output: str) -> dict[str, object]:
    match = re.search(r"\{\s*\"location\".*?\}", output, re.S)
    assert match, output[-3000:]
    return json.loads(match.group(0))  # type: ignore[no-any-return]


def champion(tracking_uri: str) -> str:
    from mlflow.tracking import MlflowClient

    mv = MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(
        "weather-next-day-tmax", "champion"
    )
    return str(mv.version)


def test_local_up_once_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "local"
    first = local_up(data)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    answer = prediction(first.stdout)
    assert answer["location"] == "berlin"
    assert answer["model_version"] == champion(f"sqlite:///{data}/mlflow.db")
    assert "curl -s -H 'Authorization: Bearer " in first.stdout
    assert "quarantined rows" in first.stdout
    assert not (data / "local.json").exists()  # every process it started was stopped
    lake = data / "lake"
    assert (lake / "gold" / "weather" / "features" / "location=berlin" / "part-0.parquet").exists()
    # nothing outside the data directory was written by the run
    assert not (ROOT / "mlruns").exists()
    # the second run on the same data (reused, not retrained) is
    # test_local_rollout.py's `dex local up --canary`


def refused(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`dex local up --once` expected to stop before starting anything."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "dex.cli",
            "local",
            "up",
            "--once",
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_clear_errors(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = refused(tmp_path / "d", "--api-port", str(port))
    assert result.returncode == 2
    assert f"port {port}" in result.stderr
    assert "--api-port" in result.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")  # fails for root too, unlike a read-only folder
    result = refused(blocker / "x")
    assert result.returncode == 2
    assert "is not writable" in result.stderr
    assert "--data-dir" in result.stderr
    result = refused(tmp_path / "e", "--redis", f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 2
    assert "--redis" in result.stderr
    assert "nothing answers" in result.stderr
