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
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from apps.pipelines.schema import BRONZE, QUARANTINE
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


def checksum(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _quarantine(records: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=QUARANTINE)


def parse_response(body: bytes, location: str, fetched_at: dt.datetime) -> Parsed:
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
    units: dict[str, Any] = doc.get("hourly_units") or {}
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
