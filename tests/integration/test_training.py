"""Training against MLflow for real: the embedded SQLite store, and an `mlflow server` on
loopback with its backend store on the local PostgreSQL and artifacts on a moto S3 server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apps.pipelines import cli as pipelines
from apps.pipelines.locations import DEFAULT_LOCATIONS
from apps.pipelines.sample import generate
from apps.training.data import NoDataError
from apps.training.settings import TrainingSettings
from apps.training.train import main as train_main
from apps.training.train import train
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def gold_lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("gold")
    generate(
        root / "source",
        dt.date(2023, 1, 1),
        dt.date(2023, 8, 31),
        locations=(DEFAULT_LOCATIONS[0], DEFAULT_LOCATIONS[2]),
    )
    pipelines.run(f"file://{root}/source", f"file://{root}/lake")
    return f"file://{root}/lake"


def settings(lake: str, tracking: str, **kw: object) -> TrainingSettings:
    return TrainingSettings(lake_url=lake, MLFLOW_TRACKING_URI=tracking, **kw)  # type: ignore[arg-type]


def test_train_register_and_promote_on_sqlite(gold_lake: str, tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    first = train(settings(gold_lake, tracking))
    assert (first.version, first.alias, first.champion_mae) == ("1", "champion", None)
    assert first.metrics["mae"] < first.metrics["baseline_mae"]  # beats persistence
    second = train(settings(gold_lake, tracking))
    # same data, same seed: not better by the 2% margin -> challenger
    assert (second.version, second.alias) == ("2", "challenger")
    assert second.champion_mae == pytest.approx(first.metrics["mae"])
    client = MlflowClient(tracking_uri=tracking)
    assert (
        str(client.get_model_version_by_alias("weather-next-day-tmax", "champion").version) == "1"
    )
    assert (
        str(client.get_model_version_by_alias("weather-next-day-tmax", "challenger").version) == "2"
    )
    easy = train(settings(gold_lake, tracking, promotion_margin=0.0))
    assert easy.alias == "champion"  # ties win with no margin

    run = client.get_run(first.run_id)
    assert run.data.params["holdout_days"] == "60"
    assert {"mae", "rmse", "baseline_mae", "baseline_rmse"} <= set(run.data.metrics)
    assert run.data.tags["data_version"] == first.data_version
    assert run.data.tags["git_commit"] not in ("", None)
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.digest == first.data_version
    assert "gold/weather/features" in dataset.dataset.source
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"model_card.md", "promotion.json", "reference.json"} <= artifacts
    decision = json.loads(mlflow.artifacts.load_text(f"runs:/{second.run_id}/promotion.json"))
    assert decision["decision"] == "challenger"
    assert decision["required_mae"] is not None
    card = mlflow.artifacts.load_text(f"runs:/{first.run_id}/model_card.md")
    assert "persistence" in card
    assert "champion" in card
    mlflow.set_tracking_uri(tracking)
    info = mlflow.models.get_model_info("models:/weather-next-day-tmax/1")
    assert info.signature is not None
    assert info.saved_input_example_info is not None
    skipped = train(settings(gold_lake, tracking), skip_if_unchanged=True)
    assert skipped.skipped
    assert (skipped.version, skipped.alias) == ("3", "champion")


def test_time_split_has_no_leakage(gold_lake: str) -> None:
    from apps.training.data import load_features, time_split

    data = load_features(gold_lake)
    train_df, hold, cutoff = time_split(data.frame, 60)
    assert train_df["date"].max() < cutoff - dt.timedelta(days=1)
    assert hold["date"].min() >= cutoff
    # no training row's target (the next day) falls inside the holdout
    assert (train_df["date"] + dt.timedelta(days=1)).max() < cutoff


def test_cli_reports_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = train_main(
        ["--lake", f"file://{tmp_path}", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    )
    assert code == 2
    assert "no gold features" in capsys.readouterr().err
    with pytest.raises(NoDataError):
        train(settings(f"file://{tmp_path}", f"sqlite:///{tmp_path}/m.db"))


@pytest.fixture
def mlflow_server(
    postgres_url: str, s3_endpoint: str, bucket: str, tmp_path: Path
) -> Iterator[str]:
    import psycopg2

    db = f"dex_mlflow_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{db}"')
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
            "--artifacts-destination",
            f"s3://{bucket}/mlflow",
        ],
        env=env,
        stdout=open(tmp_path / "mlflow.log", "w"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / "mlflow.log").read_text()[-2000:])
            time.sleep(0.5)
        else:
            raise RuntimeError("mlflow server did not start in 90 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()


def test_train_against_mlflow_server_on_postgres_and_s3(
    gold_lake: str, mlflow_server: str, bucket: str
) -> None:
    import boto3
    from mlflow.tracking import MlflowClient

    result = train(settings(gold_lake, mlflow_server))
    assert result.alias == "champion"
    client = MlflowClient(tracking_uri=mlflow_server)
    assert (
        str(client.get_model_version_by_alias("weather-next-day-tmax", "champion").version)
        == result.version
    )
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.endswith("model_card.md") for k in keys)
    assert any(k.endswith("MLmodel") for k in keys)  # the model itself went to the object store
