"""The pipeline against real services on loopback: an S3 lake and source on a moto server,
and the HTTP connector against a local server replaying recorded responses."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from apps.pipelines import cli
from apps.pipelines.locations import DEFAULT_LOCATIONS
from apps.pipelines.sample import generate
from apps.pipelines.sources import OpenMeteoSource, SourceError
from apps.shared.lake import open_lake

pytestmark = pytest.mark.integration
BERLIN = DEFAULT_LOCATIONS[0]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out, dt.date(2023, 1, 1), dt.date(2023, 1, 31), locations=(BERLIN,))
    return out


def test_s3_lake_and_source(sample: Path, bucket: str, tmp_path: Path) -> None:
    import boto3

    s3 = boto3.client("s3")
    for f in sample.rglob("*.json"):
        s3.put_object(Bucket=bucket, Key=f"source/{f.relative_to(sample)}", Body=f.read_bytes())
    report = cli.run(f"s3://{bucket}/source", f"s3://{bucket}/lake")
    assert report["reconciliation"]["mismatches"] == []
    assert report["layers"]["silver"]["rows"] > 600
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="lake/")["Contents"]}
    assert "lake/silver/weather/date=2023-01-15/part-0.parquet" in keys
    assert "lake/gold/weather/features/location=berlin/part-0.parquet" in keys
    assert any(k.startswith("lake/quarantine/weather/layer=bronze/") for k in keys)
    assert not any(".tmp-" in k for k in keys)
    lake = open_lake(f"s3://{bucket}/lake")
    # many objects in one concurrent read, a missing one as None; bronze found every
    # response's metadata (a fetch time from it, not the 1970 stand-in for a missing one)
    day = "silver/weather/date=2023-01-15/part-0.parquet"
    found = lake.read_many_or_none([day, "silver/weather/date=1999-01-01/part-0.parquet"])
    assert found[0] is not None
    assert found[0][:4] == b"PAR1"
    assert found[1] is None
    with pytest.raises(FileNotFoundError, match="1999"):
        lake.read_many(["silver/weather/date=1999-01-01/part-0.parquet"])
    assert lake.read_parquet_many([day])[0]["_fetched_at"][0].as_py().year > 2000
    # the same run on file:// gives the same gold bytes
    cli.run(f"file://{sample}", f"file://{tmp_path}/lake")
    local = (tmp_path / "lake/gold/weather/features/location=berlin/part-0.parquet").read_bytes()
    remote = s3.get_object(
        Bucket=bucket, Key="lake/gold/weather/features/location=berlin/part-0.parquet"
    )
    assert remote["Body"].read() == local
    again = cli.run(f"s3://{bucket}/source", f"s3://{bucket}/lake")
    assert again["layers"]["raw"]["files_landed"] == 0
    assert lake.read_json("_state", "weather", "state.json")["pending"]["silver"] == []


class Replay(http.server.BaseHTTPRequestHandler):
    """Serves recorded Open-Meteo responses; scripted failures come first."""

    script: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []
    body: ClassVar[bytes] = b""
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Replay.seen.append(self.path)
        status, headers, body = Replay.script.pop(0) if Replay.script else (200, {}, Replay.body)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def replay(sample: Path) -> Iterator[str]:
    Replay.body = (sample / "berlin" / "2023-01.json").read_bytes()
    Replay.script, Replay.seen = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/archive"
    server.shutdown()


def test_http_connector_retries_and_honours_rate_limits(replay: str) -> None:
    slept: list[float] = []
    Replay.script = [(500, {}, b"oops"), (429, {"Retry-After": "3"}, b"slow down")]
    source = OpenMeteoSource(base_url=replay, sleep=slept.append, min_interval_s=0)
    (resp,) = list(source.fetch([BERLIN], dt.date(2023, 1, 1), dt.date(2023, 1, 31)))
    assert json.loads(resp.body)["hourly"]["time"][0] == "2023-01-01T00:00"
    assert 3.0 in slept  # Retry-After honoured
    assert len(Replay.seen) == 3
    assert "start_date=2023-01-01" in Replay.seen[-1]
    assert "hourly=temperature_2m" in Replay.seen[-1]


def test_http_connector_gives_up_with_a_clear_error(replay: str) -> None:
    Replay.script = [(503, {}, b"")] * 5
    source = OpenMeteoSource(base_url=replay, sleep=lambda s: None, retries=2, min_interval_s=0)
    with pytest.raises(SourceError, match="gave up after 3 attempts"):
        list(source.fetch([BERLIN], dt.date(2023, 1, 1), dt.date(2023, 1, 2)))
    Replay.script = [(400, {}, b'{"reason": "bad latitude"}')]
    with pytest.raises(SourceError, match="answered 400"):
        list(source.fetch([BERLIN], dt.date(2023, 1, 1), dt.date(2023, 1, 2)))


def test_http_connector_times_out_on_a_dead_port() -> None:
    from tests.integration.conftest import free_port

    source = OpenMeteoSource(
        base_url=f"http://127.0.0.1:{free_port()}/x",
        retries=1,
        sleep=lambda s: None,
        timeout_s=1,
        min_interval_s=0,
    )
    with pytest.raises(SourceError, match="gave up"):
        list(source.fetch([BERLIN], dt.date(2023, 1, 1), dt.date(2023, 1, 2)))


def test_pipeline_over_http(replay: str, tmp_path: Path) -> None:
    report = cli.run(
        replay,
        f"file://{tmp_path}/lake",
        dt.date(2023, 1, 1),
        dt.date(2023, 1, 31),
        locations="berlin",
    )
    assert report["layers"]["raw"]["files_landed"] == 1
    assert report["layers"]["silver"]["rows"] > 600


def test_one_bucket_per_layer_as_in_the_cluster(
    sample: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster gives each layer its own bucket (DEX_LAKE_<LAYER>_URL, set by
    components/k8s); the pipeline writes each layer there, the rest under the lake URL, and
    training reads gold from its bucket."""
    import uuid

    import boto3

    from apps.training.data import load_features

    s3 = boto3.client("s3")
    run = uuid.uuid4().hex[:8]
    buckets = {layer: f"dex-{layer}-{run}" for layer in ("raw", "bronze", "silver", "gold")}
    for name in [*buckets.values(), f"dex-work-{run}"]:
        s3.create_bucket(Bucket=name)
    for layer, name in buckets.items():
        monkeypatch.setenv(f"DEX_LAKE_{layer.upper()}_URL", f"s3://{name}")
    report = cli.run(f"file://{sample}", f"s3://dex-work-{run}/pipeline")
    assert report["reconciliation"]["mismatches"] == []

    def keys(bucket: str) -> set[str]:
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"] for o in listed}

    assert any(
        k.startswith("weather/source=") and "location=berlin" in k for k in keys(buckets["raw"])
    )
    assert "weather/date=2023-01-15/part-0.parquet" in keys(buckets["silver"])
    assert "weather/features/location=berlin/part-0.parquet" in keys(buckets["gold"])
    work = keys(f"dex-work-{run}")
    assert "pipeline/_state/weather/state.json" in work
    assert any(k.startswith("pipeline/quarantine/") for k in work)
    assert not any(k.startswith(("pipeline/raw/", "pipeline/gold/")) for k in work)
    # a rerun finds what the first run landed in the layer buckets
    again = cli.run(f"file://{sample}", f"s3://dex-work-{run}/pipeline")
    assert again["layers"]["raw"]["files_landed"] == 0
    dataset = load_features(f"s3://dex-work-{run}/pipeline")
    assert dataset.source == f"s3://{buckets['gold']}/weather/features"
    assert len(dataset.frame) > 20


def test_layers_must_share_the_lake_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEX_LAKE_GOLD_URL", "s3://some-bucket")
    with pytest.raises(Exception, match="layer 'gold' at 's3://some-bucket' uses s3://"):
        open_lake(f"file://{tmp_path}")


class Gateway(http.server.BaseHTTPRequestHandler):
    """Stands in for a Pushgateway: records each PUT."""

    pushed: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Gateway.pushed.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    Gateway.pushed = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_batch_jobs_push_their_metrics(
    sample: Path, tmp_path: Path, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.training.train import TrainResult, push_metrics

    monkeypatch.setenv("DEX_PUSHGATEWAY_URL", gateway)
    report = cli.run(f"file://{sample}", f"file://{tmp_path}/lake")
    assert report["metrics_push"] == "ok"
    path, content_type, body = Gateway.pushed[-1]
    assert path == "/metrics/job/dex-pipeline-weather"
    assert content_type.startswith("text/plain; version=0.0.4")
    assert b'dex_pipeline_last_success_timestamp_seconds{pipeline="weather"}' in body
    assert b'dex_pipeline_freshness_hours{location="berlin",pipeline="weather"}' in body
    # the same bytes the lake keeps
    assert body == (tmp_path / "lake/_metrics/weather.prom").read_bytes()

    result = TrainResult(
        run_id="r1",
        model_name="m",
        version="3",
        alias="champion",
        metrics={"mae": 1.25, "rmse": 1.5, "baseline_mae": 2.0},
        champion_mae=None,
        data_version="d",
    )
    assert push_metrics(result) is None
    path, _, body = Gateway.pushed[-1]
    assert path == "/metrics/job/dex-training"
    assert b"dex_training_mae 1.25" in body
    assert b"dex_training_baseline_mae 2.0" in body
    assert b"dex_training_promoted 1.0" in body


def test_an_unreachable_gateway_does_not_fail_the_run(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DEX_PUSHGATEWAY_URL", dead)
    report = cli.run(f"file://{sample}", f"file://{tmp_path}/lake")
    assert report["reconciliation"]["mismatches"] == []
    assert report["metrics_push"].startswith(f"pushing metrics to {dead}/metrics/job/")
    assert (tmp_path / "lake/_metrics/weather.prom").is_file()
