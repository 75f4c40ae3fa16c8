"""Reconciliation of one raw file: what the file claims against what landed from it.

Independent of the parser on purpose (it reads the body with `json` and walks back from the
landed rows to the file's own clock), so a fault the parser lets through shows up here as a
mismatch instead of as zero: hours that landed twice or that the file does not hold, values
that the file does not pair with that hour (shifted, padded or misaligned rows), non-finite
values, hours outside the requested window, rows filed under a location the file's
coordinates do not belong to.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from apps.pipelines.judge import UTC_NAMES, coordinates_off
from apps.pipelines.responses import FIELDS, Expect
from apps.pipelines.sources import HOURLY

Key = tuple[Any, tuple[Any, ...]]


def _value(v: Any) -> float | str | None:
    if v is None:
        return None
    if isinstance(v, int | float) and not isinstance(v, bool):
        try:
            return float(v)
        except OverflowError:
            return "overflow"
    return repr(v)


def claims(body: bytes) -> tuple[dict[str, Any], Counter[Key]] | None:
    """The file's own (hour as written, values) pairs, or None when it is not a response."""
    try:
        doc = json.loads(body)
        hourly = doc["hourly"]
        times = hourly["time"]
        assert isinstance(times, list)
    except (ValueError, KeyError, TypeError, AssertionError):
        return None
    arrays = [hourly.get(f) if isinstance(hourly.get(f), list) else [] for f in HOURLY]
    pairs: Counter[Key] = Counter()
    for i, t in enumerate(times):
        values = tuple(_value(a[i]) if i < len(a) else "absent" for a in arrays)
        pairs[(t if isinstance(t, str | int) else repr(t), values)] += 1
    return doc, pairs


def _hour_keys(ts: pa.ChunkedArray, doc: dict[str, Any]) -> list[Any]:
    """Landed UTC hours written back on the file's own clock."""
    if (doc.get("hourly_units") or {}).get("time") == "unixtime":
        return [int(t.timestamp()) for t in ts.to_pylist()]
    zone = doc.get("timezone")
    if zone is None or zone in UTC_NAMES:
        offset = int(doc.get("utc_offset_seconds") or 0) if zone is None else 0
        sign = "-" if offset < 0 else "+"
        zone = f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    local = ts.cast(pa.timestamp("us", tz=zone))
    keys: list[Any] = pc.strftime(local, format="%Y-%m-%dT%H:%M").to_pylist()
    return keys


def audit(body: bytes, landed: pa.Table, expect: Expect) -> tuple[list[str], str, str]:
    """(problems, fingerprint of what the file holds at the landed hours, fingerprint of what
    landed). No problems and equal fingerprints: every landed row is one the file holds."""
    if not landed.num_rows:
        return [], "", ""
    claimed = claims(body)
    if claimed is None:
        return ["rows landed from a file that is not a response"], "", ""
    doc, pairs = claimed
    problems: list[str] = []
    hourly = doc["hourly"]
    lengths = {len(v) for f, v in hourly.items() if f in HOURLY and isinstance(v, list)}
    if lengths - {len(hourly["time"])}:
        problems.append("rows landed from a file whose hourly arrays disagree in length")
    if pc.count_distinct(landed["ts"]).as_py() != landed.num_rows:
        problems.append("the same hour landed twice from one file")
    columns = [FIELDS[f] for f in HOURLY]
    for col in columns:
        finite = pc.is_finite(landed[col])
        if not pc.all(pc.fill_null(finite, True)).as_py():
            problems.append(f"a non-finite {col} landed")
    days = pc.cast(landed["ts"], pa.date32())
    if expect.start is not None and pc.min(days).as_py() < expect.start:
        problems.append(f"an hour before the window ({expect.start}) landed")
    if expect.end is not None and pc.max(days).as_py() > expect.end:
        problems.append(f"an hour after the window ({expect.end}) landed")
    off = coordinates_off(doc.get("latitude"), doc.get("longitude"), expect)
    if off is not None:
        problems.append(f"rows landed under a location the file is not for: {off}")
    try:
        keys = _hour_keys(landed["ts"], doc)
    except (pa.ArrowInvalid, ValueError, TypeError):
        keys = [None] * landed.num_rows
    rows = zip(*(landed[c].to_pylist() for c in columns), strict=True)
    got: Counter[Key] = Counter(
        (k, tuple(None if v is None else float(v) for v in values))
        for k, values in zip(keys, rows, strict=True)
    )
    held = got & pairs
    if held != got:
        problems.append(
            f"{(got - pairs).total()} landed rows are not what the file holds at that hour"
        )
    return problems, _fingerprint(held), _fingerprint(got)


def _fingerprint(pairs: Counter[Key]) -> str:
    text = json.dumps(sorted((repr(k), n) for k, n in pairs.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
