"""A landed response as bronze parses it (`Raw`, with what was asked for: `Expect`), what
parsing makes of it (`Parsed`), the fields and units bronze reads, and the quarantine reasons
every parse path gives."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from apps.pipelines import units as U
from apps.shared.schema import QUARANTINE

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


def checksum(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def quarantine_table(records: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=QUARANTINE)
