"""Model operations end to end against a real `mlflow server` (SQLite store, proxied file
artifacts) on loopback, with the bundled synthetic data through the real pipeline: a worse
challenger retired, a better one promoted, rollback, feedback on the moto S3 lake, batch
scoring equal to the API's predictions, drift-triggered retraining, `daily`'s exit code, and
the `model_ops` DAG under real Airflow.

The online feedback is a replay: the last weeks of gold features scored by the registry's
champion and challenger exactly as the API scores them, logged as the API logs shadow
predictions, so the decision sees paired samples whose actuals are in gold."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from apps.api.model_store import ModelStore
from apps.api.predlog import records
from apps.pipelines import cli as pipelines
from apps.pipelines.locations import DEFAULT_LOCATIONS
from apps.pipelines.sample import generate
from apps.shared.lake import open_lake
from apps.shared.schema import FEATURE_COLUMNS
from apps.training import ops
from apps.training.settings import ModelOpsSettings, TrainingSettings
from apps.training.train import TrainResult, train
from tests.conftest import ROOT
from tests.integration.conftest import AIRFLOW_VENV, airflow_environment, free_port

pytestmark = pytest.mark.integration

QUICK = {"max_iter": 60}
"""Where the model's quality does not matter: a faster fit."""


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Fits on one OpenMP thread: on a shared machine spinning threads cost more than they
    give."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def gold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six months of two locations through the real pipeline: the gold layer."""
    root = tmp_path_factory.mktemp("ops-gold")
    generate(
        root / "source",
        dt.date(2023, 1, 1),
        dt.date(2023, 6, 30),
        locations=(DEFAULT_LOCATIONS[0], DEFAULT_LOCATIONS[2]),
    )
    pipelines.run(f"file://{root}/source", f"file://{root}/lake")
    return root / "lake" / "gold"


@pytest.fixture
def lake(gold: Path, tmp_path: Path) -> str:
    """A lake of the test's own holding a copy of gold."""
    shutil.copytree(gold, tmp_path / "lake" / "gold")
    return f"file://{tmp_path}/lake"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` as `dex local up` starts it: one worker, no job runner."""
    root = tmp_path_factory.mktemp("ops-mlflow")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(root / "mlflow.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
             "--artifacts-destination", (root / "artifacts").as_uri()],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "mlflow.log").read_text()[-2000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def train_model(lake: str, tracking: str, name: str, **kw: Any) -> TrainResult:
    settings = TrainingSettings(
        lake_url=lake,
        MLFLOW_TRACKING_URI=tracking,
        model_name=name,
        **kw,
    )
    return train(settings)


def ops_settings(lake: str | None, tracking: str, name: str, **kw: Any) -> ModelOpsSettings:
    return ModelOpsSettings(lake_url=lake, tracking_uri=tracking, model_name=name, **kw)


def client(tracking: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking)


def api_model(tracking: str, name: str, alias: str, cache: Path) -> Any:
    """The model exactly as the API holds it."""
    loaded = ModelStore(tracking, name, alias, str(cache)).load()
    assert loaded is not None
    return loaded


def replay(lake: str, tracking: str, name: str, days: int) -> int:
    """Log the last `days` days of gold, per location, as the API logs a shadow rollout: the
    champion's prediction served, the challenger's not, one request id for both."""
    store = open_lake(lake)
    with tempfile.TemporaryDirectory() as cache:
        champion = api_model(tracking, name, "champion", Path(cache))
        challenger = api_model(tracking, name, "challenger", Path(cache))
    logged = []
    for rel in store.glob("gold/weather/features/location=*/part-0.parquet"):
        table = store.read_parquet(rel)
        for row in table.slice(max(0, table.num_rows - days)).to_pylist():
            inputs = [{k: row[k] for k in ("location", "date", *FEATURE_COLUMNS)}]
            rid = f"replay-{row['location']}-{row['date']}"
            fields = {"request_id": rid, "client": "t", "route": "forecast"}
            for model, role, served in (
                (champion, "champion", True),
                (challenger, "challenger", False),
            ):
                logged += records(
                    **fields,
                    model_name=name,
                    model_version=model.version,
                    role=role,
                    served=served,
                    inputs=inputs,
                    outputs=model.predict(inputs),
                )
    body = "".join(json.dumps(r, default=str) + "\n" for r in logged).encode()
    today = dt.datetime.now(dt.UTC).date()
    store.write_bytes(body, "raw", "predictions", f"date={today}", "replay.jsonl")
    return len(logged)


def test_a_worse_challenger_is_retired(lake: str, mlflow_server: str) -> None:
    name = "ops-worse"
    champion = train_model(lake, mlflow_server, name)
    worse = train_model(lake, mlflow_server, name, register_as="challenger", max_iter=3)
    assert (champion.alias, worse.alias) == ("champion", "challenger")
    assert worse.metrics["mae"] > champion.metrics["mae"]
    replay(lake, mlflow_server, name, days=31)
    settings = ops_settings(lake, mlflow_server, name, decision_window_days=30)
    fed = ops.feedback(settings)
    assert fed["counts"]["pending"] == 4  # the newest day's next day: no actual yet
    online = {e["model_version"]: e for e in fed["online"]}
    assert online[worse.version]["mae"] > online[champion.version]["mae"]

    decision = ops.decide(settings)
    assert decision["decision"] == "retire", decision["reason"]
    assert decision["test"] == "wilcoxon"
    assert decision["samples"] == 60  # 30 days x 2 locations, both models on each
    assert decision["p_larger"] < 0.05
    c = client(mlflow_server)
    assert str(c.get_model_version_by_alias(name, "champion").version) == champion.version
    assert ops.alias_version(c, name, "challenger") is None
    tags = c.get_model_version(name, worse.version).tags
    assert tags["dex.decision"] == "retire"
    assert tags["dex.decision.test"] == "wilcoxon"
    assert float(tags["dex.decision.p_value"]) < 0.05
    assert tags["dex.decision.at"] == decision["at"]
    written = open_lake(lake).glob("_runs/model-decisions/*.json")
    assert [open_lake(lake).read_json(r)["decision"] for r in written] == ["retire"]
    prom = open_lake(lake).read_bytes("_metrics", "model-decision.prom").decode()
    assert 'dex_model_decision{decision="retire",test="wilcoxon"} 1.0' in prom


def test_a_better_challenger_is_promoted_and_recorded(lake: str, mlflow_server: str) -> None:
    name = "ops-better"
    weak = train_model(lake, mlflow_server, name, max_iter=3)  # the first: champion
    strong = train_model(lake, mlflow_server, name, register_as="challenger")
    assert (weak.alias, strong.alias) == ("champion", "challenger")
    replay(lake, mlflow_server, name, days=31)
    settings = ops_settings(lake, mlflow_server, name, decision_window_days=30)
    ops.feedback(settings)
    decision = ops.decide(settings)
    assert decision["decision"] == "promote", decision["reason"]
    assert decision["champion_after"] == strong.version
    c = client(mlflow_server)
    assert str(c.get_model_version_by_alias(name, "champion").version) == strong.version
    assert ops.alias_version(c, name, "challenger") is None
    tags = c.get_model_version(name, strong.version).tags
    assert tags["dex.decision"] == "promote"
    assert tags["dex.previous_champion"] == weak.version
    assert float(tags["dex.decision.p_value"]) < 0.05
    history = ops.champion_history(c, name)
    assert [(h["version"], h["previous"], h["kind"]) for h in history] == [
        (weak.version, None, "training"),
        (strong.version, weak.version, "promotion"),
    ]
    assert "wilcoxon" in history[-1]["reason"]
    # nothing left to decide: the next run records that and moves nothing
    again = ops.decide(settings)
    assert again["decision"] == "no_challenger"
    assert str(c.get_model_version_by_alias(name, "champion").version) == strong.version


def test_rollback_restores_the_previous_champion_and_records_it(
    lake: str, mlflow_server: str
) -> None:
    from dex.cli import app

    name = "ops-rollback"
    first = train_model(lake, mlflow_server, name, **QUICK)
    second = train_model(lake, mlflow_server, name, promotion_margin=0.0, **QUICK)  # a tie wins
    assert (first.alias, second.alias) == ("champion", "champion")
    c = client(mlflow_server)
    assert c.get_model_version(name, second.version).tags["dex.previous_champion"] == "1"
    cli = CliRunner()
    common = ["--tracking-uri", mlflow_server, "--model-name", name]

    done = cli.invoke(app, ["model", "rollback", "--reason", "online MAE doubled", *common])
    assert done.exit_code == 0, done.output
    assert str(c.get_model_version_by_alias(name, "champion").version) == first.version
    tags = c.get_model_version(name, first.version).tags
    assert tags["dex.rollback.from"] == second.version
    assert tags["dex.rollback.reason"] == "online MAE doubled"
    assert tags["dex.rollback.by"]
    assert c.get_model_version(name, second.version).tags["dex.decision"] == "rolled_back"
    last = ops.champion_history(c, name)[-1]
    assert (last["version"], last["previous"], last["kind"]) == ("1", "2", "rollback")
    assert json.loads(c.get_registered_model(name).tags["dex.last_rollback"])["to"] == "1"

    # v1 was the first champion: nothing before it
    refused = cli.invoke(app, ["model", "rollback", *common])
    assert refused.exit_code == 2
    assert "nothing to roll back to" in refused.output
    assert str(c.get_model_version_by_alias(name, "champion").version) == first.version
    missing = cli.invoke(app, ["model", "rollback", "--to", "99", *common])
    assert missing.exit_code == 2
    assert "no version 99" in missing.output
    unknown = cli.invoke(app, ["model", "rollback", "--tracking-uri", mlflow_server,
                               "--model-name", "never-registered"])  # fmt: skip
    assert unknown.exit_code == 2
    assert "no champion" in unknown.output

    # an explicit move is undone by the next plain rollback, through `python -m` too
    assert cli.invoke(app, ["model", "rollback", "--to", "2", *common]).exit_code == 0
    assert ops.main(["rollback", "--tracking-uri", mlflow_server, "--model-name", name]) == 0
    assert str(c.get_model_version_by_alias(name, "champion").version) == first.version


def test_feedback_on_the_s3_lake_is_idempotent_and_counts_pending(
    gold: Path, s3_endpoint: str, bucket: str
) -> None:
    store = open_lake(f"s3://{bucket}/lake")
    for path in sorted(gold.rglob("*.parquet")):
        store.write_bytes(path.read_bytes(), "gold", *path.relative_to(gold).parts)
    berlin = store.read_parquet("gold/weather/features/location=berlin/part-0.parquet")
    last = berlin["date"].to_pylist()[-1]
    actual = dict(zip(berlin["date"].to_pylist(), berlin["temp_max_c"].to_pylist(), strict=True))
    today = dt.datetime.now(dt.UTC).date()

    def rec(rid: str, day: dt.date | None, output: float, **kw: Any) -> dict[str, Any]:
        base = {"ts": f"{today}T10:00:00+00:00", "request_id": rid, "client": "t",
                "route": "predict", "model_name": "ops-s3", "model_version": "1",
                "role": "champion", "served": True,
                "for_date": None if day is None else str(day),
                "inputs": {"location": "berlin"}, "output": output}  # fmt: skip
        return {**base, **kw}

    days = [last - dt.timedelta(days=i) for i in range(5)]
    lines = [rec(f"r{i}", d, actual[d] + 1.0 + i) for i, d in enumerate(days)]  # errors 1..5
    lines += [
        rec("late", last + dt.timedelta(days=1), 20.0),  # its actual has not arrived
        rec("old-style", None, 20.0),  # from before the log named the day
        rec("paris", days[0], 20.0, inputs={"location": "paris"}),  # gold does not know it
        rec("r0", days[0], actual[days[0]] + 1.0),  # the same record again
    ]
    body = "".join(json.dumps(x) + "\n" for x in lines) + "{not json\n"
    store.write_bytes(body.encode(), "raw", "predictions", f"date={today}", "a.jsonl")
    settings = ops_settings(f"s3://{bucket}/lake", "unused", "ops-s3")

    first = ops.feedback(settings)
    assert first["counts"] == {
        "joined": 5, "pending": 1, "unjoinable": 2, "duplicate": 1, "malformed": 1,
    }  # fmt: skip
    (online,) = first["online"]
    assert online["samples"] == 5
    assert online["mae"] == pytest.approx(3.0)  # (1 + 2 + 3 + 4 + 5) / 5
    parts = store.glob("gold/model_feedback/*/part-0.parquet")
    assert len(parts) == 6  # five days with actuals, one pending
    before = {p: store.read_bytes(p) for p in parts}
    second = ops.feedback(settings)
    assert second["counts"] == first["counts"]
    assert {p: store.read_bytes(p) for p in parts} == before  # a rerun changes nothing
    row = store.read_parquet(f"gold/model_feedback/for_date={days[2]}/part-0.parquet").to_pylist()
    assert len(row) == 1
    assert row[0]["abs_error"] == pytest.approx(3.0)
    assert row[0]["actual"] == actual[days[2]]
    prom = store.read_bytes("_metrics", "feedback.prom").decode()
    assert 'dex_model_online_samples{model_version="1",role="champion"} 5.0' in prom
    assert 'dex_model_feedback_records{status="pending"} 1.0' in prom


def test_batch_scoring_equals_the_apis_predictions(
    lake: str, mlflow_server: str, tmp_path: Path
) -> None:
    from apps.api.app import Features

    name = "ops-score"
    champion = train_model(lake, mlflow_server, name)
    challenger = train_model(lake, mlflow_server, name, register_as="challenger", max_iter=20)
    settings = ops_settings(lake, mlflow_server, name)
    report = ops.score(settings)
    assert (report["champion"], report["challenger"]) == (champion.version, challenger.version)
    store = open_lake(lake)
    (day,) = report["for_dates"]
    assert day == "2023-07-01"  # the day after the newest features
    got = store.read_parquet(f"gold/weather/predictions/for_date={day}/part-0.parquet").to_pylist()
    assert len(got) == 4  # two locations, two models
    features = Features(store)
    for alias, version in (("champion", champion.version), ("challenger", challenger.version)):
        model = api_model(mlflow_server, name, alias, tmp_path / "api-cache")
        for location in ("berlin", "oslo"):
            row = features.latest(location)  # what GET /v1/forecast/{location} reads
            assert row is not None
            inputs = {k: row[k] for k in ("location", "date", *FEATURE_COLUMNS)}
            (expected,) = model.predict([inputs])
            (batch,) = [g for g in got if (g["location"], g["role"]) == (location, alias)]
            assert batch["temp_max_c"] == expected  # the same model on the same row: equal
            assert (batch["model_version"], str(batch["based_on"])) == (version, "2023-06-30")
            if alias == "champion":  # a defect that scored the day before would be caught
                part = store.read_parquet(
                    f"gold/weather/features/location={location}/part-0.parquet"
                )
                before = part.slice(part.num_rows - 2, 1).to_pylist()[0]
                assert model.predict([before])[0] != expected
    champ = {g["location"]: g["temp_max_c"] for g in got if g["role"] == "champion"}
    chal = {g["location"]: g["temp_max_c"] for g in got if g["role"] == "challenger"}
    assert champ != chal

    logged = [
        json.loads(line)
        for rel in store.glob("raw/predictions/date=*/batch-*.jsonl")
        for line in store.read_bytes(rel).decode().splitlines()
    ]
    assert len(logged) == 4
    assert {(r["route"], r["request_id"], r["for_date"]) for r in logged} == {
        ("batch", f"batch-{day}", day)
    }
    assert {(r["role"], r["served"]) for r in logged} == {("champion", True), ("challenger", False)}
    ops.score(settings)  # again the same day: replaces its own records
    (log_object,) = store.glob("raw/predictions/date=*/batch-*.jsonl")
    assert len(store.read_bytes(log_object).splitlines()) == 4
    fed = ops.feedback(settings)
    assert fed["counts"]["pending"] == 4  # 2023-07-01 has no actual yet


def test_drift_over_the_threshold_retrains_and_under_it_does_not(
    lake: str, mlflow_server: str
) -> None:
    from apps.training.data import load_features, time_split

    name = "ops-drift"
    champion = train_model(lake, mlflow_server, name, **QUICK)
    store = open_lake(lake)
    period, _, _ = time_split(
        load_features(lake).frame, TrainingSettings.model_fields["holdout_days"].default
    )
    rows = period.to_dict("records")  # the inputs the reference was made from
    today = dt.datetime.now(dt.UTC).date()

    def log(shift: float) -> None:
        shifted = [
            {**r, **{k: r[k] + shift for k in ("temp_max_c", "temp_min_c", "temp_mean_c")
                     if r[k] is not None}}
            for r in rows
        ]  # fmt: skip
        lines = records(
            request_id="drift", client="t", route="predict", model_name=name,
            model_version=champion.version, role="champion", served=True,
            inputs=shifted, outputs=[0.0] * len(shifted),
        )  # fmt: skip
        body = "".join(json.dumps(x, default=str) + "\n" for x in lines).encode()
        store.write_bytes(body, "raw", "predictions", f"date={today}", "drift.jsonl")

    c = client(mlflow_server)

    def versions() -> int:
        return len(c.search_model_versions(f"name = '{name}'"))

    settings = ops_settings(lake, mlflow_server, name)
    log(0.0)
    calm = ops.drift(settings)
    assert calm["rows"] == len(rows)
    assert calm["max_psi"] < settings.drift_threshold
    assert (calm["status"], calm["retrained"], versions()) == ("no drift", False, 1)
    assert store.exists("_metrics", "drift.prom")

    log(15.0)
    unchanged = ops.drift(settings)  # drift, but gold is what v1 was trained on
    assert unchanged["max_psi"] > settings.drift_threshold
    assert "temp_max_c" in unchanged["drifted"]
    assert (unchanged["retrained"], unchanged["training"]["skipped"], versions()) == (
        False,
        True,
        1,
    )
    forced = ops.drift(ops_settings(lake, mlflow_server, name, retrain_when_unchanged=True))
    assert forced["retrained"] is True
    assert versions() == 2
    assert forced["training"]["version"] == "2"
    reports = store.glob("_runs/model-drift/*.json")
    assert [store.read_json(r)["retrained"] for r in reports] == [False, False, True]


def test_daily_runs_every_step_and_its_exit_code_reports_a_failure(
    lake: str,
    mlflow_server: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["daily", "--lake", lake, "--tracking-uri", mlflow_server, "--model-name", "no-such"]
    assert ops.main(argv) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["feedback"]["ok"] is True
    assert report["decide"]["ok"] is True
    assert report["decide"]["result"]["decision"] == "no_champion"
    assert report["score"]["ok"] is False
    assert "no champion" in report["score"]["error"]
    assert report["drift"]["ok"] is False
    assert "error: score:" in captured.err
    prom = open_lake(lake).read_bytes("_metrics", "model-ops.prom").decode()
    assert 'dex_model_ops_step_success{step="score"} 0.0' in prom
    one = ["--lake", lake, "--tracking-uri", mlflow_server, "--model-name", "no-such"]
    assert ops.main(["score", *one]) == 1  # a step that failed
    assert ops.main(["feedback", *one]) == 0
    monkeypatch.delenv("DEX_LAKE_URL", raising=False)
    assert ops.main(["score", "--tracking-uri", mlflow_server]) == 2  # bad input: no lake
    assert "the lake is not set" in capsys.readouterr().err


@pytest.mark.slow
def test_the_model_ops_dag_runs_under_airflow(
    lake: str, mlflow_server: str, airflow_python: Path, tmp_path: Path
) -> None:
    name = "ops-airflow"
    train_model(lake, mlflow_server, name, **QUICK)
    env = airflow_environment(
        tmp_path / "airflow",
        airflow_python,
        AIRFLOW__CORE__PARALLELISM="2",
        DEX_PIPELINES_PYTHON=sys.executable,
        DEX_PIPELINES_PYTHONPATH=str(ROOT),
        DEX_LAKE_URL=lake,
        MLFLOW_TRACKING_URI=mlflow_server,
        DEX_MODEL_NAME=name,
    )
    script = (
        "import json; from airflow.dag_processing.dagbag import DagBag; "
        f"b = DagBag({str(ROOT / 'apps/pipelines/dags')!r}); d = b.get_dag('model_ops'); "
        "print(json.dumps({'errors': {k: str(v) for k, v in b.import_errors.items()}, "
        "'up': {t.task_id: sorted(t.upstream_task_ids) for t in d.tasks}}))"
    )
    out = subprocess.run(
        [str(airflow_python), "-c", script], env=env, check=True, capture_output=True, text=True
    )
    dag = json.loads(out.stdout.strip().splitlines()[-1])
    assert dag["errors"] == {}
    assert dag["up"] == {"feedback": [], "decide": ["feedback"], "score": ["decide"], "drift": []}
    run = subprocess.run(
        [str(AIRFLOW_VENV / "bin" / "airflow"), "dags", "test", "model_ops", "2024-06-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    store = open_lake(lake)
    assert store.exists("gold/weather/predictions/for_date=2023-07-01/part-0.parquet")
    (decision,) = store.glob("_runs/model-decisions/*.json")
    assert store.read_json(decision)["decision"] == "no_challenger"
    assert store.exists("_metrics", "feedback.prom")
    assert store.exists("_metrics", "drift.prom")
