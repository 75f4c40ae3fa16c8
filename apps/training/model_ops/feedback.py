"""`feedback`: prediction-log records that name the day they predict, joined with that day's
actual in gold (`gold/model_feedback/for_date=D/part-0.parquet`, see `apps.training.ops`); the
decision window over those partitions; the online error per model version and role."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from typing import Any

import pandas as pd
import pyarrow as pa
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from apps.shared.lake import Lake
from apps.shared.metrics import push
from apps.training.model_ops.common import day_of, now, ops_lake
from apps.training.model_ops.prediction_log import dedupe, read_prediction_log
from apps.training.settings import ModelOpsSettings

FEEDBACK = pa.schema(
    [
        ("for_date", pa.date32()),
        ("location", pa.string()),
        ("route", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("role", pa.string()),
        ("served", pa.bool_()),
        ("request_id", pa.string()),
        ("prediction", pa.float64()),
        ("actual", pa.float64()),
        ("abs_error", pa.float64()),
        ("logged_on", pa.date32()),
        ("ts", pa.string()),
    ]
)
"""A feedback row: one logged prediction, its actual (empty while pending), the day its log
object was written (`logged_on`) and when it was made (`ts`). Models sharing a lake share the
partitions; each run rewrites only its own model's rows."""


def gold_actuals(lake: Lake) -> dict[str, dict[dt.date, float | None]]:
    """Per location, each day's actual maximum temperature (None where gold has the day but
    not its value)."""
    rels = lake.glob("gold/weather/features/location=*/part-0.parquet")
    out: dict[str, dict[dt.date, float | None]] = {}
    for rel, table in zip(
        rels, lake.read_parquet_many(rels, ["location", "date", "temp_max_c"]), strict=True
    ):
        location = rel.split("location=", 1)[1].split("/", 1)[0]
        days = out.setdefault(location, {})
        for day, value in zip(
            table["date"].to_pylist(), table["temp_max_c"].to_pylist(), strict=True
        ):
            days[day] = None if value is None or math.isnan(value) else float(value)
    return out


def join_actuals(
    records: list[dict[str, Any]], actuals: dict[str, dict[dt.date, float | None]]
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Feedback rows for every record that names a day and a known location (with the actual,
    or empty while pending), and the counts: joined, pending (the day's actual has not
    arrived), no_actual (gold has later days but not this one's value), unjoinable (no day,
    no location, or a location gold does not know)."""
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    newest = {
        loc: max((d for d, v in days.items() if v is not None), default=None)
        for loc, days in actuals.items()
    }
    for r in records:
        loc, day = r["location"], r["for_date"]
        if day is None or loc is None or loc not in actuals:
            counts["unjoinable"] += 1
            continue
        actual = actuals[loc].get(day)
        if actual is None:
            last = newest[loc]
            counts["pending" if last is None or day > last else "no_actual"] += 1
        else:
            counts["joined"] += 1
        rows.append(
            {
                **{k: r[k] for k in FEEDBACK.names if k in r},
                "actual": actual,
                "abs_error": None if actual is None else abs(r["prediction"] - actual),
            }
        )
    return rows, counts


def _sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["model_name"],
        row["location"],
        row["request_id"],
        row["route"],
        row["model_version"],
        row["role"],
        row["served"],
        row["logged_on"],
        row["ts"],
    )


def merge_partition(
    existing: list[dict[str, Any]], fresh: list[dict[str, Any]], since: dt.date, model_name: str
) -> list[dict[str, Any]]:
    """A feedback partition's rows: the existing rows of other models and those from log
    objects older than this run re-read (`logged_on` before `since`), and this run's rows,
    in a fixed order."""
    kept = [r for r in existing if r["model_name"] != model_name or r["logged_on"] < since]
    return sorted([*kept, *fresh], key=_sort_key)


def feedback_partitions(lake: Lake) -> dict[dt.date, str]:
    out = {}
    for rel in lake.glob("gold/model_feedback/for_date=*/part-0.parquet"):
        day = day_of(rel, "for_date")
        if day is not None:
            out[day] = rel
    return out


def window(lake: Lake, settings: ModelOpsSettings) -> tuple[pd.DataFrame, dt.date | None]:
    """The feedback rows of the window (all of them, pending too) and its last day: `as_of`,
    else the newest predicted day whose actual has arrived."""
    parts = feedback_partitions(lake)
    end = settings.as_of
    empty = pd.DataFrame(columns=FEEDBACK.names)
    if end is None:
        for day in sorted(parts, reverse=True):
            frame = _model_rows(lake.read_parquet(parts[day]), settings.model_name)
            if frame["actual"].notna().any():
                end = day
                break
    if end is None:
        return empty, None
    start = end - dt.timedelta(days=settings.decision_window_days - 1)
    rels = [rel for day, rel in sorted(parts.items()) if start <= day <= end]
    if not rels:
        return empty, end
    return _model_rows(pa.concat_tables(lake.read_parquet_many(rels)), settings.model_name), end


def _model_rows(table: pa.Table, model_name: str) -> pd.DataFrame:
    frame = table.to_pandas()
    return frame[frame["model_name"] == model_name].reset_index(drop=True)


def online_errors(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Online MAE and sample count per model version and role (rows with an actual)."""
    done = frame[frame["abs_error"].notna()]
    out = []
    for (version, role), group in done.groupby(["model_version", "role"], sort=True):
        out.append(
            {
                "model_version": str(version),
                "role": str(role),
                "mae": float(group["abs_error"].mean()),
                "samples": len(group),
            }
        )
    return out


def render_feedback(errors: list[dict[str, Any]], counts: dict[str, int]) -> bytes:
    registry = CollectorRegistry()
    mae = Gauge(
        "dex_model_online_mae",
        "Mean absolute error of logged predictions against the actuals, over the window",
        ["model_version", "role"],
        registry=registry,
    )
    samples = Gauge(
        "dex_model_online_samples",
        "Predictions with an actual in the window",
        ["model_version", "role"],
        registry=registry,
    )
    records = Gauge(
        "dex_model_feedback_records",
        "Prediction-log records read by the last feedback run, by outcome",
        ["status"],
        registry=registry,
    )
    success = Gauge(
        "dex_model_feedback_last_success_timestamp_seconds",
        "When the feedback step last completed",
        registry=registry,
    )
    for e in errors:
        mae.labels(e["model_version"], e["role"]).set(e["mae"])
        samples.labels(e["model_version"], e["role"]).set(e["samples"])
    for status in ("joined", "pending", "no_actual", "unjoinable", "duplicate", "malformed"):
        records.labels(status).set(counts.get(status, 0))
    success.set(now().timestamp())
    return generate_latest(registry)


def feedback(settings: ModelOpsSettings, today: dt.date | None = None) -> dict[str, Any]:
    """Join the prediction log with the actuals; rewrite the partitions of the days it names;
    report and publish the online error per model version."""
    lake = ops_lake(settings)
    today = today or now().date()
    since = today - dt.timedelta(days=settings.log_lookback_days - 1)
    records, counts = read_prediction_log(lake, since, settings.model_name)
    records, duplicates = dedupe(records)
    counts["duplicate"] = duplicates
    rows, joined = join_actuals(records, gold_actuals(lake))
    counts.update(joined)
    by_day: dict[dt.date, list[dict[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(row["for_date"], []).append(row)
    existing = feedback_partitions(lake)
    writes = []
    for day, fresh in sorted(by_day.items()):
        old = lake.read_parquet(existing[day]).to_pylist() if day in existing else []
        merged = merge_partition(old, fresh, since, settings.model_name)
        table = pa.Table.from_pylist(merged, schema=FEEDBACK)
        writes.append((table, ("gold", "model_feedback", f"for_date={day}", "part-0.parquet")))
    lake.write_parquet_many(writes)
    frame, end = window(lake, settings)
    errors = online_errors(frame)
    body = render_feedback(errors, dict(counts))
    lake.write_bytes(body, "_metrics", "feedback.prom")
    problem = push(body, "dex-model-feedback")
    report = {
        "records": len(records),
        "counts": {k: counts.get(k, 0) for k in sorted(counts)},
        "partitions_written": [str(d) for d in sorted(by_day)],
        "window": window_dict(end, settings),
        "online": errors,
        "metrics_push": problem or "ok",
    }
    lake.write_json(report, "_runs", "model-feedback", f"{now():%Y%m%dT%H%M%S%fZ}.json")
    return report


def window_dict(end: dt.date | None, settings: ModelOpsSettings) -> dict[str, Any]:
    if end is None:
        return {"start": None, "end": None, "days": settings.decision_window_days}
    start = end - dt.timedelta(days=settings.decision_window_days - 1)
    return {"start": str(start), "end": str(end), "days": settings.decision_window_days}
