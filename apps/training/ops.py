"""Model operations after training: online feedback, the champion/challenger decision, batch
scoring, rollback and drift-triggered retraining.

    python -m apps.training.ops feedback|decide|score|drift|daily [--lake URL] [--tracking-uri URI]
    python -m apps.training.ops rollback [--to VERSION] [--reason TEXT]

- `feedback`: prediction-log records (`raw/predictions/`) that name the day they predict,
  joined with that day's actual in gold. One partition per predicted day,
  `gold/model_feedback/for_date=D/part-0.parquet`, rebuilt whole from the log each run (the
  same log gives the same bytes; an actual that arrives late is joined on the next run). A
  record whose actual has not arrived is kept with an empty actual and counted as pending;
  one without a predicted day or with a location gold does not know is counted as
  unjoinable. The online MAE and sample count per model version and role over the window go
  to `_metrics/feedback.prom` (and the Pushgateway).
- `decide`: the current challenger's absolute errors against the current champion's over the
  window: the Wilcoxon signed-rank test on paired samples (the same request and location
  scored by both, in shadow or batch) when there are enough, else the Mann-Whitney U test on
  the two samples; one-sided at alpha. Significantly smaller: the challenger becomes champion;
  significantly larger: it is retired (its alias deleted); else the decision waits. Every
  decision is recorded on the challenger's version (`dex.decision*` tags), in the registered
  model's champion history (`dex.champion_history`), in the lake (`_runs/model-decisions/`)
  and as metrics.
- `score`: the next day for every location from its latest gold features, with the champion
  and, if there is one, the challenger, loaded and wrapped by the API's own `ModelStore` /
  `LoadedModel`; written to `gold/weather/predictions/for_date=D/part-0.parquet` and to the
  prediction log (route `batch`), which gives the decision paired samples every day.
- `rollback`: `champion` back to the previous champion (or `--to VERSION`), recorded in
  MLflow with who, when and why.
- `drift`: PSI of the recently logged inputs against the champion's training reference
  (`apps.api.drift`); above the threshold the model is retrained, and training decides
  whether the new version is champion or challenger.
- `daily`: feedback -> decide -> score -> drift, the one command the CronJob runs; every
  step runs (decide only after a good feedback) and each one's failure is reported.

Exit codes: 0 done, 1 a step failed, 2 bad input or a refused rollback.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import logging
import math
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from apps.shared.lake import Lake, open_lake
from apps.shared.metrics import push
from apps.shared.schema import FEATURE_COLUMNS
from apps.training.settings import ModelOpsSettings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from apps.api.model_store import LoadedModel

log = logging.getLogger("dex.training.ops")

STEPS = ("feedback", "decide", "score", "drift", "daily", "rollback")
DAILY = ("feedback", "decide", "score", "drift")
CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "dex.champion_history"
"""Registered-model tag: the champion changes, oldest first, as a JSON list."""
TAG_VALUE_LIMIT = 5000
"""MLflow's longest tag value: the history drops its oldest entries to stay under it."""
BATCH_CLIENT = "dex-batch"
"""The prediction log's `client` of the batch scorer."""

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

PREDICTIONS = pa.schema(
    [
        ("location", pa.string()),
        ("for_date", pa.date32()),
        ("based_on", pa.date32()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("role", pa.string()),
        ("temp_max_c", pa.float64()),
    ]
)
"""A batch prediction: the day predicted, the features' day, the model and its role."""


class OpsError(Exception):
    """A step that cannot do its work (no champion, no features, registry unreachable)."""


class RollbackError(OpsError):
    """A rollback refused: nothing to roll back to, or a version that does not exist."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _lake(settings: ModelOpsSettings) -> Lake:
    if not settings.lake_url:
        raise OpsError("the lake is not set: pass --lake or set DEX_LAKE_URL")
    return open_lake(settings.lake_url)


def _day_of(rel: str, key: str) -> dt.date | None:
    """The date of a `key=YYYY-MM-DD` path segment."""
    for part in rel.split("/"):
        if part.startswith(f"{key}="):
            try:
                return dt.date.fromisoformat(part.removeprefix(f"{key}="))
            except ValueError:
                return None
    return None


# -- the registry ---------------------------------------------------------------------------------
def _client(settings: ModelOpsSettings) -> MlflowClient:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri)


_ABSENT = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version `alias` points to, None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in _ABSENT:
            return None
        raise


def champion_history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """The registered model's champion changes, oldest first ([] when none are recorded)."""
    raw = client.get_registered_model(name).tags.get(HISTORY_TAG)
    try:
        history = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        log.warning("the %s tag of %s is not JSON: starting a new history", HISTORY_TAG, name)
        return []
    return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []


def bound_history(history: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The newest `limit` entries, fewer if their JSON would exceed MLflow's tag limit."""
    kept = history[-limit:]
    while len(kept) > 1 and len(_compact(kept)) > TAG_VALUE_LIMIT:
        kept = kept[1:]
    return kept


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def record_champion_change(
    client: MlflowClient,
    name: str,
    *,
    version: str,
    previous: str | None,
    kind: str,
    by: str,
    reason: str,
    at: str | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """Append a champion change to the registered model's history and tag the new champion
    (`dex.champion_since`, and `dex.previous_champion` unless it is a rollback, which keeps
    the target's own previous champion so that rolling back again goes further back)."""
    entry = {
        "version": version,
        "previous": previous,
        "kind": kind,
        "at": at or _now().isoformat(timespec="seconds"),
        "by": by,
        "reason": reason[:300],
    }
    history = bound_history([*champion_history(client, name), entry], limit)
    client.set_registered_model_tag(name, HISTORY_TAG, _compact(history))
    client.set_model_version_tag(name, version, "dex.champion_since", entry["at"])
    if previous is not None and kind != "rollback":
        client.set_model_version_tag(name, version, "dex.previous_champion", previous)
    return entry


def _actor() -> str:
    try:
        return os.environ.get("DEX_ACTOR") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (a container's numeric user)
        return f"uid-{os.getuid()}"


# -- the prediction log ---------------------------------------------------------------------------
def normalize(record: dict[str, Any], logged_on: dt.date) -> dict[str, Any]:
    """A log record in the feedback's shape; records written before roles existed are the
    champion's, served, and name no day (so they cannot be joined). Raises on a record
    without a finite output."""
    inputs = record.get("inputs") or {}
    location = inputs.get("location") if isinstance(inputs, dict) else None
    for_date = record.get("for_date")
    output = float(record["output"])
    if not math.isfinite(output):
        raise ValueError(f"output {output} is not a number")
    return {
        "for_date": dt.date.fromisoformat(str(for_date)[:10]) if for_date else None,
        "location": None if location is None else str(location),
        "route": str(record.get("route") or "predict"),
        "model_name": str(record.get("model_name") or ""),
        "model_version": str(record.get("model_version") or ""),
        "role": str(record.get("role") or CHAMPION),
        "served": bool(record.get("served", True)),
        "request_id": str(record.get("request_id") or ""),
        "prediction": output,
        "logged_on": logged_on,
        "ts": str(record.get("ts") or ""),
    }


def read_prediction_log(
    lake: Lake, since: dt.date, model_name: str
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The model's records in log objects written on `since` or later, normalized, and what
    was skipped (`malformed`, `other_model`)."""
    from apps.api.predlog import expand

    rels = [
        rel
        for rel in lake.glob("raw/predictions/date=*/*.jsonl")
        if (day := _day_of(rel, "date")) is not None and day >= since
    ]
    counts: Counter[str] = Counter()
    out: list[dict[str, Any]] = []
    for rel, data in zip(rels, lake.read_many(rels), strict=True):
        logged_on = _day_of(rel, "date")
        assert logged_on is not None
        for line in data.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            try:
                rows = [normalize(r, logged_on) for r in expand(json.loads(line))]
            except (ValueError, KeyError, TypeError, AttributeError):
                counts["malformed"] += 1
                continue
            for record in rows:
                if record["model_name"] and record["model_name"] != model_name:
                    counts["other_model"] += 1
                    continue
                record["model_name"] = model_name  # a record that names no model is this one's
                out.append(record)
    return out, counts


def dedupe(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """One record per request, location, day, model and role: a batch re-scored, or a log
    object read twice, counts once (the latest wins)."""
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    unkeyed: list[dict[str, Any]] = []
    for r in records:
        if not r["request_id"]:
            unkeyed.append(r)
            continue
        key = (
            r["request_id"],
            r["location"],
            r["for_date"],
            r["route"],
            r["model_version"],
            r["role"],
            r["served"],
        )
        old = latest.get(key)
        if old is None or (r["ts"], r["logged_on"]) >= (old["ts"], old["logged_on"]):
            latest[key] = r
    kept = [*latest.values(), *unkeyed]
    return kept, len(records) - len(kept)


# -- feedback -------------------------------------------------------------------------------------
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
        day = _day_of(rel, "for_date")
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
    success.set(_now().timestamp())
    return generate_latest(registry)


def feedback(settings: ModelOpsSettings, today: dt.date | None = None) -> dict[str, Any]:
    """Join the prediction log with the actuals; rewrite the partitions of the days it names;
    report and publish the online error per model version."""
    lake = _lake(settings)
    today = today or _now().date()
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
        "window": _window_dict(end, settings),
        "online": errors,
        "metrics_push": problem or "ok",
    }
    lake.write_json(report, "_runs", "model-feedback", f"{_now():%Y%m%dT%H%M%S%fZ}.json")
    return report


def _window_dict(end: dt.date | None, settings: ModelOpsSettings) -> dict[str, Any]:
    if end is None:
        return {"start": None, "end": None, "days": settings.decision_window_days}
    start = end - dt.timedelta(days=settings.decision_window_days - 1)
    return {"start": str(start), "end": str(end), "days": settings.decision_window_days}


# -- the decision ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing the challenger's absolute errors with the champion's."""

    verdict: str
    """promote, retire or wait."""
    test: str
    """wilcoxon (paired), mannwhitneyu (two samples) or none (too few samples)."""
    samples: int
    """Pairs for wilcoxon; the smaller of the two sample sizes otherwise."""
    p_smaller: float | None
    """p-value of "the challenger's errors are smaller"."""
    p_larger: float | None
    """p-value of "the challenger's errors are larger"."""
    champion_mae: float | None
    challenger_mae: float | None
    reason: str


def _p(value: float) -> float:
    return 1.0 if math.isnan(value) else float(value)  # NaN: no information, no evidence


def compare(
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    *,
    min_pairs: int,
    min_samples: int,
    alpha: float,
) -> Comparison:
    """Champion and challenger rows with an actual (`request_id`, `location`, `for_date`,
    `abs_error`): the Wilcoxon signed-rank test on the pairs (the same request and location
    scored by both) when there are `min_pairs`, else the Mann-Whitney U test when each
    model has `min_samples`; one-sided both ways at `alpha`."""
    from scipy.stats import mannwhitneyu, wilcoxon  # type: ignore[import-untyped]

    keys = ["request_id", "location", "for_date"]
    a = champion[champion["request_id"] != ""].drop_duplicates(keys)
    b = challenger[challenger["request_id"] != ""].drop_duplicates(keys)
    pairs = a[[*keys, "abs_error"]].merge(b[[*keys, "abs_error"]], on=keys, suffixes=("_a", "_b"))
    if len(pairs) >= min_pairs:
        diff = pairs["abs_error_b"].to_numpy(float) - pairs["abs_error_a"].to_numpy(float)
        if np.allclose(diff, 0.0):
            p_smaller = p_larger = 1.0
        else:
            p_smaller = _p(wilcoxon(diff, alternative="less").pvalue)
            p_larger = _p(wilcoxon(diff, alternative="greater").pvalue)
        test, n = "wilcoxon", len(pairs)
        champ_mae = float(pairs["abs_error_a"].mean())
        chal_mae = float(pairs["abs_error_b"].mean())
    elif len(champion) >= min_samples and len(challenger) >= min_samples:
        x = challenger["abs_error"].to_numpy(float)
        y = champion["abs_error"].to_numpy(float)
        p_smaller = _p(mannwhitneyu(x, y, alternative="less").pvalue)
        p_larger = _p(mannwhitneyu(x, y, alternative="greater").pvalue)
        test, n = "mannwhitneyu", min(len(x), len(y))
        champ_mae, chal_mae = float(y.mean()), float(x.mean())
    else:
        return Comparison(
            "wait",
            "none",
            len(pairs),
            None,
            None,
            float(champion["abs_error"].mean()) if len(champion) else None,
            float(challenger["abs_error"].mean()) if len(challenger) else None,
            f"too few samples: {len(pairs)} pairs (need {min_pairs}), "
            f"{len(champion)} champion and {len(challenger)} challenger "
            f"(need {min_samples} each)",
        )
    if p_smaller < alpha:
        verdict = "promote"
    elif p_larger < alpha:
        verdict = "retire"
    else:
        verdict = "wait"
    reason = (
        f"{test} on {n} {'pairs' if test == 'wilcoxon' else 'samples each'}: MAE challenger "
        f"{chal_mae:.3f} vs champion {champ_mae:.3f}; p(smaller)={p_smaller:.3g}, "
        f"p(larger)={p_larger:.3g}, alpha={alpha}"
    )
    return Comparison(verdict, test, n, p_smaller, p_larger, champ_mae, chal_mae, reason)


def render_decision(decision: dict[str, Any]) -> bytes:
    registry = CollectorRegistry()
    info = Gauge(
        "dex_model_decision",
        "The last champion/challenger decision (1 for the decision taken)",
        ["decision", "test"],
        registry=registry,
    )
    p_value = Gauge(
        "dex_model_decision_p_value",
        "p-value of the last decision's one-sided tests",
        ["alternative"],
        registry=registry,
    )
    samples = Gauge("dex_model_decision_samples", "Samples compared", registry=registry)
    mae = Gauge(
        "dex_model_decision_mae", "MAE on the samples compared", ["role"], registry=registry
    )
    champion = Gauge(
        "dex_model_champion_version", "The champion's version after the decision", registry=registry
    )
    when = Gauge(
        "dex_model_decision_timestamp_seconds", "When the last decision ran", registry=registry
    )
    info.labels(decision["decision"], decision.get("test") or "none").set(1)
    for alternative in ("smaller", "larger"):
        value = decision.get(f"p_{alternative}")
        if value is not None:
            p_value.labels(alternative).set(value)
    samples.set(decision.get("samples") or 0)
    for role in (CHAMPION, CHALLENGER):
        value = decision.get(f"{role}_mae")
        if value is not None:
            mae.labels(role).set(value)
    after = decision.get("champion_after")
    if after is not None and str(after).isdigit():
        champion.set(int(after))
    when.set(_now().timestamp())
    return generate_latest(registry)


def decide(settings: ModelOpsSettings) -> dict[str, Any]:
    """Compare the current challenger with the current champion over the window and act."""
    lake = _lake(settings)
    client = _client(settings)
    name = settings.model_name
    at = _now()
    champion_v = alias_version(client, name, CHAMPION)
    challenger_v = alias_version(client, name, CHALLENGER)
    frame, end = window(lake, settings)
    decision: dict[str, Any] = {
        "model_name": name,
        "at": at.isoformat(timespec="seconds"),
        "champion": champion_v,
        "challenger": challenger_v,
        "window": _window_dict(end, settings),
        "alpha": settings.decision_alpha,
        "min_pairs": settings.decision_min_pairs,
        "min_samples": settings.decision_min_samples,
        "champion_after": champion_v,
    }
    if champion_v is None:
        decision |= {"decision": "no_champion", "reason": f"{name} has no champion"}
    elif challenger_v is None or challenger_v == champion_v:
        decision |= {"decision": "no_challenger", "reason": f"{name} has no challenger"}
    else:
        done = frame[frame["abs_error"].notna()]
        result = compare(
            done[done["model_version"] == champion_v],
            done[done["model_version"] == challenger_v],
            min_pairs=settings.decision_min_pairs,
            min_samples=settings.decision_min_samples,
            alpha=settings.decision_alpha,
        )
        decision |= {
            "decision": result.verdict,
            **{k: v for k, v in asdict(result).items() if k != "verdict"},
        }
        _act(client, settings, decision, champion_v, challenger_v)
    if champion_v is not None:  # else the registered model may not exist at all
        summary = {k: decision.get(k) for k in ("at", "decision", "champion", "challenger")}
        client.set_registered_model_tag(name, "dex.last_decision", _compact(summary))
    lake.write_json(decision, "_runs", "model-decisions", f"{at:%Y%m%dT%H%M%S%fZ}.json")
    body = render_decision(decision)
    lake.write_bytes(body, "_metrics", "model-decision.prom")
    decision["metrics_push"] = push(body, "dex-model-decision") or "ok"
    return decision


def _act(
    client: MlflowClient,
    settings: ModelOpsSettings,
    decision: dict[str, Any],
    champion_v: str,
    challenger_v: str,
) -> None:
    """Move the aliases the decision calls for, then tag the challenger's version with it."""
    name = settings.model_name
    verdict = decision["decision"]
    if verdict in ("promote", "retire") and (
        alias_version(client, name, CHAMPION) != champion_v
        or alias_version(client, name, CHALLENGER) != challenger_v
    ):
        raise OpsError(
            f"the aliases of {name} moved while deciding (champion v{champion_v}, challenger "
            f"v{challenger_v} when read): nothing changed; run the decision again"
        )
    if verdict == "promote":
        client.set_registered_model_alias(name, CHAMPION, challenger_v)
        client.delete_registered_model_alias(name, CHALLENGER)
        record_champion_change(
            client,
            name,
            version=challenger_v,
            previous=champion_v,
            kind="promotion",
            by="dex model ops decide",
            reason=decision["reason"],
            at=decision["at"],
            limit=settings.history_limit,
        )
        decision["champion_after"] = challenger_v
    elif verdict == "retire":
        client.delete_registered_model_alias(name, CHALLENGER)
    tags = {
        "dex.decision": verdict,
        "dex.decision.at": decision["at"],
        "dex.decision.test": decision["test"],
        "dex.decision.samples": str(decision["samples"]),
        "dex.decision.reason": decision["reason"][:500],
        "dex.decision.window": f"{decision['window']['start']}..{decision['window']['end']}",
        "dex.decision.champion": champion_v,
    }
    p_values = [p for p in (decision["p_smaller"], decision["p_larger"]) if p is not None]
    if p_values:
        tags["dex.decision.p_value"] = f"{min(p_values):.6g}"
        tags["dex.decision.p_smaller"] = f"{decision['p_smaller']:.6g}"
        tags["dex.decision.p_larger"] = f"{decision['p_larger']:.6g}"
    for key, value in tags.items():
        client.set_model_version_tag(name, challenger_v, key, value)


# -- batch scoring --------------------------------------------------------------------------------
@contextlib.contextmanager
def _model_cache(settings: ModelOpsSettings) -> Iterator[str]:
    if settings.model_cache_dir:
        yield settings.model_cache_dir
        return
    with tempfile.TemporaryDirectory(prefix="dex-ops-models-") as folder:
        yield folder


def load_alias(settings: ModelOpsSettings, alias: str, cache_dir: str) -> LoadedModel | None:
    """The alias's model as the API loads it (`ModelStore`: download, `LoadedModel.wrap`);
    None when the alias does not exist. Never a stale cached copy: a registry that cannot be
    reached is an error."""
    from apps.api.model_store import ModelStore

    # The store shortens MLflow's HTTP retries and timeout for a server's sake; a batch job
    # keeps MLflow's defaults for what follows (a retraining uploads the model).
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_HTTP_REQUEST_")}
    try:
        store = ModelStore(settings.tracking_uri, settings.model_name, alias, cache_dir)
        loaded = store.load()
    finally:
        for key in [k for k in os.environ if k.startswith("MLFLOW_HTTP_REQUEST_")]:
            del os.environ[key]
        os.environ.update(saved)
    if not store.registry_ok:
        raise OpsError(
            f"cannot load {settings.model_name}@{alias} from {settings.tracking_uri}: "
            f"{store.last_error}"
        )
    return None if store.absent else loaded


def latest_features(lake: Lake) -> list[dict[str, Any]]:
    """Per location, its newest gold features row, as the API's forecast route reads it
    (location, date and the model's inputs)."""
    rels = lake.glob("gold/weather/features/location=*/part-0.parquet")
    rows = []
    for table in lake.read_parquet_many(rels):
        if not table.num_rows:
            continue
        dates = table["date"].to_pylist()
        newest = max(range(len(dates)), key=lambda i: dates[i])
        row = table.slice(newest, 1).to_pylist()[0]
        rows.append({k: row[k] for k in ("location", "date", *FEATURE_COLUMNS)})
    return sorted(rows, key=lambda r: str(r["location"]))


def score(settings: ModelOpsSettings, today: dt.date | None = None) -> dict[str, Any]:
    """Predict the next day for every location with the champion (and the challenger);
    write the predictions to gold and to the prediction log."""
    from apps.api.predlog import records

    lake = _lake(settings)
    today = today or _now().date()
    rows = latest_features(lake)
    if not rows:
        raise OpsError(f"no gold features under {lake.uri('gold', 'weather', 'features')}")
    with _model_cache(settings) as cache:
        champion = load_alias(settings, CHAMPION, cache)
        if champion is None:
            raise OpsError(f"{settings.model_name} has no champion to score with")
        challenger = load_alias(settings, CHALLENGER, cache)
    models: list[tuple[LoadedModel, str, bool]] = [(champion, CHAMPION, True)]
    if challenger is not None and challenger.version != champion.version:
        models.append((challenger, CHALLENGER, False))  # a shadow score: nobody receives it
    by_day: dict[dt.date, list[dict[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(row["date"] + dt.timedelta(days=1), []).append(row)
    predictions: dict[dt.date, list[dict[str, Any]]] = {}
    logged: dict[dt.date, list[dict[str, Any]]] = {}
    for model, role, served in models:
        for day, group in by_day.items():
            # one row per call, as the forecast route predicts: the compiled forest's sums
            # run in another order for a batch, which can change the last bit
            values = [model.predict([row])[0] for row in group]
            for row, value in zip(group, values, strict=True):
                predictions.setdefault(day, []).append(
                    {
                        "location": row["location"],
                        "for_date": day,
                        "based_on": row["date"],
                        "model_name": model.name,
                        "model_version": model.version,
                        "role": role,
                        "temp_max_c": value,
                    }
                )
            logged.setdefault(day, []).extend(
                records(
                    request_id=f"batch-{day}",
                    client=BATCH_CLIENT,
                    route="batch",
                    model_name=model.name,
                    model_version=model.version,
                    role=role,
                    served=served,
                    inputs=group,
                    outputs=values,
                )
            )
    writes = []
    for day, fresh in sorted(predictions.items()):
        rel = ("gold", "weather", "predictions", f"for_date={day}", "part-0.parquet")
        scored = {(r["model_name"], r["location"]) for r in fresh}
        old = lake.read_parquet(*rel).to_pylist() if lake.exists(*rel) else []
        merged = [r for r in old if (r["model_name"], r["location"]) not in scored] + fresh
        merged.sort(key=lambda r: (r["model_name"], r["location"], r["role"]))
        writes.append((pa.Table.from_pylist(merged, schema=PREDICTIONS), rel))
    lake.write_parquet_many(writes)
    for day, new in sorted(logged.items()):
        _write_batch_log(lake, today, day, new)
    return {
        "champion": champion.version,
        "challenger": models[1][0].version if len(models) > 1 else None,
        "locations": [r["location"] for r in rows],
        "for_dates": [str(d) for d in sorted(predictions)],
        "predictions": [
            {**p, "for_date": str(p["for_date"]), "based_on": str(p["based_on"])}
            for day in sorted(predictions)
            for p in predictions[day]
        ],
    }


def _write_batch_log(lake: Lake, today: dt.date, day: dt.date, new: list[dict[str, Any]]) -> None:
    """The batch's records for one predicted day, in one log object per day written: a
    re-run the same day replaces its own records (by model, location, version and role)."""
    parts = ("raw", "predictions", f"date={today}", f"batch-{day}.jsonl")

    def key(r: dict[str, Any]) -> tuple[str, ...]:
        where = str(r["inputs"].get("location"))
        return (str(r["model_name"]), where, str(r["model_version"]), str(r["role"]))

    old = []
    if lake.exists(*parts):
        old = [json.loads(x) for x in lake.read_bytes(*parts).decode().splitlines() if x.strip()]
    replaced = {key(r) for r in new}
    merged = [r for r in old if key(r) not in replaced] + new
    body = "".join(json.dumps(r, default=str, sort_keys=True) + "\n" for r in merged)
    lake.write_bytes(body.encode(), *parts)


# -- rollback -------------------------------------------------------------------------------------
def previous_champion(client: MlflowClient, name: str, current: str) -> str | None:
    """The champion before `current`: its `dex.previous_champion` tag, else the history's
    newest entry that made it champion."""
    tags = client.get_model_version(name, current).tags
    if tags.get("dex.previous_champion"):
        return str(tags["dex.previous_champion"])
    for entry in reversed(champion_history(client, name)):
        if str(entry.get("version")) == current and entry.get("kind") != "rollback":
            previous = entry.get("previous")
            return None if previous is None else str(previous)
    return None


def _require_version(client: MlflowClient, name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    if not version.isdigit():
        raise RollbackError(f"--to must be a version number of {name}, got {version!r}")
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in _ABSENT:
            raise RollbackError(f"{name} has no version {version}") from exc
        raise


def rollback(
    settings: ModelOpsSettings,
    *,
    to: str | None = None,
    reason: str = "",
    by: str | None = None,
) -> dict[str, Any]:
    """Point `champion` back at the previous champion (or at version `to`), and record who,
    when and why on both versions and in the champion history."""
    client = _client(settings)
    name = settings.model_name
    by = by or _actor()
    reason = reason.strip() or "not given"
    current = alias_version(client, name, CHAMPION)
    if to is None:
        if current is None:
            raise RollbackError(f"{name} has no champion: there is nothing to roll back")
        target = previous_champion(client, name, current)
        if target is None:
            raise RollbackError(
                f"nothing to roll back to: {name} v{current} has no previous champion "
                "recorded; name a version with --to VERSION"
            )
    else:
        target = str(to).strip()
    _require_version(client, name, target)
    if target == current:
        raise RollbackError(f"{name} v{target} is already the champion")
    at = _now().isoformat(timespec="seconds")
    client.set_registered_model_alias(name, CHAMPION, target)
    challenger = alias_version(client, name, CHALLENGER)
    if challenger == target:
        client.delete_registered_model_alias(name, CHALLENGER)
    for key, value in {
        "dex.rollback.from": current or "",
        "dex.rollback.at": at,
        "dex.rollback.by": by,
        "dex.rollback.reason": reason[:500],
    }.items():
        client.set_model_version_tag(name, target, key, value)
    if to is not None and current is not None:
        # an explicit move is undone by the next plain rollback
        client.set_model_version_tag(name, target, "dex.previous_champion", current)
    if current is not None:
        for key, value in {
            "dex.decision": "rolled_back",
            "dex.decision.at": at,
            "dex.decision.by": by,
            "dex.decision.reason": reason[:500],
        }.items():
            client.set_model_version_tag(name, current, key, value)
    entry = record_champion_change(
        client,
        name,
        version=target,
        previous=current,
        kind="rollback",
        by=by,
        reason=reason,
        at=at,
        limit=settings.history_limit,
    )
    result = {"model_name": name, "from": current, "to": target, "at": at, "by": by}
    result["reason"] = entry["reason"]
    client.set_registered_model_tag(name, "dex.last_rollback", _compact(result))
    return result


# -- drift ----------------------------------------------------------------------------------------
def drift(settings: ModelOpsSettings, today: dt.date | None = None) -> dict[str, Any]:
    """PSI of recent inputs against the champion's reference; retrain above the threshold."""
    from apps.api.drift import measure, recent_inputs, render

    lake = _lake(settings)
    with _model_cache(settings) as cache:
        champion = load_alias(settings, CHAMPION, cache)
    if champion is None:
        raise OpsError(f"{settings.model_name} has no champion to compare inputs with")
    if not champion.reference:
        raise OpsError(
            f"{settings.model_name} v{champion.version} has no reference.json: drift cannot be "
            "measured (retrain it with the current training code)"
        )
    result = measure(champion.reference, recent_inputs(lake, settings.drift_days, today))
    body = render(result, champion.version)
    lake.write_bytes(body, "_metrics", "drift.prom")
    report: dict[str, Any] = {
        "model_version": champion.version,
        "days": settings.drift_days,
        "threshold": settings.drift_threshold,
        **result,
        "retrained": False,
        "metrics_push": push(body, "dex-model-drift") or "ok",
    }
    if result["rows"] < settings.drift_min_rows:
        report["status"] = f"too few inputs ({result['rows']} < {settings.drift_min_rows})"
    elif result["max_psi"] <= settings.drift_threshold:
        report["status"] = "no drift"
    else:
        report["status"] = "drift: retraining"
        report["training"] = _retrain(settings)
        report["retrained"] = not report["training"]["skipped"]
        if not report["retrained"]:
            report["status"] = "drift, but gold is unchanged since the latest version: kept it"
    lake.write_json(report, "_runs", "model-drift", f"{_now():%Y%m%dT%H%M%S%fZ}.json")
    return report


def _retrain(settings: ModelOpsSettings) -> dict[str, Any]:
    from apps.training.settings import TrainingSettings
    from apps.training.train import train

    assert settings.lake_url is not None
    result = train(
        TrainingSettings(
            lake_url=settings.lake_url,
            MLFLOW_TRACKING_URI=settings.tracking_uri,
            model_name=settings.model_name,
        ),
        skip_if_unchanged=not settings.retrain_when_unchanged,
    )
    return {
        "run_id": result.run_id,
        "version": result.version,
        "alias": result.alias,
        "skipped": result.skipped,
        "mae": result.metrics.get("mae"),
    }


# -- daily ----------------------------------------------------------------------------------------
def daily(settings: ModelOpsSettings) -> dict[str, Any]:
    """Every step in order; a failure is reported and the next steps still run (the decision
    only after a good feedback run, since it would judge stale feedback)."""
    results: dict[str, Any] = {}
    for step in DAILY:
        if step == "decide" and not results["feedback"]["ok"]:
            results[step] = {"ok": False, "error": "skipped: the feedback step failed"}
            continue
        try:
            results[step] = {"ok": True, "result": STEP_FUNCTIONS[step](settings)}
        except Exception as exc:
            log.exception("model ops step %s failed", step)
            results[step] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:1000]}
    results["ok"] = all(results[s]["ok"] for s in DAILY)
    if settings.lake_url:
        with contextlib.suppress(Exception):  # the lake may be what failed
            body = render_daily(results)
            _lake(settings).write_bytes(body, "_metrics", "model-ops.prom")
            results["metrics_push"] = push(body, "dex-model-ops") or "ok"
    return results


def render_daily(results: dict[str, Any]) -> bytes:
    registry = CollectorRegistry()
    ok = Gauge(
        "dex_model_ops_step_success",
        "1 when the step succeeded in the last daily run",
        ["step"],
        registry=registry,
    )
    for step in DAILY:
        ok.labels(step).set(1 if results[step]["ok"] else 0)
    if results["ok"]:
        Gauge(
            "dex_model_ops_last_success_timestamp_seconds",
            "When every daily model step last succeeded",
            registry=registry,
        ).set(_now().timestamp())
    return generate_latest(registry)


STEP_FUNCTIONS: dict[str, Callable[[ModelOpsSettings], dict[str, Any]]] = {
    "feedback": feedback,
    "decide": decide,
    "score": score,
    "drift": drift,
}


# -- command line ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    parser = argparse.ArgumentParser(
        prog="python -m apps.training.ops",
        description="Model operations: feedback, decide, score, drift, daily, rollback.",
    )
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--lake", help="the lake URL (default DEX_LAKE_URL)")
    parser.add_argument("--tracking-uri", help="MLflow (default MLFLOW_TRACKING_URI)")
    parser.add_argument("--model-name", help="the registered model (default DEX_MODEL_NAME)")
    parser.add_argument("--as-of", help="last predicted day of the window, YYYY-MM-DD")
    parser.add_argument("--to", help="rollback: the version to make champion")
    parser.add_argument("--reason", default="", help="rollback: why (recorded in MLflow)")
    parser.add_argument("--by", help="rollback: who (default DEX_ACTOR or the user)")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {}
    for key, value in (
        ("lake_url", opts.lake),
        ("tracking_uri", opts.tracking_uri),
        ("model_name", opts.model_name),
        ("as_of", opts.as_of),
    ):
        if value:
            overrides[key] = value
    try:
        settings = ModelOpsSettings(**overrides)
    except ValidationError as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    if opts.step != "rollback" and not settings.lake_url:
        print("error: the lake is not set: pass --lake or set DEX_LAKE_URL", file=sys.stderr)
        return 2
    if opts.step == "daily":
        result = daily(settings)
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
        for step in DAILY:
            if not result[step]["ok"]:
                print(f"error: {step}: {result[step]['error']}", file=sys.stderr)
        return 0 if result["ok"] else 1
    try:
        if opts.step == "rollback":
            result = rollback(settings, to=opts.to, reason=opts.reason, by=opts.by)
        else:
            result = STEP_FUNCTIONS[opts.step](settings)
    except RollbackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OpsError as exc:
        print(f"error: {opts.step}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
