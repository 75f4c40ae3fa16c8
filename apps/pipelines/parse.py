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
import hashlib
import json
import math
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from apps.pipelines import units as U
from apps.pipelines.sources import HOURLY
from apps.shared.schema import BRONZE, QUARANTINE, TS

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
DEFAULT_UNITS = {f: U.DEFAULTS[f] for f in UNITS}

COORDINATE_TOLERANCE_DEG = 0.5
"""How far (degrees of latitude, and of longitude) a response's coordinates may be from its
location's. Open-Meteo answers with the centre of the grid cell it used (ERA5: 0.25°, ERA5-Land
and the high-resolution models: 0.1° or finer), at most about 0.125° from the request on each
axis, and may pick a neighbouring cell whose elevation fits better: 0.5° (about 55 km of
latitude) admits all of that and still tells apart any two of the configured places."""

UTC_NAMES = frozenset({"GMT", "UTC", "Etc/UTC", "Etc/GMT"})
"""`timezone` values meaning UTC (the API answers "GMT" for timezone=UTC)."""

ISO_LOCAL = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$"
"""An iso8601 hour as the API writes it (both parsers take exactly this shape)."""
REFUSED = "refused"
RAGGED = "ragged arrays"
DUPLICATE_DIFFERENT = "duplicate hour in response with different values"
DUPLICATE_SAME = "duplicate hour in response: identical copy collapsed"
NON_FINITE = "non-finite value"
OUTSIDE = "outside the requested window"


@dataclass(frozen=True)
class Expect:
    """What was asked for: the location's coordinates and the window (UTC dates, inclusive).
    None: not known (a response landed without it is not judged on it)."""

    latitude: float | None = None
    longitude: float | None = None
    start: dt.date | None = None
    end: dt.date | None = None


NOTHING = Expect()


@dataclass
class Parsed:
    rows_in: int
    bronze: pa.Table
    quarantine: pa.Table
    refused: str | None = None
    """Why the whole file was refused (its hours are all in `quarantine`), or None."""


@dataclass(frozen=True)
class Raw:
    """One landed response and what bronze needs to know about it."""

    body: bytes
    location: str
    fetched_at: dt.datetime
    expect: Expect = field(default=NOTHING)


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


def checksum(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _quarantine(records: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=QUARANTINE)


def parse_many(raws: Sequence[Raw]) -> list[Parsed]:
    """`parse_response` for many responses at once, with the same result for each.

    Well-formed responses (the norm) are typed together by Arrow's JSON reader, straight into
    columns with no Python object per value. A response it cannot judge exactly as
    `parse_response` would (malformed JSON, wrong types, missing fields or units, units outside
    the table, a named time zone, ragged arrays, bad or repeated or unordered timestamps,
    non-finite values, hours outside the window, coordinates off the location, a response
    spread over several lines) goes to `parse_response`."""
    bodies = [r.body.strip() for r in raws]
    columnar = [
        i
        for i, b in enumerate(bodies)
        if b[:1] == b"{" and b"\n" not in b and not _NULL_UNIT.search(b)
    ]
    out: dict[int, Parsed] = {}
    _columnar(raws, bodies, columnar, out)
    return [
        out[i] if i in out else parse_response(r.body, r.location, r.fetched_at, r.expect)
        for i, r in enumerate(raws)
    ]


_NULL_UNIT = re.compile(rb'"(?:relative_humidity_2m|time)"\s*:\s*null')
"""A unit Arrow would read as absent (a default) that is present as null (refused): such a
response goes to parse_response, which tells the two apart."""


def _accepted(values: Any, field: str, nullable: bool = False) -> Any:
    """Per response: its unit for `field` is in the table (or absent, when `nullable`)."""
    ok = pc.is_in(values, value_set=pa.array(sorted(U.ACCEPTED[field]), pa.string()))
    return pc.or_kleene(ok, pc.is_null(values)) if nullable else pc.fill_null(ok, False)


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
    owner_np = np.repeat(np.arange(len(kept), dtype=np.int64), lengths)
    owner = pa.array(owner_np)
    texts = pc.list_flatten(pc.struct_field(hourly, "time"))
    local = pc.strptime(texts, format="%Y-%m-%dT%H:%M", unit="us", error_is_null=True)
    local = pc.if_else(pc.match_substring_regex(texts, ISO_LOCAL), local, None)
    offsets = pc.fill_null(_chunk(doc, "utc_offset_seconds"), 0).to_numpy().astype(np.int64)
    utc = pc.subtract(
        local.cast(pa.int64()), pa.array(np.repeat(offsets * 1_000_000, lengths))
    ).cast(TS)
    values = {f: pc.list_flatten(pc.struct_field(hourly, f)) for f in HOURLY}
    # Rows parse_response would quarantine: those responses go to parse_response.
    bad_row = pc.is_null(local).to_numpy(zero_copy_only=False)
    for v in values.values():
        bad_row |= ~pc.fill_null(pc.is_finite(v), True).to_numpy(zero_copy_only=False)
    micros = pc.fill_null(utc.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    same = owner_np[1:] == owner_np[:-1]
    bad_row[1:] |= same & (micros[1:] <= micros[:-1])  # repeated or unordered hours
    starts, ends = _window_micros([raws[i].expect for i in kept])
    bad_row |= (micros < starts[owner_np]) | (micros >= ends[owner_np])
    bad = np.zeros(len(kept), dtype=bool)
    bad[owner_np[bad_row]] = True
    bad |= _off_location(doc, [raws[i].expect for i in kept])
    if bad.any():
        _columnar(raws, bodies, [i for j, i in enumerate(kept) if not bad[j]], out)
        return
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
        columns[col] = values[f]
    for f, col in UNITS.items():
        columns[col] = pc.struct_field(units, f).take(owner)
    table = pa.table({name: columns[name] for name in BRONZE.names}, schema=BRONZE)
    start = 0
    for i, k in zip(kept, lengths.tolist(), strict=True):
        out[i] = Parsed(k, table.slice(start, k), QUARANTINE.empty_table())
        start += k


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
            out[j] = _coordinates_off(lat[j], lon[j], e) is not None
    return out


def _coordinates_off(lat: Any, lon: Any, expect: Expect) -> str | None:
    """Why a response's coordinates are not its location's, or None when they are."""
    if expect.latitude is None or expect.longitude is None:
        return None
    want = f"({expect.latitude}, {expect.longitude})"
    if _num(lat) is None or _num(lon) is None or not math.isfinite(lat) or not math.isfinite(lon):
        return f"coordinates missing or not numbers, expected {want}"
    dlat = abs(float(lat) - expect.latitude)
    dlon = abs((float(lon) - expect.longitude + 180.0) % 360.0 - 180.0)
    if dlat > COORDINATE_TOLERANCE_DEG or dlon > COORDINATE_TOLERANCE_DEG:
        return (
            f"coordinates ({lat}, {lon}) are more than {COORDINATE_TOLERANCE_DEG}° from the "
            f"location's {want}"
        )
    return None


def _chunk(table: pa.Table, name: str) -> Any:
    """The one chunk of a combined table's column."""
    return table.column(name).chunk(0)


def parse_response(
    body: bytes, location: str, fetched_at: dt.datetime, expect: Expect = NOTHING
) -> Parsed:
    """One response -> its bronze rows and its quarantine records (see the module's doc)."""
    digest = checksum(body)

    def record(ts: dt.datetime | None, reason: str, text: str) -> dict[str, Any]:
        return {
            "layer": "bronze",
            "location": location,
            "ts": ts,
            "reason": reason,
            "record": text[:500],
            "_checksum": digest,
        }

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
        return Parsed(1, BRONZE.empty_table(), _quarantine([record(None, reason, text)]))

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

    refused = _refusal(doc, expect)
    if refused is not None:
        records = whole(f"{REFUSED}: {refused}")
        return Parsed(len(records), BRONZE.empty_table(), _quarantine(records), refused)
    lengths = {f: len(v) for f, v in hourly.items() if f in HOURLY and isinstance(v, list)}
    if any(k != n for k in lengths.values()):
        sizes = ", ".join(f"{f} {k}" for f, k in lengths.items())
        records = whole(f"{RAGGED}: time has {n} entries, {sizes}")
        return Parsed(len(records), BRONZE.empty_table(), _quarantine(records))

    units = doc.get("hourly_units") or {}
    bad: dict[int, str] = {}
    ts = _utc_times(doc, times, units.get("time", U.DEFAULTS["time"]), bad)

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

    if expect.start is not None or expect.end is not None:
        lo = expect.start or dt.date.min
        hi = expect.end or dt.date.max
        for i, t in enumerate(ts):
            if t is not None and not lo <= t.date() <= hi:
                bad.setdefault(i, f"{OUTSIDE} {lo}..{hi}")

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

    table = pa.table(
        {
            "location": pa.array([location] * n, pa.string()),
            "latitude": pa.array([_num(doc.get("latitude"))] * n, pa.float64()),
            "longitude": pa.array([_num(doc.get("longitude"))] * n, pa.float64()),
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
    if not bad:
        return Parsed(n, table, QUARANTINE.empty_table())
    mask = pa.array([i not in bad for i in range(n)])
    records = [
        record(ts[i], reason, json.dumps(_entry(hourly, times, i), default=str))
        for i, reason in sorted(bad.items())
    ]
    return Parsed(n, table.filter(mask), _quarantine(records))


def _refusal(doc: dict[str, Any], expect: Expect) -> str | None:
    """Why the whole response is refused (units, time zone, time format, coordinates), or
    None. A response is refused when what it says about all of its hours cannot be trusted."""
    units = doc.get("hourly_units", {})
    if units is None:
        units = {}
    if not isinstance(units, dict):
        return f"hourly_units is not an object: {units!r}"[:200]
    for f in (*HOURLY, "time"):
        if f in units:
            why = U.unknown_unit(f, units[f])
            if why is not None:
                return why
    offset = doc.get("utc_offset_seconds")
    if offset is not None and _whole(offset) is None:
        return f"utc_offset_seconds is not a whole number of seconds: {offset!r}"
    zone = doc.get("timezone")
    if zone is not None:
        if not isinstance(zone, str):
            return f"timezone is not a name: {zone!r}"
        if zone in UTC_NAMES:
            if offset is not None and _whole(offset) != 0:
                return f"timezone {zone} contradicts utc_offset_seconds {offset}"
        else:
            try:
                zoneinfo.ZoneInfo(zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                return f"unknown timezone {zone!r}"
    return _coordinates_off(doc.get("latitude"), doc.get("longitude"), expect)


def _whole(value: Any) -> int | None:
    """A whole number of seconds (an int, or a string of one), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _utc_times(
    doc: dict[str, Any], times: list[Any], time_unit: str, bad: dict[int, str]
) -> list[dt.datetime | None]:
    """Each entry of `hourly.time` as a UTC instant, as the response says (`timeformat`,
    `timezone`, `utc_offset_seconds`); None (with its reason in `bad`) where it cannot be told.

    unixtime is UTC whatever the zone (the API's rule). iso8601 is local time: in a named zone
    by that zone's rules: an hour its clocks skip is refused, an hour they repeat is taken as
    the first (earlier) instant where it appears first and the second where it appears again,
    and refused where it appears once (it could be either); with no zone, at the fixed
    `utc_offset_seconds`."""
    out: list[dt.datetime | None] = []
    if time_unit == "unixtime":
        for i, t in enumerate(times):
            if isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 253402300800:
                out.append(dt.datetime.fromtimestamp(t, dt.UTC))
            else:
                out.append(None)
                bad.setdefault(i, "bad timestamp: not unixtime seconds")
        return out
    zone_name = doc.get("timezone")
    zone = None if zone_name is None or zone_name in UTC_NAMES else zoneinfo.ZoneInfo(zone_name)
    offset = dt.timedelta(seconds=_whole(doc.get("utc_offset_seconds")) or 0)
    repeated: dict[dt.datetime, int] = {}
    if zone is not None:
        for t in times:
            local = _local(t)
            if local is not None:
                repeated[local] = repeated.get(local, 0) + 1
    folds: dict[dt.datetime, int] = {}
    for i, t in enumerate(times):
        local = _local(t)
        if local is None:
            out.append(None)
            bad.setdefault(i, "bad timestamp")
        elif zone is None:
            out.append((local - offset).replace(tzinfo=dt.UTC))
        else:
            early = local.replace(tzinfo=zone, fold=0)
            late = local.replace(tzinfo=zone, fold=1)
            if early.utcoffset() == late.utcoffset():
                out.append(early.astimezone(dt.UTC))
            elif early.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != local:
                out.append(None)
                bad.setdefault(i, f"nonexistent local time in {zone_name} (DST gap)")
            elif repeated[local] == 2:
                fold = folds.get(local, 0)
                folds[local] = fold + 1
                out.append((late if fold else early).astimezone(dt.UTC))
            else:
                out.append(None)
                bad.setdefault(i, f"ambiguous local time in {zone_name} (DST overlap)")
    return out


def _local(t: Any) -> dt.datetime | None:
    """An iso8601 local time as the API writes it (YYYY-MM-DDTHH:MM), else None."""
    if not isinstance(t, str) or not re.fullmatch(ISO_LOCAL, t):
        return None
    try:
        return dt.datetime.strptime(t, "%Y-%m-%dT%H:%M")
    except ValueError:
        return None


def _entry(hourly: dict[str, Any], times: list[Any], i: int) -> dict[str, Any]:
    out: dict[str, Any] = {"time": times[i]}
    for field_ in HOURLY:
        values = hourly.get(field_)
        out[field_] = values[i] if isinstance(values, list) and i < len(values) else None
    return out


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
