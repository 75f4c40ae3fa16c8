"""Profiling per layer (row counts, null rates, min/max) and freshness per location, as a
Prometheus text file kept in the lake (`_metrics/`), pushed to a Pushgateway when
`DEX_PUSHGATEWAY_URL` is set (in the cluster), and as plain data for the run report."""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, Gauge, generate_latest


def profile(table: pa.Table) -> dict[str, Any]:
    """Row count, and per numeric column the null rate, min and max."""
    out: dict[str, Any] = {"rows": table.num_rows, "columns": {}}
    for name in table.column_names:
        col = table[name]
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)) or name.startswith(
            "_"
        ):
            continue
        stats = pc.min_max(col)
        out["columns"][name] = {
            "null_rate": round(col.null_count / table.num_rows, 6) if table.num_rows else 0.0,
            "min": stats["min"].as_py(),
            "max": stats["max"].as_py(),
        }
    return out


def merge(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """The profile of two batches together (so no layer is held whole in memory)."""
    if a is None:
        return b
    rows = a["rows"] + b["rows"]
    columns: dict[str, Any] = {}
    for name in a["columns"].keys() | b["columns"].keys():
        x, y = a["columns"].get(name), b["columns"].get(name)
        if x is None or y is None:
            columns[name] = x or y
            continue
        nulls = x["null_rate"] * a["rows"] + y["null_rate"] * b["rows"]
        lows = [v for v in (x["min"], y["min"]) if v is not None]
        highs = [v for v in (x["max"], y["max"]) if v is not None]
        columns[name] = {
            "null_rate": round(nulls / rows, 6) if rows else 0.0,
            "min": min(lows) if lows else None,
            "max": max(highs) if highs else None,
        }
    return {"rows": rows, "columns": columns}


def render(
    profiles: dict[str, dict[str, Any]],
    freshness_hours: dict[str, float],
    last_success: dt.datetime,
) -> bytes:
    registry = CollectorRegistry()
    rows = Gauge(
        "dex_pipeline_layer_rows",
        "Rows in the layer's partitions written by the run",
        ["pipeline", "layer"],
        registry=registry,
    )
    nulls = Gauge(
        "dex_pipeline_column_null_ratio",
        "Share of nulls per column",
        ["pipeline", "layer", "column"],
        registry=registry,
    )
    lo = Gauge(
        "dex_pipeline_column_min",
        "Minimum per column",
        ["pipeline", "layer", "column"],
        registry=registry,
    )
    hi = Gauge(
        "dex_pipeline_column_max",
        "Maximum per column",
        ["pipeline", "layer", "column"],
        registry=registry,
    )
    fresh = Gauge(
        "dex_pipeline_freshness_hours",
        "Hours between now and the newest silver observation",
        ["pipeline", "location"],
        registry=registry,
    )
    success = Gauge(
        "dex_pipeline_last_success_timestamp_seconds",
        "When the pipeline last completed",
        ["pipeline"],
        registry=registry,
    )
    for layer, prof in profiles.items():
        rows.labels("weather", layer).set(prof["rows"])
        for column, stats in prof["columns"].items():
            nulls.labels("weather", layer, column).set(stats["null_rate"])
            if stats["min"] is not None:
                lo.labels("weather", layer, column).set(stats["min"])
                hi.labels("weather", layer, column).set(stats["max"])
    for location, hours in freshness_hours.items():
        fresh.labels("weather", location).set(hours)
    success.labels("weather").set(last_success.timestamp())
    return generate_latest(registry)


log = logging.getLogger(__name__)


def push(body: bytes, job: str, url: str | None = None, timeout: float = 10.0) -> str | None:
    """PUT a batch job's metrics to the Pushgateway at `url` (default `DEX_PUSHGATEWAY_URL`),
    replacing the job's previous group. Returns None when pushed (or when no gateway is
    configured), else what went wrong: metrics never fail the job that made them."""
    import httpx

    url = url if url is not None else os.environ.get("DEX_PUSHGATEWAY_URL")
    if not url:
        return None
    target = f"{url.rstrip('/')}/metrics/job/{quote(job, safe='')}"
    try:
        resp = httpx.put(
            target,
            content=body,
            headers={"Content-Type": "text/plain; version=0.0.4"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        problem = f"pushing metrics to {target} failed: {exc}"
    else:
        if resp.status_code < 300:
            return None
        problem = f"pushing metrics to {target} failed: HTTP {resp.status_code} {resp.text[:200]}"
    log.warning("%s", problem)
    return problem
