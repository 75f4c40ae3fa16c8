"""What a response says about all of its hours, judged: why it is refused as a whole (units,
time zone, UTC offset, coordinates), and its hours as UTC instants by its own clock. Shared by
both parse paths and by the reconciliation (`audit.py`)."""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from typing import Any

from apps.pipelines import units as U
from apps.pipelines.responses import Expect
from apps.pipelines.sources import HOURLY

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


def refusal(doc: dict[str, Any], expect: Expect) -> str | None:
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
    if offset is not None and whole_seconds(offset) is None:
        return f"utc_offset_seconds is not a whole number of seconds: {offset!r}"
    zone = doc.get("timezone")
    if zone is not None:
        if not isinstance(zone, str):
            return f"timezone is not a name: {zone!r}"
        if zone in UTC_NAMES:
            if offset is not None and whole_seconds(offset) != 0:
                return f"timezone {zone} contradicts utc_offset_seconds {offset}"
        else:
            try:
                zoneinfo.ZoneInfo(zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                return f"unknown timezone {zone!r}"
    return coordinates_off(doc.get("latitude"), doc.get("longitude"), expect)


def coordinates_off(lat: Any, lon: Any, expect: Expect) -> str | None:
    """Why a response's coordinates are not its location's, or None when they are."""
    if expect.latitude is None or expect.longitude is None:
        return None
    want = f"({expect.latitude}, {expect.longitude})"
    if (
        number(lat) is None
        or number(lon) is None
        or not math.isfinite(lat)
        or not math.isfinite(lon)
    ):
        return f"coordinates missing or not numbers, expected {want}"
    dlat = abs(float(lat) - expect.latitude)
    dlon = abs((float(lon) - expect.longitude + 180.0) % 360.0 - 180.0)
    if dlat > COORDINATE_TOLERANCE_DEG or dlon > COORDINATE_TOLERANCE_DEG:
        return (
            f"coordinates ({lat}, {lon}) are more than {COORDINATE_TOLERANCE_DEG}° from the "
            f"location's {want}"
        )
    return None


def whole_seconds(value: Any) -> int | None:
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


def utc_times(
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
    offset = dt.timedelta(seconds=whole_seconds(doc.get("utc_offset_seconds")) or 0)
    repeated: dict[dt.datetime, int] = {}
    if zone is not None:
        for t in times:
            local = local_time(t)
            if local is not None:
                repeated[local] = repeated.get(local, 0) + 1
    folds: dict[dt.datetime, int] = {}
    for i, t in enumerate(times):
        local = local_time(t)
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


def local_time(t: Any) -> dt.datetime | None:
    """An iso8601 local time as the API writes it (YYYY-MM-DDTHH:MM), else None."""
    if not isinstance(t, str) or not re.fullmatch(ISO_LOCAL, t):
        return None
    try:
        return dt.datetime.strptime(t, "%Y-%m-%dT%H:%M")
    except ValueError:
        return None


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
