"""Raw response -> typed bronze rows, and the records that cannot be typed -> quarantine.

Every hour entry of a response becomes exactly one bronze row or one quarantine record with
its reason; a response that is not JSON (or has no `hourly.time`) becomes one quarantine
record. Nothing is dropped: `rows_in == len(bronze) + len(quarantine)` always holds and is
checked by the caller.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from apps.pipelines.schema import BRONZE, QUARANTINE, TS
from apps.pipelines.sources import HOURLY

FIELDS = {  # source field -> bronze column
    "temperature_2m": "temperature",
    "relative_humidity_2m": "relative_humidity",
    "precipitation": "precipitation",
    "wind_speed_10m": "wind_speed",
}
UNITS = {
    "temperature_2m": "temperature_unit",
    "precipitation": "precipitation_unit",
    "wind_speed_10m": "wind_speed_unit",
}
DEFAULT_UNITS = {"temperature_2m": "°C", "precipitation": "mm", "wind_speed_10m": "km/h"}


@dataclass
class Parsed:
    rows_in: int
    bronze: pa.Table
    quarantine: pa.Table


@dataclass(frozen=True)
class Raw:
    """One landed response and what bronze needs to know about it."""

    body: bytes
    location: str
    fetched_at: dt.datetime


RESPONSE = pa.schema(
    [
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("utc_offset_seconds", pa.int64()),
        ("hourly_units", pa.struct([(f, pa.string()) for f in UNITS])),
        (
            "hourly",
            pa.struct(
                [("time", pa.list_(pa.string()))] + [(f, pa.list_(pa.float64())) for f in HOURLY]
            ),
        ),
    ]
)
"""The part of a response bronze reads, as Arrow's JSON reader is told to type it."""


def checksum(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _quarantine(records: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=QUARANTINE)


def parse_many(raws: Sequence[Raw]) -> list[Parsed]:
    """`parse_response` for many responses at once, with the same result for each.

    Well-formed responses (the norm) are typed together by Arrow's JSON reader, straight into
    columns with no Python object per value. A response it cannot type exactly as
    `parse_response` would (malformed JSON, wrong types, missing fields or units, ragged
    arrays, bad timestamps, a response spread over several lines) goes to `parse_response`."""
    bodies = [r.body.strip() for r in raws]
    columnar = [i for i, b in enumerate(bodies) if b[:1] == b"{" and b"\n" not in b]
    out: dict[int, Parsed] = {}
    _columnar(raws, bodies, columnar, out)
    return [
        out[i] if i in out else parse_response(r.body, r.location, r.fetched_at)
        for i, r in enumerate(raws)
    ]


def _columnar(
    raws: Sequence[Raw], bodies: Sequence[bytes], todo: list[int], out: dict[int, Parsed]
) -> None:
    """Parse responses `todo` together into `out`; a block Arrow rejects is split in halves,
    so one bad response costs a few re-reads, not the columnar path for its neighbours."""
    if not todo:
        return
    try:
        doc = pj.read_json(
            pa.BufferReader(b"\n".join(bodies[i] for i in todo)),
            read_options=pj.ReadOptions(block_size=1 << 22),
            parse_options=pj.ParseOptions(
                explicit_schema=RESPONSE, unexpected_field_behavior="ignore"
            ),
        ).combine_chunks()
        if doc.num_rows != len(todo):
            raise pa.ArrowInvalid("responses and JSON lines do not pair up")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        if len(todo) > 1:
            half = len(todo) // 2
            _columnar(raws, bodies, todo[:half], out)
            _columnar(raws, bodies, todo[half:], out)
        return
    hourly, units = _chunk(doc, "hourly"), _chunk(doc, "hourly_units")
    n = pc.list_value_length(pc.struct_field(hourly, "time"))
    ok = pc.and_(pc.and_(hourly.is_valid(), units.is_valid()), n.is_valid())
    for f in HOURLY:  # every array as long as `time`: else rows would be misaligned
        ok = pc.and_(ok, pc.equal(pc.list_value_length(pc.struct_field(hourly, f)), n))
    for f in UNITS:  # a missing unit takes a default, a null one is an error: parse_response
        ok = pc.and_(ok, pc.is_valid(pc.struct_field(units, f)))
    keep = pc.fill_null(ok, False)
    if not keep.to_numpy(zero_copy_only=False).all():
        kept = [i for i, k in zip(todo, keep.to_pylist(), strict=True) if k]
        if not kept:
            return
        doc = doc.filter(keep).combine_chunks()
        hourly, units = _chunk(doc, "hourly"), _chunk(doc, "hourly_units")
    else:
        kept = list(todo)
    lengths = pc.list_value_length(pc.struct_field(hourly, "time")).to_numpy().astype(np.int64)
    owner = pa.array(np.repeat(np.arange(len(kept), dtype=np.int64), lengths))
    local = pc.strptime(
        pc.list_flatten(pc.struct_field(hourly, "time")),
        format="%Y-%m-%dT%H:%M",
        unit="us",
        error_is_null=True,
    )
    if local.null_count:  # a bad timestamp: those responses go to parse_response
        bad = set(pc.unique(pc.filter(owner, pc.is_null(local))).to_pylist())
        _columnar(raws, bodies, [i for j, i in enumerate(kept) if j not in bad], out)
        return
    offsets = pc.fill_null(_chunk(doc, "utc_offset_seconds"), 0).to_numpy().astype(np.int64)
    utc = pc.subtract(
        local.cast(pa.int64()), pa.array(np.repeat(offsets * 1_000_000, lengths))
    ).cast(TS)
    location = pa.array([raws[i].location for i in kept], pa.string())
    digest = pa.array([checksum(raws[i].body) for i in kept], pa.string())
    fetched = pa.array([raws[i].fetched_at for i in kept], TS)
    columns = {
        "location": location.take(owner),
        "latitude": _chunk(doc, "latitude").take(owner),
        "longitude": _chunk(doc, "longitude").take(owner),
        "ts": utc,
        "_checksum": digest.take(owner),
        "_fetched_at": fetched.take(owner),
    }
    for f, col in FIELDS.items():
        columns[col] = pc.list_flatten(pc.struct_field(hourly, f))
    for f, col in UNITS.items():
        columns[col] = pc.struct_field(units, f).take(owner)
    table = pa.table({name: columns[name] for name in BRONZE.names}, schema=BRONZE)
    start = 0
    for i, k in zip(kept, lengths.tolist(), strict=True):
        out[i] = Parsed(k, table.slice(start, k), QUARANTINE.empty_table())
        start += k


def _chunk(table: pa.Table, name: str) -> Any:
    """The one chunk of a combined table's column."""
    return table.column(name).chunk(0)


def parse_response(body: bytes, location: str, fetched_at: dt.datetime) -> Parsed:
    """One response -> its bronze rows and its quarantine records (see the module's doc)."""
    digest = checksum(body)
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
        record = {
            "layer": "bronze",
            "location": location,
            "ts": None,
            "reason": reason,
            "record": body[:500].decode("utf-8", "replace"),
            "_checksum": digest,
        }
        return Parsed(1, BRONZE.empty_table(), _quarantine([record]))

    hourly: dict[str, Any] = doc.get("hourly") or {}
    units = doc.get("hourly_units")
    if not isinstance(units, dict):
        units = {}
    n = len(times)
    offset = dt.timedelta(seconds=int(doc.get("utc_offset_seconds") or 0))
    bad: dict[int, str] = {}

    # Timestamps: vectorized, then the stragglers one by one.
    ts_strings = pa.array([t if isinstance(t, str) else None for t in times], pa.string())
    ts = pc.strptime(ts_strings, format="%Y-%m-%dT%H:%M", unit="us", error_is_null=True)
    for i in pc.indices_nonzero(pc.is_null(ts)).to_pylist():
        bad.setdefault(i, "bad timestamp")
    ts = pc.subtract(ts.cast(pa.timestamp("us")), pa.scalar(offset, pa.duration("us")))
    ts = ts.cast(pa.timestamp("us", tz="UTC"))

    columns: dict[str, pa.Array] = {}
    for field in HOURLY:
        values = hourly.get(field)
        col = FIELDS[field]
        if not isinstance(values, list):
            for i in range(n):
                bad.setdefault(i, f"missing field: {field}")
            columns[col] = pa.nulls(n, pa.float64())
            continue
        if len(values) < n:
            for i in range(len(values), n):
                bad.setdefault(i, f"missing field: {field}")
            values = values + [None] * (n - len(values))
        elif len(values) > n:
            values = values[:n]  # entries without a timestamp cannot be placed: see rows_in
        try:
            columns[col] = pa.array(values, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            clean = []
            for i, v in enumerate(values):
                if v is None or (isinstance(v, int | float) and not isinstance(v, bool)):
                    clean.append(v)
                else:
                    clean.append(None)
                    bad.setdefault(i, f"wrong type: {field}")
            columns[col] = pa.array(clean, pa.float64())

    table = pa.table(
        {
            "location": pa.array([location] * n, pa.string()),
            "latitude": pa.array([_num(doc.get("latitude"))] * n, pa.float64()),
            "longitude": pa.array([_num(doc.get("longitude"))] * n, pa.float64()),
            "ts": ts,
            "temperature": columns["temperature"],
            "temperature_unit": pa.array(
                [str(units.get("temperature_2m", DEFAULT_UNITS["temperature_2m"]))] * n
            ),
            "relative_humidity": columns["relative_humidity"],
            "precipitation": columns["precipitation"],
            "precipitation_unit": pa.array(
                [str(units.get("precipitation", DEFAULT_UNITS["precipitation"]))] * n
            ),
            "wind_speed": columns["wind_speed"],
            "wind_speed_unit": pa.array(
                [str(units.get("wind_speed_10m", DEFAULT_UNITS["wind_speed_10m"]))] * n
            ),
            "_checksum": pa.array([digest] * n, pa.string()),
            "_fetched_at": pa.array([fetched_at] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=BRONZE,
    )
    extra = 0
    longest = max((len(v) for v in hourly.values() if isinstance(v, list)), default=n)
    if longest > n:
        extra = longest - n  # values with no timestamp: one quarantine record for them all
    if not bad and not extra:
        return Parsed(n, table, QUARANTINE.empty_table())
    mask = pa.array([i not in bad for i in range(n)])
    records = [
        {
            "layer": "bronze",
            "location": location,
            "ts": None if i in _ts_bad(bad) else table["ts"][i].as_py(),
            "reason": reason,
            "record": json.dumps(_entry(hourly, times, i), default=str)[:500],
            "_checksum": digest,
        }
        for i, reason in sorted(bad.items())
    ]
    if extra:
        records.append(
            {
                "layer": "bronze",
                "location": location,
                "ts": None,
                "reason": "values without a timestamp",
                "record": f"{extra} values",
                "_checksum": digest,
            }
        )
    return Parsed(n + (1 if extra else 0), table.filter(mask), _quarantine(records))


def _ts_bad(bad: dict[int, str]) -> set[int]:
    return {i for i, r in bad.items() if r.startswith("bad timestamp")}


def _entry(hourly: dict[str, Any], times: list[Any], i: int) -> dict[str, Any]:
    out: dict[str, Any] = {"time": times[i]}
    for field in HOURLY:
        values = hourly.get(field)
        out[field] = values[i] if isinstance(values, list) and i < len(values) else None
    return out


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
