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

This module is the command line and the daily run; each step's code is a module of
`apps/training/model_ops/`, and its public names are importable from here as well.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from apps.shared.metrics import push
from apps.training.model_ops.common import (
    CHALLENGER,
    CHAMPION,
    OpsError,
    RollbackError,
    log,
    now,
    ops_lake,
)
from apps.training.model_ops.decision import Comparison, compare, decide, render_decision
from apps.training.model_ops.drift import drift
from apps.training.model_ops.feedback import (
    FEEDBACK,
    feedback,
    feedback_partitions,
    gold_actuals,
    join_actuals,
    merge_partition,
    online_errors,
    render_feedback,
    window,
)
from apps.training.model_ops.models import load_alias
from apps.training.model_ops.prediction_log import dedupe, normalize, read_prediction_log
from apps.training.model_ops.registry import (
    HISTORY_TAG,
    TAG_VALUE_LIMIT,
    alias_version,
    bound_history,
    champion_history,
    record_champion_change,
)
from apps.training.model_ops.registry import compact as _compact
from apps.training.model_ops.rollback import previous_champion, rollback
from apps.training.model_ops.scoring import BATCH_CLIENT, PREDICTIONS, latest_features, score
from apps.training.settings import ModelOpsSettings

__all__ = [
    "BATCH_CLIENT",
    "CHALLENGER",
    "CHAMPION",
    "DAILY",
    "FEEDBACK",
    "HISTORY_TAG",
    "PREDICTIONS",
    "STEPS",
    "STEP_FUNCTIONS",
    "TAG_VALUE_LIMIT",
    "Comparison",
    "OpsError",
    "RollbackError",
    "_compact",
    "alias_version",
    "bound_history",
    "champion_history",
    "compare",
    "daily",
    "decide",
    "dedupe",
    "drift",
    "feedback",
    "feedback_partitions",
    "gold_actuals",
    "join_actuals",
    "latest_features",
    "load_alias",
    "main",
    "merge_partition",
    "normalize",
    "online_errors",
    "previous_champion",
    "read_prediction_log",
    "record_champion_change",
    "render_daily",
    "render_decision",
    "render_feedback",
    "rollback",
    "score",
    "window",
]

STEPS = ("feedback", "decide", "score", "drift", "daily", "rollback")
DAILY = ("feedback", "decide", "score", "drift")


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
            ops_lake(settings).write_bytes(body, "_metrics", "model-ops.prom")
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
        ).set(now().timestamp())
    return generate_latest(registry)


STEP_FUNCTIONS: dict[str, Callable[[ModelOpsSettings], dict[str, Any]]] = {
    "feedback": feedback,
    "decide": decide,
    "score": score,
    "drift": drift,
}


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
