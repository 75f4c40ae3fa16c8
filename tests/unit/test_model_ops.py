"""Model operations, the pure parts: reading the prediction log, the join with the actuals,
the feedback partitions, the statistical decision, the champion history; and the feedback
step whole on a local lake (no MLflow)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from apps.shared.lake import open_lake
from apps.training import ops
from apps.training.settings import ModelOpsSettings, TrainingSettings
from apps.training.train import PARAMS, hyper_parameters

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 10)


def record(**kw: Any) -> dict[str, Any]:
    base = {
        "ts": "2024-03-09T10:00:00+00:00",
        "request_id": "r1",
        "client": "c",
        "route": "predict",
        "model_name": "m",
        "model_version": "1",
        "role": "champion",
        "served": True,
        "for_date": str(DAY),
        "inputs": {"location": "berlin", "temp_max_c": 5.0},
        "output": 6.0,
    }
    return {**base, **kw}


def test_old_records_are_the_champions_served_and_unjoinable() -> None:
    old = {"ts": "t", "request_id": "r", "model_name": "m", "model_version": "3", "output": 1.5}
    old["inputs"] = {"location": "oslo"}
    got = ops.normalize(old, DAY)
    assert (got["role"], got["served"], got["for_date"]) == ("champion", True, None)
    rows, counts = ops.join_actuals([got], {"oslo": {DAY: 4.0}})
    assert rows == []
    assert counts == {"unjoinable": 1}


@pytest.mark.parametrize("output", [None, "x", float("nan"), float("inf")])
def test_a_record_without_a_finite_output_is_refused(output: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        ops.normalize(record(output=output), DAY)


def test_join_counts_joined_pending_missing_and_unjoinable() -> None:
    actuals: dict[str, dict[dt.date, float | None]] = {
        "berlin": {DAY - dt.timedelta(days=1): None, DAY: 10.0, DAY + dt.timedelta(days=1): None}
    }
    recs = [
        ops.normalize(record(for_date=str(DAY), output=12.5), DAY),  # joined, |12.5-10| = 2.5
        ops.normalize(record(for_date=str(DAY + dt.timedelta(days=1))), DAY),  # after: pending
        ops.normalize(record(for_date=str(DAY + dt.timedelta(days=5))), DAY),  # not in gold yet
        ops.normalize(record(for_date=str(DAY - dt.timedelta(days=1))), DAY),  # a gap in gold
        ops.normalize(record(inputs={"location": "paris"}), DAY),  # gold does not know it
        ops.normalize(record(for_date=None), DAY),
    ]
    rows, counts = ops.join_actuals(recs, actuals)
    assert counts == {"joined": 1, "pending": 2, "no_actual": 1, "unjoinable": 2}
    assert len(rows) == 4  # pending rows are kept, with an empty actual
    (joined,) = [r for r in rows if r["actual"] is not None]
    assert joined["abs_error"] == pytest.approx(2.5)
    assert all(r["abs_error"] is None for r in rows if r["actual"] is None)


def test_dedupe_keeps_the_latest_of_a_repeated_record_and_every_distinct_one() -> None:
    first = ops.normalize(record(output=1.0, ts="2024-03-09T01:00:00"), DAY)
    again = ops.normalize(record(output=2.0, ts="2024-03-09T02:00:00"), DAY)
    shadow = ops.normalize(record(model_version="2", role="challenger", served=False), DAY)
    anonymous = ops.normalize(record(request_id=""), DAY)
    kept, dropped = ops.dedupe([again, first, shadow, anonymous, anonymous])
    assert dropped == 1
    assert sorted(r["prediction"] for r in kept if r["model_version"] == "1") == [2.0, 6.0, 6.0]
    assert len(kept) == 4


def test_merge_partition_keeps_older_log_rows_and_other_models() -> None:
    since = DAY - dt.timedelta(days=3)

    def row(name: str, logged_on: dt.date, rid: str) -> dict[str, Any]:
        return {"model_name": name, "location": "berlin", "request_id": rid, "route": "predict",
                "model_version": "1", "role": "champion", "served": True,
                "logged_on": logged_on, "ts": ""}  # fmt: skip

    existing = [
        row("m", since - dt.timedelta(days=1), "old"),  # not re-read this run: kept
        row("m", since, "stale"),  # re-read this run: replaced by the fresh rows
        row("other", since, "theirs"),  # another model's: kept
    ]
    merged = ops.merge_partition(existing, [row("m", since, "fresh")], since, "m")
    assert [r["request_id"] for r in merged] == ["fresh", "old", "theirs"]
    assert ops.merge_partition(existing, [row("m", since, "fresh")], since, "m") == merged


def frame(errors: list[float], ids: list[str] | None = None) -> pd.DataFrame:
    ids = ids or [f"r{i}" for i in range(len(errors))]
    return pd.DataFrame(
        {"request_id": ids, "location": "berlin", "for_date": DAY, "abs_error": errors}
    )


KW: dict[str, Any] = {"min_pairs": 30, "min_samples": 30, "alpha": 0.05}


def test_paired_samples_use_wilcoxon_and_pick_the_direction() -> None:
    rng = np.random.default_rng(0)
    champion = rng.gamma(2.0, 1.0, 60)
    worse = frame(list(champion + rng.uniform(0.3, 1.0, 60)))
    better = frame(list(champion * rng.uniform(0.3, 0.7, 60)))
    base = frame(list(champion))
    retire = ops.compare(base, worse, **KW)
    assert (retire.verdict, retire.test, retire.samples) == ("retire", "wilcoxon", 60)
    assert retire.p_larger is not None
    assert retire.p_larger < 0.05 < (retire.p_smaller or 0)
    promote = ops.compare(base, better, **KW)
    assert (promote.verdict, promote.test) == ("promote", "wilcoxon")
    assert promote.challenger_mae is not None
    assert promote.champion_mae is not None
    assert promote.challenger_mae < promote.champion_mae
    same = ops.compare(base, base.copy(), **KW)
    assert (same.verdict, same.p_smaller, same.p_larger) == ("wait", 1.0, 1.0)
    noise = frame(list(champion + rng.normal(0, 0.01, 60)))
    assert ops.compare(base, noise, **KW).verdict == "wait"


def test_without_pairs_mann_whitney_decides_and_too_few_samples_wait() -> None:
    rng = np.random.default_rng(1)
    champion = frame(list(rng.gamma(2.0, 1.0, 40)), [f"a{i}" for i in range(40)])
    worse = frame(list(rng.gamma(2.0, 1.0, 40) + 2.0), [f"b{i}" for i in range(40)])
    result = ops.compare(champion, worse, **KW)
    assert (result.verdict, result.test, result.samples) == ("retire", "mannwhitneyu", 40)
    few = ops.compare(champion.head(10), worse.head(10), **KW)
    assert (few.verdict, few.test, few.p_smaller) == ("wait", "none", None)
    assert "too few samples" in few.reason


def test_the_history_is_bounded_by_count_and_by_mlflows_tag_limit() -> None:
    history = [{"version": str(i), "reason": "x" * 100} for i in range(100)]
    assert [h["version"] for h in ops.bound_history(history, 5)] == ["95", "96", "97", "98", "99"]
    long = [{"version": str(i), "reason": "y" * 1000} for i in range(20)]
    kept = ops.bound_history(long, 20)
    assert len(ops._compact(kept)) <= ops.TAG_VALUE_LIMIT
    assert kept[-1]["version"] == "19"
    assert len(kept) < 20


def test_hyper_parameters_default_to_the_tuned_ones() -> None:
    base = TrainingSettings(lake_url="file:///x")
    assert hyper_parameters(base) == PARAMS
    assert base.register_as == "auto"
    weak = TrainingSettings(lake_url="file:///x", max_iter=3, learning_rate=0.5)
    assert hyper_parameters(weak) == {**PARAMS, "max_iter": 3, "learning_rate": 0.5}


def test_every_ops_setting_is_documented_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, field in ModelOpsSettings.model_fields.items():
        assert field.description, f"ModelOpsSettings.{name} has no description"
    monkeypatch.setenv("DEX_DECISION_WINDOW_DAYS", "21")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    settings = ModelOpsSettings()
    assert (settings.decision_window_days, settings.tracking_uri) == (21, "http://mlflow:5000")
    assert (settings.decision_min_pairs, settings.decision_alpha) == (30, 0.05)


def write_gold(lake_url: str, location: str, values: dict[dt.date, float | None]) -> None:
    days = sorted(values)
    table = pa.table(
        {
            "location": [location] * len(days),
            "date": pa.array(days, pa.date32()),
            "temp_max_c": pa.array([values[d] for d in days], pa.float64()),
        }
    )
    open_lake(lake_url).write_parquet(
        table, "gold", "weather", "features", f"location={location}", "part-0.parquet"
    )


def write_log(lake_url: str, logged_on: dt.date, name: str, records: list[dict[str, Any]]) -> None:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    open_lake(lake_url).write_bytes(body, "raw", "predictions", f"date={logged_on}", name)


def test_feedback_on_a_local_lake_is_idempotent_and_picks_up_late_actuals(
    tmp_path: Path,
) -> None:
    lake = f"file://{tmp_path}/lake"
    today = dt.date.today()
    write_gold(lake, "berlin", {DAY: 10.0})
    write_log(
        lake,
        today,
        "a.jsonl",
        [
            record(output=12.0),
            record(request_id="r2", for_date=str(DAY + dt.timedelta(days=1))),
            record(model_name="another-model"),
        ],
    )
    settings = ModelOpsSettings(lake_url=lake, model_name="m")
    first = ops.feedback(settings, today=today)
    assert first["counts"]["joined"] == 1
    assert first["counts"]["pending"] == 1
    assert first["counts"]["other_model"] == 1
    assert first["online"] == [{"model_version": "1", "role": "champion", "mae": 2.0, "samples": 1}]
    part = tmp_path / "lake/gold/model_feedback" / f"for_date={DAY}" / "part-0.parquet"
    before = part.read_bytes()
    ops.feedback(settings, today=today)
    assert part.read_bytes() == before  # the same log and gold: the same bytes
    pending = open_lake(lake).read_parquet(
        "gold", "model_feedback", f"for_date={DAY + dt.timedelta(days=1)}", "part-0.parquet"
    )
    assert pending["actual"].to_pylist() == [None]  # kept, not dropped, while it waits
    write_gold(lake, "berlin", {DAY: 10.0, DAY + dt.timedelta(days=1): 5.0})  # arrives late
    late = ops.feedback(settings, today=today)
    assert late["counts"].get("pending", 0) == 0
    assert late["counts"]["joined"] == 2
    prom = (tmp_path / "lake/_metrics/feedback.prom").read_text()
    assert 'dex_model_online_samples{model_version="1",role="champion"} 2.0' in prom
    assert 'dex_model_online_mae{model_version="1",role="champion"} 1.5' in prom  # (2 + 1) / 2


def test_the_dex_cli_has_the_model_commands() -> None:
    from dex.cli import app

    result = CliRunner().invoke(app, ["model", "--help"])
    assert result.exit_code == 0
    assert "rollback" in result.output
    assert "ops" in result.output
