"""The drift job: recent model inputs (the prediction log) against the training reference.

For each feature, the population stability index over the reference's quantile bins:
PSI = sum((p_recent - p_ref) * ln(p_recent / p_ref)). Under 0.1 is stable, 0.1-0.25 worth a
look, above 0.25 a shift. The result is written as JSON and as Prometheus metrics
(`_metrics/drift.prom` in the lake) for the dashboards and alerts.

    python -m apps.api.drift --lake URL --reference reference.json [--days 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from apps.api.predlog import expand
from apps.shared.lake import Lake, open_lake

EPSILON = 1e-4


def psi(reference: dict[str, Any], values: list[float | None]) -> float | None:
    edges = np.asarray(reference["edges"], dtype=float)
    expected = np.asarray(reference["share"], dtype=float)
    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(data) == 0 or len(edges) < 2:
        return None
    clipped = np.clip(data, edges[0], edges[-1])
    counts, _ = np.histogram(clipped, bins=edges)
    actual = counts / counts.sum()
    e = np.clip(expected, EPSILON, None)
    a = np.clip(actual, EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def recent_inputs(lake: Lake, days: int, today: dt.date | None = None) -> list[dict[str, Any]]:
    today = today or dt.datetime.now(dt.UTC).date()
    rows: list[dict[str, Any]] = []
    for back in range(days):
        day = today - dt.timedelta(days=back)
        for rel in lake.glob(f"raw/predictions/date={day.isoformat()}/*.jsonl"):
            for line in lake.read_bytes(rel).decode().splitlines():
                if line.strip():
                    rows.extend(r["inputs"] for r in expand(json.loads(line)))
    return rows


def measure(reference: dict[str, Any], inputs: list[dict[str, Any]]) -> dict[str, Any]:
    scores = {name: psi(ref, [r.get(name) for r in inputs]) for name, ref in reference.items()}
    known = {k: v for k, v in scores.items() if v is not None}
    return {
        "rows": len(inputs),
        "psi": known,
        "drifted": sorted(k for k, v in known.items() if v > 0.25),
        "max_psi": max(known.values(), default=0.0),
    }


def render(result: dict[str, Any], model_version: str) -> bytes:
    registry = CollectorRegistry()
    g = Gauge(
        "dex_model_feature_psi",
        "Population stability index of a model input vs training",
        ["feature", "model_version"],
        registry=registry,
    )
    rows = Gauge(
        "dex_model_drift_rows",
        "Inputs compared in the last drift run",
        ["model_version"],
        registry=registry,
    )
    for feature, value in result["psi"].items():
        g.labels(feature, model_version).set(value)
    rows.labels(model_version).set(result["rows"])
    return generate_latest(registry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.api.drift")
    parser.add_argument("--lake", required=True)
    parser.add_argument("--reference", required=True, help="the model's reference.json")
    parser.add_argument("--model-version", default="unknown")
    parser.add_argument("--days", type=int, default=7)
    opts = parser.parse_args(argv)
    try:
        with open(opts.reference, encoding="utf-8") as fh:
            reference = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"error: cannot read the reference {opts.reference}: {exc}", file=sys.stderr)
        return 2
    lake = open_lake(opts.lake)
    result = measure(reference, recent_inputs(lake, opts.days))
    lake.write_bytes(render(result, opts.model_version), "_metrics", "drift.prom")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
