"""Real local services for integration tests: a moto S3 server on loopback (started here),
and the machine's PostgreSQL and Redis (127.0.0.1:5432 / :6379), which must be running."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dex import local as dex_local


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1, and the environment that points boto3/s3fs at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    saved = {
        k: os.environ.get(k)
        for k in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "DEX_S3_ENDPOINT_URL",
            "AWS_ENDPOINT_URL",
        )
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        DEX_S3_ENDPOINT_URL=url,
        AWS_ENDPOINT_URL=url,
    )
    try:
        yield url
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    import boto3

    name = "dex-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not reachable("127.0.0.1", 5432):
        pytest.fail("these tests need PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres)")
    return "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis, a database of this test worker's own (pytest -n: gw0 uses 1, gw1
    uses 2, ...; a serial run uses 0), so parallel tests never see each other's keys."""
    if not reachable("127.0.0.1", 6379):
        pytest.fail("these tests need Redis on 127.0.0.1:6379")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    db = int(worker.removeprefix("gw")) + 1 if worker.startswith("gw") else 0
    return f"redis://127.0.0.1:6379/{db % 16}"


_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_VENV = Path(os.environ.get("DEX_AIRFLOW_VENV", _ROOT / ".venv-airflow"))
REQUIREMENTS = _ROOT / "apps" / "pipelines" / "airflow-requirements.txt"


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    """The Airflow venv, made once: test workers running in parallel (pytest -n) take a file
    lock, so only one of them installs it and the others wait for it."""
    from filelock import FileLock

    python = AIRFLOW_VENV / "bin" / "python"
    marker = AIRFLOW_VENV / ".dex-requirements"
    wanted = REQUIREMENTS.read_text()
    with FileLock(str(AIRFLOW_VENV) + ".lock"):
        if not python.exists() or not marker.exists() or marker.read_text() != wanted:
            subprocess.run([sys.executable, "-m", "venv", str(AIRFLOW_VENV)], check=True)
            subprocess.run(install_command(python, REQUIREMENTS), check=True)
            marker.write_text(wanted)
    return python


def install_command(python: Path, requirements: Path) -> list[str]:
    """uv (the project's pinned installer, in .venv) when present, else that venv's pip."""
    return dex_local.install_command(python, requirements)


def airflow_environment(home: Path, airflow_python: Path, **extra: str) -> dict[str, str]:
    """An Airflow home on SQLite that sees the `weather` DAG, its database migrated."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(_ROOT / "apps" / "pipelines" / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        **extra,
    }
    subprocess.run(
        [str(airflow_python.parent / "airflow"), "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


@contextlib.contextmanager
def redis_server(
    folder: Path, port_args: list[str], *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A throwaway redis-server on loopback, listening as `port_args` say (the port is the
    last of them), nothing persisted; stopped (and thawed, if frozen) on exit."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is needed (Debian: redis-server)")
    port = int(port_args[-1])
    proc = subprocess.Popen(
        [server, *port_args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", port):
            assert proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)
