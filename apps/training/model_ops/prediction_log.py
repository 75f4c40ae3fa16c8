"""The prediction log (`raw/predictions/`) as the feedback step reads it: records in the
feedback's shape, this model's only, each counted once."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from typing import Any

from apps.shared.lake import Lake
from apps.training.model_ops.common import CHAMPION, day_of


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
        if (day := day_of(rel, "date")) is not None and day >= since
    ]
    counts: Counter[str] = Counter()
    out: list[dict[str, Any]] = []
    for rel, data in zip(rels, lake.read_many(rels), strict=True):
        logged_on = day_of(rel, "date")
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
