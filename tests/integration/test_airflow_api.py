"""`dex pipelines trigger` and `dex pipelines status` against a real Airflow 3 API server on
loopback (Airflow's own virtualenv, the `weather` DAG serialized into its database, users
from Airflow's simple auth manager), through apache-airflow-client."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dex.cli import app
from dex.local import wait_http
from tests.integration.conftest import airflow_environment, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def airflow_api(airflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("airflow-api")
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
    env = airflow_environment(
        home,
        airflow_python,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
    )
    airflow = str(airflow_python.parent / "airflow")
    subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, capture_output=True)
    port = free_port()
    log_path = home / "api-server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/api/v2/monitor/health", proc, log_path, 120)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def dex(*args: str, password: str | None = PASSWORD) -> tuple[int, str]:
    env = {"DEX_AIRFLOW_PASSWORD": password} if password else {}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_trigger_then_status(airflow_api: str) -> None:
    code, output = dex("pipelines", "status", "weather", "--airflow-url", airflow_api, "--json")
    assert code == 0, output
    before = json.loads(output)
    assert before["paused"] is True  # new DAGs start paused
    assert before["runs"] == []

    code, output = dex(
        "pipelines", "trigger", "weather", "--airflow-url", airflow_api, "--json",
        "--conf", '{"reason": "test"}',
    )  # fmt: skip
    assert code == 0, output
    run = json.loads(output)
    assert run["dag_id"] == "weather"
    assert run["state"] == "queued"
    assert run["was_paused"] is True
    assert run["paused"] is False

    code, output = dex("pipelines", "status", "--airflow-url", airflow_api, "--json")
    assert code == 0, output
    after = json.loads(output)
    assert after["paused"] is False
    assert after["total_runs"] == 1
    assert after["runs"][0]["dag_run_id"] == run["dag_run_id"]
    assert after["runs"][0]["run_type"] == "manual"
    assert [t["task_id"] for t in after["latest_tasks"]] == [
        "ingest",
        "bronze",
        "silver",
        "gold",
        "finish",
    ]
    # the human form names the run and its tasks
    code, output = dex("pipelines", "status", "--airflow-url", airflow_api)
    assert code == 0
    assert "weather: 1 runs" in output
    assert "ingest" in output


def test_errors_are_plain(airflow_api: str) -> None:
    code, output = dex("pipelines", "trigger", "weather", "--airflow-url", airflow_api,
                       password="wrong")  # fmt: skip
    assert code == 1
    assert "refused user 'admin': wrong password?" in output
    code, output = dex("pipelines", "status", "nightly", "--airflow-url", airflow_api)
    assert code == 1
    assert "DAG 'nightly': not found in Airflow" in output
    dead = f"http://127.0.0.1:{free_port()}"
    code, output = dex("pipelines", "status", "--airflow-url", dead)
    assert code == 1
    assert f"cannot reach Airflow at {dead}" in output
    code, output = dex("pipelines", "trigger", "weather", "--airflow-url", airflow_api,
                       "--conf", "[1]")  # fmt: skip
    assert code == 2
    assert "--conf must be a JSON object" in output
    code, output = dex("pipelines", "trigger", "nightly", "--airflow-url", airflow_api)
    assert code == 2
    assert "unknown pipeline 'nightly'" in output
    code, output = dex("pipelines", "status", password=None)
    assert code == 1
    assert "--stack STACK" in output


def test_stack_outputs_need_the_pulumi_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    code, output = dex("pipelines", "status", "--stack", "prod", password=None)
    assert code == 1
    assert "needs the Pulumi CLI" in output
    assert "DEX_AIRFLOW_PASSWORD" in output


def test_stack_outputs_locate_airflow(
    airflow_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --stack, the URL and the admin password come from `pulumi stack output` (here a
    stand-in CLI that prints what a deployed stack would)."""
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    outputs = {"airflow_url": airflow_api, "airflow_admin_password": PASSWORD}
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\ncat <<'EOF'\n{json.dumps(outputs)}\nEOF\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    code, output = dex("pipelines", "status", "--stack", "prod", "--json", password=None)
    assert code == 0, output
    assert json.loads(output)["dag_id"] == "weather"
    assert calls.read_text().split() == [
        "stack", "output", "--json", "--show-secrets", "--stack", "prod",
    ]  # fmt: skip
