"""`dex local up`: the whole loop on one machine, on the embedded defaults.

Sample data -> the weather pipeline -> an MLflow server (SQLite + local artifacts, or the given
Postgres / S3 endpoint) -> training, registration and promotion -> the serving API on
127.0.0.1, then one authenticated prediction (`--once`) or serving until Ctrl-C. With
`--canary SHARE`, a challenger is trained too (another seed), the API answers that share of
callers with it, and the daily model operations run once (feedback, decision, batch scoring,
drift), as the cluster's model-ops CronJob runs them. Everything
it writes lives under the data directory; what it starts is recorded in `local.json` there,
for `dex local status` and `dex local down`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from contracts.lake import LAKE_URL_ENV
from contracts.model import MODEL_NAME

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_START, SAMPLE_END = dt.date(2023, 1, 1), dt.date(2024, 12, 31)


def install_command(python: Path, requirements: Path) -> list[str]:
    """How to install `requirements` into the venv of `python`: with uv, the project's pinned
    installer (in .venv after `make setup`: seconds, not minutes), else with that venv's pip."""
    import importlib.util

    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", str(python),
                "-r", str(requirements)]  # fmt: skip
    return [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)]


class LocalError(Exception):
    """Something the user can fix: a busy port, an unwritable folder, a dead service URL."""


@dataclass
class LocalOptions:
    data_dir: Path
    api_port: int = 8000
    mlflow_port: int = 5000
    postgres: str | None = None
    redis: str | None = None
    s3_endpoint: str | None = None
    with_airflow: bool = False
    canary: float | None = None
    """Share of callers the challenger answers (None: no rollout)."""


@dataclass
class LocalRun:
    options: LocalOptions
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    # -- checks ----------------------------------------------------------------------------------
    def check(self) -> None:
        d = self.options.data_dir
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = d / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise LocalError(
                f"data directory {d} is not writable ({exc.strerror}); choose "
                "another with --data-dir"
            ) from None
        for name, port, flag in (
            ("API", self.options.api_port, "--api-port"),
            ("MLflow", self.options.mlflow_port, "--mlflow-port"),
        ):
            if port_in_use(port):
                raise LocalError(
                    f"port {port} (for the {name}) is already in use on 127.0.0.1; "
                    f"stop what uses it (`dex local down` if it is DEX) or pick "
                    f"another with {flag}"
                )
        if self.options.redis:
            _expect_service(self.options.redis, 6379, "--redis")
        if self.options.postgres:
            _expect_service(self.options.postgres, 5432, "--postgres")
        if self.options.s3_endpoint:
            _expect_service(self.options.s3_endpoint, 80, "--s3-endpoint")

    # -- paths and settings ----------------------------------------------------------------------
    @property
    def lake_url(self) -> str:
        if self.options.s3_endpoint:
            return "s3://dex-local/lake"
        return (self.options.data_dir / "lake").resolve().as_uri()

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.options.mlflow_port}"

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if self.options.s3_endpoint:
            env.update(
                DEX_S3_ENDPOINT_URL=self.options.s3_endpoint,
                MLFLOW_S3_ENDPOINT_URL=self.options.s3_endpoint,
                AWS_ENDPOINT_URL=self.options.s3_endpoint,
            )
            env.setdefault("AWS_ACCESS_KEY_ID", "local")
            env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
            env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        return env

    def secret(self) -> str:
        path = self.options.data_dir / "jwt-secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    # -- steps -----------------------------------------------------------------------------------
    def sample(self) -> Path:
        from apps.pipelines.sample import generate

        folder = self.options.data_dir / "sample"
        if not (folder / ".complete").exists():
            generate(folder, SAMPLE_START, SAMPLE_END)
            (folder / ".complete").write_text("generated by apps/pipelines/sample.py, seed 7\n")
        return folder

    def prepare_s3(self) -> None:
        if not self.options.s3_endpoint:
            return
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.options.s3_endpoint)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if "dex-local" not in existing:
            s3.create_bucket(Bucket="dex-local")

    def pipeline(self, source: Path) -> dict[str, Any]:
        if self.options.with_airflow:
            return self._pipeline_with_airflow(source)
        from apps.pipelines import cli as pipelines

        saved = dict(os.environ)
        os.environ.update(self.env())
        try:
            return pipelines.run(source.resolve().as_uri(), self.lake_url)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _pipeline_with_airflow(self, source: Path) -> dict[str, Any]:
        venv = ROOT / ".venv-airflow"
        requirements = ROOT / "apps" / "pipelines" / "airflow-requirements.txt"
        if not (venv / "bin" / "airflow").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(install_command(venv / "bin" / "python", requirements), check=True)
        home = self.options.data_dir / "airflow"
        env = {
            **self.env(),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "apps" / "pipelines" / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "DEX_PIPELINES_PYTHON": sys.executable,
            "DEX_PIPELINES_PYTHONPATH": str(ROOT),
            "DEX_SOURCE_URL": source.resolve().as_uri(),
            LAKE_URL_ENV: self.lake_url,
        }
        airflow = str(venv / "bin" / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        run = subprocess.run(
            [airflow, "dags", "test", "weather", dt.date.today().isoformat()],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise LocalError(f"the weather DAG failed in Airflow:\n{run.stdout[-2000:]}")
        from apps.shared.lake import open_lake

        lake = open_lake(self.lake_url)
        reports = sorted(lake.glob("_runs/*/report.json"))
        return lake.read_json(reports[-1]) if reports else {}

    def start_mlflow(self) -> None:
        d = self.options.data_dir.resolve()
        backend = self.options.postgres or f"sqlite:///{d}/mlflow.db"
        artifacts = (
            "s3://dex-local/mlflow" if self.options.s3_endpoint else (d / "mlartifacts").as_uri()
        )
        env = {**self.env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = open(d / "mlflow.log", "ab")  # noqa: SIM115 - handed to the child process
        self.processes["mlflow"] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.options.mlflow_port),
                "--workers",
                "1",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                artifacts,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._record()
        wait_http(f"{self.tracking_uri}/health", self.processes["mlflow"], d / "mlflow.log", 120)

    def train(self) -> dict[str, Any]:
        from apps.training.settings import TrainingSettings
        from apps.training.train import train

        saved = dict(os.environ)
        os.environ.update(self.env())
        try:
            settings = TrainingSettings(
                lake_url=self.lake_url,
                MLFLOW_TRACKING_URI=self.tracking_uri,
            )
            result = train(settings, skip_if_unchanged=True)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return {
            "run_id": result.run_id,
            "version": result.version,
            "alias": result.alias,
            "metrics": result.metrics,
            "skipped": result.skipped,
        }

    def train_challenger(self) -> dict[str, Any]:
        """The registry's challenger: the one already there, else a model trained with
        another seed and registered as challenger whatever its holdout score."""
        from mlflow.tracking import MlflowClient

        from apps.training.ops import alias_version
        from apps.training.settings import TrainingSettings
        from apps.training.train import train

        existing = alias_version(
            MlflowClient(tracking_uri=self.tracking_uri), MODEL_NAME, "challenger"
        )
        if existing is not None:
            return {"version": existing, "alias": "challenger", "skipped": True}
        saved = dict(os.environ)
        os.environ.update(self.env())
        try:
            result = train(
                TrainingSettings(
                    lake_url=self.lake_url,
                    MLFLOW_TRACKING_URI=self.tracking_uri,
                    register_as="challenger",
                    random_seed=7,
                )
            )
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return {"version": result.version, "alias": result.alias, "metrics": result.metrics}

    def model_ops(self) -> dict[str, Any]:
        """The daily model operations, once: feedback, decision, batch scoring, drift."""
        from apps.training.ops import daily
        from apps.training.settings import ModelOpsSettings

        saved = dict(os.environ)
        os.environ.update(self.env())
        try:
            return daily(
                ModelOpsSettings(
                    lake_url=self.lake_url,
                    MLFLOW_TRACKING_URI=self.tracking_uri,
                    model_cache_dir=str(self.options.data_dir.resolve() / "ops-cache"),
                )
            )
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def start_api(self) -> None:
        d = self.options.data_dir.resolve()
        env = {
            **self.env(),
            "DEX_API_TRACKING_URI": self.tracking_uri,
            "DEX_API_LAKE_URL": self.lake_url,
            "DEX_API_JWT_SECRET": self.secret(),
            "DEX_API_MODEL_CACHE_DIR": str(d / "model-cache"),
            "DEX_API_REFRESH_SECONDS": "10",
        }
        if self.options.redis:
            env["DEX_API_REDIS_URL"] = self.options.redis
        if self.options.canary is not None:
            env["DEX_API_ROLLOUT"] = "canary"
            env["DEX_API_CANARY_SHARE"] = str(self.options.canary)
        log = open(d / "api.log", "ab")  # noqa: SIM115 - handed to the child process
        self.processes["api"] = subprocess.Popen(
            [sys.executable, "-m", "apps.api", "--port", str(self.options.api_port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        self._record()
        wait_http(
            f"http://127.0.0.1:{self.options.api_port}/readyz",
            self.processes["api"],
            d / "api.log",
            120,
        )

    def token(self) -> str:
        from apps.api.auth import issue_token

        return issue_token(
            self.secret(),
            "local-developer",
            ["predict", "forecast", "model:read"],
            ttl_seconds=12 * 3600,
        )

    def predict_once(self, location: str = "berlin") -> dict[str, Any]:
        r = httpx.get(
            f"http://127.0.0.1:{self.options.api_port}/v1/forecast/{location}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    # -- process bookkeeping ---------------------------------------------------------------------
    def _record(self) -> None:
        state = {
            "pids": {k: p.pid for k, p in self.processes.items()},
            "api": f"http://127.0.0.1:{self.options.api_port}",
            "mlflow": self.tracking_uri,
            "lake": self.lake_url,
            "started_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        (self.options.data_dir / "local.json").write_text(json.dumps(state, indent=2))

    def stop(self) -> None:
        """SIGTERM every process group first (uvicorn drains in-flight requests), then reap
        each; SIGKILL what is still running after 20 s."""
        procs = [self.processes.pop(n) for n in ("api", "mlflow") if n in self.processes]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(OSError):  # the data directory may never have existed
            (self.options.data_dir / "local.json").unlink(missing_ok=True)


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _expect_service(url: str, default_port: int, flag: str) -> None:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError:
        raise LocalError(f"{flag} {url}: nothing answers on {host}:{port}") from None


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise LocalError(f"{url} stopped while starting (exit {proc.returncode}):\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise LocalError(f"{url} did not answer within {seconds:.0f} s (see {log})")


def stop_process(pid: int) -> None:
    """SIGTERM the process group (uvicorn drains in-flight requests), SIGKILL after 20 s."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def status(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / "local.json"
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    alive = {}
    for name, pid in state["pids"].items():
        try:
            os.kill(pid, 0)
            alive[name] = True
        except ProcessLookupError:
            alive[name] = False
    state["alive"] = alive
    return state


def down(data_dir: Path) -> list[str]:
    state = status(data_dir)
    if state is None:
        return []
    stopped = []
    for name, pid in state["pids"].items():
        if state["alive"].get(name):
            stop_process(pid)
            stopped.append(name)
    (data_dir / "local.json").unlink(missing_ok=True)
    return stopped
