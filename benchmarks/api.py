"""Benchmark: the serving API next to `mlflow models serve` and a bare uvicorn endpoint.

In one run, on loopback, each with one worker and the same model: (a) this API's
`POST /v1/predict` (JWT verified, rate limit checked, metrics, prediction log), (b)
`mlflow models serve --env-manager local` on `/invocations`, (c) a hello-world FastAPI
endpoint under uvicorn (the framework floor). Load comes from `wrk` (Debian package `wrk`) at
1, 8 and 32 connections; printed: requests/s, p50 and p99 latency, and the API's throughput
as a multiple of MLflow's.

    .venv/bin/python benchmarks/api.py [--seconds 10]

Needs a registered model: it trains one on the synthetic sample first (in a temporary folder).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-" + "z" * 32
ROW = {
    "location": "berlin",
    "temp_max_c": 5.0,
    "temp_min_c": 1.0,
    "temp_mean_c": 3.0,
    "precipitation_mm": 0.0,
    "humidity_mean_pct": 70.0,
    "wind_max_ms": 4.0,
    "temp_max_lag1": 4.0,
    "temp_max_lag2": 4.5,
    "temp_max_lag3": 3.9,
    "temp_max_roll7_mean": 4.2,
    "precip_roll3_sum": 0.0,
    "doy_sin": 0.1,
    "doy_cos": 0.99,
}
HELLO = """
from fastapi import FastAPI
app = FastAPI()
@app.post("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not start")


def wrk(
    url: str, body: str, headers: dict[str, str], connections: int, seconds: int
) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f'wrk.headers["{k}"] = {json.dumps(v)}' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(min(connections, 2)),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script.unlink()

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": ms("50%"),
        "p99": ms("99%"),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    sys.path.insert(0, str(ROOT))
    from apps.api.auth import issue_token
    from apps.pipelines import cli as pipelines
    from apps.pipelines.locations import DEFAULT_LOCATIONS
    from apps.pipelines.sample import generate
    from apps.training.settings import TrainingSettings
    from apps.training.train import train

    work = Path(tempfile.mkdtemp(prefix="dex-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        generate(
            work / "src",
            dt.date(2023, 1, 1),
            dt.date(2023, 6, 30),
            locations=(DEFAULT_LOCATIONS[0],),
        )
        lake = f"file://{work}/lake"
        pipelines.run(f"file://{work}/src", lake)
        tracking = f"sqlite:///{work}/mlflow.db"
        result = train(TrainingSettings(lake_url=lake, MLFLOW_TRACKING_URI=tracking))  # type: ignore[call-arg]
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DEX_API_TRACKING_URI": tracking,
            "DEX_API_JWT_SECRET": SECRET,
            "DEX_API_MODEL_CACHE_DIR": str(work / "cache"),
            "DEX_API_LAKE_URL": lake,
            "DEX_API_RATE_LIMIT": "100000000/minute",
            "DEX_API_LOG_LEVEL": "WARNING",
            "MLFLOW_TRACKING_URI": tracking,
        }
        api_port, mlflow_port, hello_port = free_port(), free_port(), free_port()
        (work / "hello.py").write_text(HELLO)
        bin_dir = str(Path(sys.executable).parent)
        env_path = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}
        servers = {
            "api": (
                [sys.executable, "-m", "apps.api", "--port", str(api_port)],
                env,
                f"http://127.0.0.1:{api_port}/readyz",
            ),
            "mlflow": (
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "models",
                    "serve",
                    "-m",
                    f"models:/{result.model_name}/{result.version}",
                    "--env-manager",
                    "local",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mlflow_port),
                    "--workers",
                    "1",
                ],
                env_path,
                f"http://127.0.0.1:{mlflow_port}/ping",
            ),
            "hello": (
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--app-dir",
                    str(work),
                    "hello:app",
                    "--port",
                    str(hello_port),
                    "--workers",
                    "1",
                    "--log-level",
                    "warning",
                ],
                env,
                f"http://127.0.0.1:{hello_port}/docs",
            ),
        }
        for cmd, penv, health in servers.values():
            proc = subprocess.Popen(
                cmd, env=penv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            procs.append(proc)
            wait(health, proc)
        token = issue_token(SECRET, "bench", ["predict"], ttl_seconds=3600)
        targets = {
            "dex api": (
                f"http://127.0.0.1:{api_port}/v1/predict",
                json.dumps({"rows": [ROW]}),
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            ),
            "mlflow models serve": (
                f"http://127.0.0.1:{mlflow_port}/invocations",
                json.dumps({"dataframe_records": [ROW]}),
                {"Content-Type": "application/json"},
            ),
            "uvicorn hello (floor)": (
                f"http://127.0.0.1:{hello_port}/hello",
                "{}",
                {"Content-Type": "application/json"},
            ),
        }
        print(f"{'target':<24}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
        table: dict[tuple[str, int], dict[str, float]] = {}
        for conns in (1, 8, 32):
            for name, (url, body, headers) in targets.items():
                r = wrk(url, body, headers, conns, opts.seconds)
                table[(name, conns)] = r
                print(
                    f"{name:<24}{conns:>6}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}"
                    f"{r['errors']:>9.0f}"
                )
        for conns in (1, 8, 32):
            ratio = table[("dex api", conns)]["rps"] / table[("mlflow models serve", conns)]["rps"]
            floor = (
                table[("dex api", conns)]["rps"] / table[("uvicorn hello (floor)", conns)]["rps"]
            )
            print(
                f"{conns:>2} connections: dex api = {ratio:.1f}x mlflow models serve, "
                f"{floor:.2f}x the framework floor"
            )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
