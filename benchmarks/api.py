"""Benchmark: the serving API against the model's own batch predict and `mlflow models serve`.

In one run, on loopback, one worker each, for two models: the benchmark's (half a year of one
location) and one trained as `dex local up` trains it (2023-2024, every default location; its
trees are deeper and cost several times more). At 1, 100 and 1,000 rows per request:

- the floor: the model's own batch predict, the scikit-learn pipeline's `.predict` on a
  DataFrame of the same rows, timed in this process (the faster of one thread and the
  default thread count);
- the API's time per request at one connection (`POST /v1/predict`: JWT verified, rate limit,
  validation, prediction, prediction log), and that time over the floor (target: <= 1.5x at
  100 and 1,000 rows); beside it, over the model's one-thread time (`1-thread`): the API
  predicts on one thread, as a pod with a one-CPU limit must, while the floor may use two;
- the API's throughput and `mlflow models serve`'s at `--connections` (target: >= 1.5x).

Then Redis frozen: an API whose `DEX_API_REDIS_URL` is a `redis-server` started here, one-row
throughput with Redis answering and then while that server is stopped (SIGSTOP: it accepts
connections and never answers; the measurement starts at the freeze, the breaker's opening
included), and the ratio (target: >= 0.5).

    .venv/bin/python benchmarks/api.py [--seconds 5] [--connections 8] [--models benchmark,local]

Needs `wrk` (Debian package `wrk`) and, for the Redis line, `redis-server`. The rows are the
latest gold feature rows of each model's own lake, missing values as null. Prints figures and
asserts nothing: a shared machine's noise moves them by tens of percent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-" + "z" * 32
SIZES = (1, 100, 1000)


@dataclass(frozen=True)
class Trained:
    """A model registered in its own MLflow store, with rows of its own lake."""

    label: str
    tracking: str
    lake: str
    name: str
    version: str
    rows: list[dict[str, Any]]
    """At least the largest size's worth of feature rows (cycled when the lake has fewer)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


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


@contextmanager
def serving(cmd: list[str], env: dict[str, str], health: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait(health, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(
    url: str, body: str, headers: dict[str, str], connections: int, seconds: int
) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f'wrk.headers["{k}"] = {json.dumps(v)}' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    threads = str(min(connections, 2))
    command = ["wrk", "-t", threads, "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    try:
        out = subprocess.run(
            [*command, "-s", str(script), url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        script.unlink()

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": ms("50%"),
        "p99": ms("99%"),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def train_model(
    work: Path, label: str, locations: tuple[Any, ...], start: dt.date, end: dt.date
) -> Trained:
    from apps.pipelines import cli as pipelines
    from apps.pipelines.sample import generate
    from apps.shared.schema import FEATURE_COLUMNS
    from apps.training.data import load_features
    from apps.training.settings import TrainingSettings
    from apps.training.train import train

    folder = work / label
    generate(folder / "src", start, end, locations=locations)
    lake = f"file://{folder}/lake"
    pipelines.run(f"file://{folder}/src", lake)
    tracking = f"sqlite:///{folder}/mlflow.db"
    result = train(TrainingSettings(lake_url=lake, MLFLOW_TRACKING_URI=tracking))
    frame = load_features(lake).frame.tail(max(SIZES))
    rows = [
        {
            "location": r["location"],
            **{c: None if _missing(r[c]) else float(r[c]) for c in FEATURE_COLUMNS},
        }
        for r in frame.to_dict("records")
    ]
    rows = [rows[i % len(rows)] for i in range(max(SIZES))]
    return Trained(label, tracking, lake, result.model_name, result.version, rows)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def median_ms(call: Callable[[], Any], budget_seconds: float = 1.0) -> float:
    call()
    times: list[float] = []
    deadline = time.perf_counter() + budget_seconds
    while time.perf_counter() < deadline or len(times) < 5:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def floors(trained: Trained) -> dict[int, tuple[float, float]]:
    """The pipeline's own `.predict` on a DataFrame of the rows, ms per call, per size: the
    floor (the faster of one thread and the default count) and the one-thread figure."""
    import mlflow.sklearn
    import pandas as pd
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from apps.shared.schema import FEATURE_COLUMNS

    mlflow.set_tracking_uri(trained.tracking)
    model = mlflow.sklearn.load_model(f"models:/{trained.name}/{trained.version}")
    out = {}
    for size in SIZES:
        frame = pd.DataFrame(trained.rows[:size], columns=["location", *FEATURE_COLUMNS])
        timings = []
        for threads in (1, None):
            with threadpool_limits(limits=threads):
                timings.append(median_ms(functools.partial(model.predict, frame)))
        out[size] = (min(timings), timings[0])
    return out


def api_env(trained: Trained, work: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DEX_API_TRACKING_URI": trained.tracking,
        "DEX_API_JWT_SECRET": SECRET,
        "DEX_API_MODEL_CACHE_DIR": str(work / f"cache-{trained.label}-{free_port()}"),
        "DEX_API_LAKE_URL": trained.lake,
        "DEX_API_RATE_LIMIT": "100000000/minute",
        "DEX_API_LOG_LEVEL": "WARNING",
        **extra,
    }


def api_command(port: int) -> list[str]:
    return [sys.executable, "-m", "apps.api", "--port", str(port)]


def check(url: str, body: str, headers: dict[str, str]) -> None:
    """One request, which must succeed: a refused row would make every figure an error's."""
    r = httpx.post(url, content=body, headers=headers, timeout=60)
    if r.status_code != 200:
        raise SystemExit(f"{url}: {r.status_code} {r.text[:500]}")


def compare(trained: Trained, work: Path, seconds: int, connections: int) -> None:
    from apps.api.auth import issue_token

    floor = floors(trained)
    api_port, mlflow_port = free_port(), free_port()
    bin_dir = str(Path(sys.executable).parent)
    mlflow_env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": trained.tracking,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    mlflow_cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m"]
    mlflow_cmd += [f"models:/{trained.name}/{trained.version}", "--env-manager", "local"]
    mlflow_cmd += ["--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"]
    token = issue_token(SECRET, "bench", ["predict"], ttl_seconds=3600)
    api_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    api_url = f"http://127.0.0.1:{api_port}/v1/predict"
    mlflow_url = f"http://127.0.0.1:{mlflow_port}/invocations"
    api_health = f"http://127.0.0.1:{api_port}/readyz"
    with (
        serving(api_command(api_port), api_env(trained, work), api_health),
        serving(mlflow_cmd, mlflow_env, f"http://127.0.0.1:{mlflow_port}/ping"),
    ):
        print(
            f"\n{trained.label}: {len({r['location'] for r in trained.rows})} location(s); "
            f"{connections} connections for throughput"
        )
        print(
            f"{'rows':>5}{'floor ms':>10}{'api ms':>9}{'p99 ms':>8}{'api/floor':>11}"
            f"{'1-thread':>10}{'api req/s':>11}{'mlflow req/s':>14}{'api/mlflow':>12}"
            f"{'non-2xx':>9}"
        )
        for size in SIZES:
            rows = trained.rows[:size]
            api_body = json.dumps({"rows": rows})
            mlflow_body = json.dumps({"dataframe_records": rows})
            mlflow_headers = {"Content-Type": "application/json"}
            check(api_url, api_body, api_headers)
            check(mlflow_url, mlflow_body, mlflow_headers)
            one = wrk(api_url, api_body, api_headers, 1, seconds)
            api = wrk(api_url, api_body, api_headers, connections, seconds)
            ml = wrk(mlflow_url, mlflow_body, mlflow_headers, connections, seconds)
            per_request = 1000 / one["rps"] if one["rps"] else math.inf
            errors = one["errors"] + api["errors"] + ml["errors"]
            best, one_thread = floor[size]
            print(
                f"{size:>5}{best:>10.2f}{per_request:>9.2f}{one['p99']:>8.2f}"
                f"{per_request / best:>10.2f}x{per_request / one_thread:>9.2f}x"
                f"{api['rps']:>11.0f}{ml['rps']:>14.0f}"
                f"{api['rps'] / max(ml['rps'], 1e-9):>11.2f}x{errors:>9.0f}"
            )


def redis_freeze(trained: Trained, work: Path, seconds: int, connections: int) -> None:
    from apps.api.auth import issue_token

    server = shutil.which("redis-server")
    if server is None:
        print("\nredis frozen: skipped (no redis-server)")
        return
    redis_port, api_port = free_port(), free_port()
    options = ["--bind", "127.0.0.1", "--dir", str(work), "--save", "", "--appendonly", "no"]
    redis = subprocess.Popen(
        [server, "--port", str(redis_port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = api_env(trained, work, DEX_API_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
    token = issue_token(SECRET, "bench", ["predict"], ttl_seconds=3600)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{api_port}/v1/predict"
    body = json.dumps({"rows": trained.rows[:1]})
    try:
        deadline = time.monotonic() + 10
        while not listening(redis_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        with serving(api_command(api_port), env, f"http://127.0.0.1:{api_port}/readyz"):
            check(url, body, headers)
            normal = wrk(url, body, headers, connections, seconds)
            os.kill(redis.pid, signal.SIGSTOP)  # accepts connections, never answers
            try:
                frozen = wrk(url, body, headers, connections, seconds)
            finally:
                os.kill(redis.pid, signal.SIGCONT)
    finally:
        redis.terminate()
        redis.wait(timeout=30)
    print(
        f"\nredis frozen ({trained.label}, 1 row, {connections} connections): "
        f"{normal['rps']:.0f} req/s with Redis answering, {frozen['rps']:.0f} frozen "
        f"(p99 {frozen['p99']:.0f} ms, {frozen['errors']:.0f} non-2xx): "
        f"{frozen['rps'] / max(normal['rps'], 1e-9):.2f}x (target >= 0.5)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="per measured point")
    parser.add_argument("--connections", type=int, default=8, help="for the throughput figures")
    parser.add_argument(
        "--models", default="benchmark,local", help="benchmark, local (as `dex local up`), both"
    )
    opts = parser.parse_args()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # figures as they come, even into a file
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    sys.path.insert(0, str(ROOT))
    from apps.pipelines.locations import DEFAULT_LOCATIONS
    from dex.local import SAMPLE_END, SAMPLE_START

    recipes = {
        "benchmark": (DEFAULT_LOCATIONS[:1], dt.date(2023, 1, 1), dt.date(2023, 6, 30)),
        "local": (DEFAULT_LOCATIONS, SAMPLE_START, SAMPLE_END),
    }
    wanted = [m.strip() for m in opts.models.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in recipes]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; known: {sorted(recipes)}")
    work = Path(tempfile.mkdtemp(prefix="dex-bench-"))
    started = time.monotonic()
    try:
        models = [train_model(work, m, *recipes[m]) for m in wanted]
        for trained in models:
            compare(trained, work, opts.seconds, opts.connections)
        redis_freeze(models[0], work, opts.seconds, opts.connections)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
