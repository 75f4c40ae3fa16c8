"""Raw response -> typed bronze rows, and the records that cannot be typed -> quarantine.

Each response is judged as a whole before any row of it lands:

- **refused** (every hour quarantined with the file's reason, and the file named in the run's
  report): a unit not in `units.ACCEPTED`, a `timezone` that is not a known zone (or that
  contradicts `utc_offset_seconds`), a `timeformat` that is neither iso8601 nor unixtime,
  coordinates farther than `COORDINATE_TOLERANCE_DEG` from the location's.
- **malformed** (every hour quarantined with the reason): hourly arrays of different lengths
  (never padded or realigned).
- **per hour**: a timestamp that is not what `timeformat` says, a local hour that the zone's
  rules skip (DST gap) or repeat without telling which (DST overlap, given once), a value of
  the wrong type, a non-finite value (NaN, Infinity, 1e999), an hour outside the requested
  window, the same hour twice with different values (every copy), or twice with the same
  values (collapsed: the first copy is kept, the others quarantined as identical copies).

Nothing is dropped: `rows_in == len(bronze) + len(quarantine)` always holds and is checked by
the caller.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from apps.pipelines import units as U
from apps.pipelines.columnar import candidates, columnar
from apps.pipelines.judge import (
    COORDINATE_TOLERANCE_DEG,
    ISO_LOCAL,
    UTC_NAMES,
    number,
    refusal,
    utc_times,
)
from apps.pipelines.responses import (
    DEFAULT_UNITS,
    DUPLICATE_DIFFERENT,
    DUPLICATE_SAME,
    FIELDS,
    NON_FINITE,
    NOTHING,
    OUTSIDE,
    RAGGED,
    REFUSED,
    UNITS,
    Expect,
    Parsed,
    Raw,
    checksum,
    quarantine_table,
)
from apps.pipelines.sources import HOURLY
from apps.shared.schema import BRONZE, QUARANTINE, TS

__all__ = [
    "COORDINATE_TOLERANCE_DEG",
    "DEFAULT_UNITS",
    "DUPLICATE_DIFFERENT",
    "DUPLICATE_SAME",
    "FIELDS",
    "ISO_LOCAL",
    "NON_FINITE",
    "NOTHING",
    "OUTSIDE",
    "RAGGED",
    "REFUSED",
    "UNITS",
    "UTC_NAMES",
    "Expect",
    "Parsed",
    "Raw",
    "checksum",
    "parse_many",
    "parse_response",
]


def parse_many(raws: Sequence[Raw]) -> list[Parsed]:
    """`parse_response` for many responses at once, with the same result for each.

    Well-formed responses (the norm) are typed together by Arrow's JSON reader, straight into
    columns with no Python object per value (`columnar.py`). A response it cannot judge exactly
    as `parse_response` would (malformed JSON, wrong types, missing fields or units, units
    outside the table, a named time zone, ragged arrays, bad or repeated or unordered
    timestamps, non-finite values, hours outside the window, coordinates off the location, a
    response spread over several lines) goes to `parse_response`."""
    bodies = [r.body.strip() for r in raws]
    out: dict[int, Parsed] = {}
    columnar(raws, bodies, candidates(bodies), out)
    return [
        out[i] if i in out else parse_response(r.body, r.location, r.fetched_at, r.expect)
        for i, r in enumerate(raws)
    ]


Record = Callable[[dt.datetime | None, str, str], dict[str, Any]]
"""A quarantine record of the response being parsed: (hour, reason, record text) -> record."""


def _record(
    location: str, digest: str, ts: dt.datetime | None, reason: str, text: str
) -> dict[str, Any]:
    return {
        "layer": "bronze",
        "location": location,
        "ts": ts,
        "reason": reason,
        "record": text[:500],
        "_checksum": digest,
    }


def parse_response(
    body: bytes, location: str, fetched_at: dt.datetime, expect: Expect = NOTHING
) -> Parsed:
    """One response -> its bronze rows and its quarantine records (see the module's doc)."""
    digest = checksum(body)
    record: Record = functools.partial(_record, location, digest)
    try:
        doc = json.loads(body)
        times = doc["hourly"]["time"]
        if not isinstance(times, list):
            raise TypeError("hourly.time is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        reason = (
            "malformed JSON"
            if isinstance(exc, ValueError) and not isinstance(exc, KeyError)
            else "missing field: hourly.time"
        )
        text = body[:500].decode("utf-8", "replace")
        return Parsed(1, BRONZE.empty_table(), quarantine_table([record(None, reason, text)]))

    hourly: dict[str, Any] = doc["hourly"]
    n = len(times)
    untrusted = _untrusted(doc, expect, body, times, record)
    if untrusted is not None:
        return untrusted

    units = doc.get("hourly_units") or {}
    bad: dict[int, str] = {}
    ts = utc_times(doc, times, units.get("time", U.DEFAULTS["time"]), bad)
    columns = _typed(hourly, n, bad)
    _mark_outside(ts, expect, bad)
    _mark_duplicates(ts, columns, bad)
    table = _bronze(doc, units, location, digest, fetched_at, ts, columns)
    if not bad:
        return Parsed(n, table, QUARANTINE.empty_table())
    mask = pa.array([i not in bad for i in range(n)])
    records = [
        record(ts[i], reason, json.dumps(_entry(hourly, times, i), default=str))
        for i, reason in sorted(bad.items())
    ]
    return Parsed(n, table.filter(mask), quarantine_table(records))


def _untrusted(
    doc: dict[str, Any], expect: Expect, body: bytes, times: list[Any], record: Record
) -> Parsed | None:
    """A response judged as a whole: refused (what it says about all of its hours cannot be
    trusted) or malformed (ragged arrays), every hour quarantined; None when it is neither."""
    hourly: dict[str, Any] = doc["hourly"]
    n = len(times)

    def whole(reason: str) -> list[dict[str, Any]]:
        """Every hour of the response (at least one record) quarantined with `reason`."""
        if not n:
            return [record(None, reason, body[:500].decode("utf-8", "replace"))]
        return [
            record(None, reason, json.dumps(_entry(hourly, times, i), default=str))
            for i in range(n)
        ]

    refused = refusal(doc, expect)
    if refused is not None:
        records = whole(f"{REFUSED}: {refused}")
        return Parsed(len(records), BRONZE.empty_table(), quarantine_table(records), refused)
    lengths = {f: len(v) for f, v in hourly.items() if f in HOURLY and isinstance(v, list)}
    if any(k != n for k in lengths.values()):
        sizes = ", ".join(f"{f} {k}" for f, k in lengths.items())
        records = whole(f"{RAGGED}: time has {n} entries, {sizes}")
        return Parsed(len(records), BRONZE.empty_table(), quarantine_table(records))
    return None


def _typed(hourly: dict[str, Any], n: int, bad: dict[int, str]) -> dict[str, list[float | None]]:
    """Each hourly field's values as floats, by bronze column; a missing field, a value of the
    wrong type or a non-finite one is None, with its reason in `bad` (the first one kept)."""
    columns: dict[str, list[float | None]] = {}
    for f in HOURLY:
        values = hourly.get(f)
        if not isinstance(values, list):
            for i in range(n):
                bad.setdefault(i, f"missing field: {f}")
            columns[FIELDS[f]] = [None] * n
            continue
        clean: list[float | None] = []
        for i, v in enumerate(values):
            if v is None:
                clean.append(None)
            elif isinstance(v, int | float) and not isinstance(v, bool):
                try:
                    x = float(v)
                except OverflowError:  # an integer too large for a float
                    x = math.inf
                if math.isfinite(x):
                    clean.append(x)
                else:
                    clean.append(None)
                    bad.setdefault(i, f"{NON_FINITE}: {f}")
            else:
                clean.append(None)
                bad.setdefault(i, f"wrong type: {f}")
        columns[FIELDS[f]] = clean
    return columns


def _mark_outside(ts: list[dt.datetime | None], expect: Expect, bad: dict[int, str]) -> None:
    """Hours outside the requested window (when one is known) into `bad`."""
    if expect.start is not None or expect.end is not None:
        lo = expect.start or dt.date.min
        hi = expect.end or dt.date.max
        for i, t in enumerate(ts):
            if t is not None and not lo <= t.date() <= hi:
                bad.setdefault(i, f"{OUTSIDE} {lo}..{hi}")


def _mark_duplicates(
    ts: list[dt.datetime | None], columns: dict[str, list[float | None]], bad: dict[int, str]
) -> None:
    """An hour given more than once (among the hours not already bad) into `bad`: identical
    copies collapse to the first, copies with different values are all quarantined."""
    seen: dict[dt.datetime, list[int]] = {}
    for i, t in enumerate(ts):
        if t is not None and i not in bad:
            seen.setdefault(t, []).append(i)
    for rows in seen.values():
        if len(rows) > 1:
            copies = {tuple(columns[FIELDS[f]][i] for f in HOURLY) for i in rows}
            if len(copies) == 1:
                for i in rows[1:]:
                    bad[i] = DUPLICATE_SAME
            else:
                for i in rows:
                    bad[i] = DUPLICATE_DIFFERENT


def _bronze(
    doc: dict[str, Any],
    units: dict[str, Any],
    location: str,
    digest: str,
    fetched_at: dt.datetime,
    ts: list[dt.datetime | None],
    columns: dict[str, list[float | None]],
) -> pa.Table:
    """Every hour of the response as a bronze row (the bad ones are filtered out after)."""
    n = len(ts)
    return pa.table(
        {
            "location": pa.array([location] * n, pa.string()),
            "latitude": pa.array([number(doc.get("latitude"))] * n, pa.float64()),
            "longitude": pa.array([number(doc.get("longitude"))] * n, pa.float64()),
            "ts": pa.array(ts, TS),
            "temperature": pa.array(columns["temperature"], pa.float64()),
            "temperature_unit": pa.array(
                [str(units.get("temperature_2m", DEFAULT_UNITS["temperature_2m"]))] * n,
                pa.string(),
            ),
            "relative_humidity": pa.array(columns["relative_humidity"], pa.float64()),
            "precipitation": pa.array(columns["precipitation"], pa.float64()),
            "precipitation_unit": pa.array(
                [str(units.get("precipitation", DEFAULT_UNITS["precipitation"]))] * n,
                pa.string(),
            ),
            "wind_speed": pa.array(columns["wind_speed"], pa.float64()),
            "wind_speed_unit": pa.array(
                [str(units.get("wind_speed_10m", DEFAULT_UNITS["wind_speed_10m"]))] * n,
                pa.string(),
            ),
            "_checksum": pa.array([digest] * n, pa.string()),
            "_fetched_at": pa.array([fetched_at] * n, TS),
        },
        schema=BRONZE,
    )


def _entry(hourly: dict[str, Any], times: list[Any], i: int) -> dict[str, Any]:
    out: dict[str, Any] = {"time": times[i]}
    for field_ in HOURLY:
        values = hourly.get(field_)
        out[field_] = values[i] if isinstance(values, list) and i < len(values) else None
    return out
