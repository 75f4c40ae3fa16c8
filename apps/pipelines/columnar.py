"""The columnar path of `parse.parse_many`: well-formed responses (the norm) typed together by
Arrow's JSON reader, straight into columns with no Python object per value. A response it
cannot judge exactly as `parse.parse_response` would is left out, for `parse_response`."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from apps.pipelines import units as U
from apps.pipelines.judge import ISO_LOCAL, UTC_NAMES, coordinates_off
from apps.pipelines.responses import FIELDS, UNITS, Expect, Parsed, Raw, checksum
from apps.pipelines.sources import HOURLY
from apps.shared.schema import BRONZE, QUARANTINE, TS

RESPONSE = pa.schema(
    [
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("utc_offset_seconds", pa.int64()),
        ("timezone", pa.string()),
        (
            "hourly_units",
            pa.struct([(f, pa.string()) for f in (*UNITS, "relative_humidity_2m", "time")]),
        ),
        (
            "hourly",
            pa.struct(
                [("time", pa.list_(pa.string()))] + [(f, pa.list_(pa.float64())) for f in HOURLY]
            ),
        ),
    ]
)
"""The part of a response bronze reads, as Arrow's JSON reader is told to type it."""

NULL_UNIT = re.compile(rb'"(?:relative_humidity_2m|time)"\s*:\s*null')
"""A unit Arrow would read as absent (a default) that is present as null (refused): such a
response goes to parse_response, which tells the two apart."""


def candidates(bodies: Sequence[bytes]) -> list[int]:
    """The responses (by index; bodies stripped) the columnar path may try: one JSON object on
    one line, with no unit present as null."""
    return [
        i
        for i, b in enumerate(bodies)
        if b[:1] == b"{" and b"\n" not in b and not NULL_UNIT.search(b)
    ]


def columnar(
    raws: Sequence[Raw], bodies: Sequence[bytes], todo: list[int], out: dict[int, Parsed]
) -> None:
    """Parse responses `todo` together into `out`; a block Arrow rejects is split in halves,
    so one bad response costs a few re-reads, not the columnar path for its neighbours."""
    if not todo:
        return
    doc = _read(bodies, todo)
    if doc is None:
        if len(todo) > 1:
            half = len(todo) // 2
            columnar(raws, bodies, todo[:half], out)
            columnar(raws, bodies, todo[half:], out)
        return
    keep = _judgeable(doc)
    if not keep.to_numpy(zero_copy_only=False).all():
        kept = [i for i, k in zip(todo, keep.to_pylist(), strict=True) if k]
        if not kept:
            return
        doc = doc.filter(keep).combine_chunks()
    else:
        kept = list(todo)
    hours = _Hours.of(doc)
    bad = _faulty(doc, hours, [raws[i].expect for i in kept])
    if bad.any():
        columnar(raws, bodies, [i for j, i in enumerate(kept) if not bad[j]], out)
        return
    table = _bronze(doc, hours, [raws[i] for i in kept])
    start = 0
    for i, k in zip(kept, hours.lengths.tolist(), strict=True):
        out[i] = Parsed(k, table.slice(start, k), QUARANTINE.empty_table())
        start += k


def _read(bodies: Sequence[bytes], todo: list[int]) -> pa.Table | None:
    """The responses `todo` as one table (a row each), or None when Arrow rejects the block."""
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
        return None
    return doc


def _judgeable(doc: pa.Table) -> Any:
    """Per response: its arrays, units, time format and zone are ones this path judges exactly
    as parse_response does."""
    hourly, units = _chunk(doc, "hourly"), _chunk(doc, "hourly_units")
    n = pc.list_value_length(pc.struct_field(hourly, "time"))
    ok = pc.and_(pc.and_(hourly.is_valid(), units.is_valid()), n.is_valid())
    for f in HOURLY:  # every array as long as `time`: else the response is ragged
        ok = pc.and_(ok, pc.equal(pc.list_value_length(pc.struct_field(hourly, f)), n))
    for f in UNITS:  # a missing unit takes a default, a null one is refused: parse_response
        ok = pc.and_(ok, _accepted(pc.struct_field(units, f), f))
    ok = pc.and_(
        ok, _accepted(pc.struct_field(units, "relative_humidity_2m"), "relative_humidity_2m", True)
    )
    # iso8601 only (unixtime: parse_response), in UTC or at a fixed offset (a named zone's
    # rules: parse_response)
    time_unit = pc.struct_field(units, "time")
    ok = pc.and_(ok, pc.or_kleene(pc.equal(time_unit, "iso8601"), pc.is_null(time_unit)))
    zone, offset = _chunk(doc, "timezone"), _chunk(doc, "utc_offset_seconds")
    utc_zone = pc.and_(
        pc.is_in(zone, value_set=pa.array(sorted(UTC_NAMES), pa.string())),
        pc.fill_null(pc.equal(offset, 0), True),
    )
    ok = pc.and_(ok, pc.or_kleene(pc.is_null(zone), utc_zone))
    return pc.fill_null(ok, False)


def _accepted(values: Any, field: str, nullable: bool = False) -> Any:
    """Per response: its unit for `field` is in the table (or absent, when `nullable`)."""
    ok = pc.is_in(values, value_set=pa.array(sorted(U.ACCEPTED[field]), pa.string()))
    return pc.or_kleene(ok, pc.is_null(values)) if nullable else pc.fill_null(ok, False)


@dataclass(frozen=True)
class _Hours:
    """The hours of a block of responses, flattened: one entry per hour, in response order."""

    lengths: np.ndarray
    """Hours per response."""
    owner: np.ndarray
    """Per hour, the index of its response in the block."""
    local: Any
    """Per hour, its local time as written (null where it is not an iso8601 hour)."""
    utc: Any
    """Per hour, its UTC instant (the local time less the response's UTC offset)."""
    values: dict[str, Any]
    """Per hourly field, its values."""

    @classmethod
    def of(cls, doc: pa.Table) -> _Hours:
        hourly = _chunk(doc, "hourly")
        lengths = pc.list_value_length(pc.struct_field(hourly, "time")).to_numpy().astype(np.int64)
        owner = np.repeat(np.arange(doc.num_rows, dtype=np.int64), lengths)
        texts = pc.list_flatten(pc.struct_field(hourly, "time"))
        local = pc.strptime(texts, format="%Y-%m-%dT%H:%M", unit="us", error_is_null=True)
        local = pc.if_else(pc.match_substring_regex(texts, ISO_LOCAL), local, None)
        offsets = pc.fill_null(_chunk(doc, "utc_offset_seconds"), 0).to_numpy().astype(np.int64)
        utc = pc.subtract(
            local.cast(pa.int64()), pa.array(np.repeat(offsets * 1_000_000, lengths))
        ).cast(TS)
        values = {f: pc.list_flatten(pc.struct_field(hourly, f)) for f in HOURLY}
        return cls(lengths, owner, local, utc, values)


def _faulty(doc: pa.Table, hours: _Hours, expects: Sequence[Expect]) -> np.ndarray:
    """Per response: it holds an hour parse_response would quarantine (a bad timestamp, a
    non-finite value, a repeated or unordered hour, an hour outside the window) or its
    coordinates are off its location's; those responses go to parse_response."""
    owner = hours.owner
    bad_row = pc.is_null(hours.local).to_numpy(zero_copy_only=False)
    for v in hours.values.values():
        bad_row |= ~pc.fill_null(pc.is_finite(v), True).to_numpy(zero_copy_only=False)
    micros = pc.fill_null(hours.utc.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    same = owner[1:] == owner[:-1]
    bad_row[1:] |= same & (micros[1:] <= micros[:-1])  # repeated or unordered hours
    starts, ends = _window_micros(expects)
    bad_row |= (micros < starts[owner]) | (micros >= ends[owner])
    bad = np.zeros(len(expects), dtype=bool)
    bad[owner[bad_row]] = True
    bad |= _off_location(doc, expects)
    return bad


def _bronze(doc: pa.Table, hours: _Hours, raws: Sequence[Raw]) -> pa.Table:
    """The bronze rows of a block of responses, every hour of each, in response order."""
    owner = pa.array(hours.owner)
    location = pa.array([r.location for r in raws], pa.string())
    digest = pa.array([checksum(r.body) for r in raws], pa.string())
    fetched = pa.array([r.fetched_at for r in raws], TS)
    columns = {
        "location": location.take(owner),
        "latitude": _chunk(doc, "latitude").take(owner),
        "longitude": _chunk(doc, "longitude").take(owner),
        "ts": hours.utc,
        "_checksum": digest.take(owner),
        "_fetched_at": fetched.take(owner),
    }
    for f, col in FIELDS.items():
        columns[col] = hours.values[f]
    units = _chunk(doc, "hourly_units")
    for f, col in UNITS.items():
        columns[col] = pc.struct_field(units, f).take(owner)
    return pa.table({name: columns[name] for name in BRONZE.names}, schema=BRONZE)


_DAY_US = 86_400_000_000
_EPOCH = dt.date(1970, 1, 1)


def _window_micros(expects: Sequence[Expect]) -> tuple[np.ndarray, np.ndarray]:
    """Per response, the window as [start, end) in microseconds since the epoch (UTC)."""
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    starts = [lo if e.start is None else (e.start - _EPOCH).days * _DAY_US for e in expects]
    ends = [hi if e.end is None else ((e.end - _EPOCH).days + 1) * _DAY_US for e in expects]
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


def _off_location(doc: pa.Table, expects: Sequence[Expect]) -> np.ndarray:
    """Per response: its coordinates are missing or off its location's (when those are known)."""
    lat = pc.fill_null(_chunk(doc, "latitude"), np.nan).to_numpy(zero_copy_only=False)
    lon = pc.fill_null(_chunk(doc, "longitude"), np.nan).to_numpy(zero_copy_only=False)
    out = np.zeros(len(expects), dtype=bool)
    for j, e in enumerate(expects):
        if e.latitude is not None and e.longitude is not None:
            out[j] = coordinates_off(lat[j], lon[j], e) is not None
    return out


def _chunk(table: pa.Table, name: str) -> Any:
    """The one chunk of a combined table's column."""
    return table.column(name).chunk(0)
