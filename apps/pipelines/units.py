"""The units the pipeline accepts, each spelling with where it comes from, and how each is
converted to silver's units (°C, %, mm, m/s).

A response names its units in `hourly_units`. A unit missing there takes the API's default
(the one Open-Meteo answers with when the request names none); any spelling not in this table
refuses the whole file, with its reason, before any row of it lands.

Sources: the Open-Meteo Historical Weather API documentation
(https://open-meteo.com/en/docs/historical-weather-api, request parameters `temperature_unit`,
`wind_speed_unit`, `precipitation_unit`, `timeformat`) and the spellings the API returns in
`hourly_units` for each of those settings (for example `wind_speed_unit=mph` answers `"mp/h"`).
"""

from __future__ import annotations

API = "Open-Meteo API response (hourly_units)"

ACCEPTED: dict[str, dict[str, str]] = {
    "temperature_2m": {
        "°C": f"{API}, temperature_unit=celsius (the default)",
        "°F": f"{API}, temperature_unit=fahrenheit",
    },
    "relative_humidity_2m": {"%": f"{API} (the only unit)"},
    "precipitation": {
        "mm": f"{API}, precipitation_unit=mm (the default)",
        "inch": f"{API}, precipitation_unit=inch",
    },
    "wind_speed_10m": {
        "km/h": f"{API}, wind_speed_unit=kmh (the default)",
        "m/s": f"{API}, wind_speed_unit=ms",
        "mp/h": f"{API}, wind_speed_unit=mph",
        "mph": "the request parameter's own spelling (wind_speed_unit=mph); accepted as before",
        "kn": f"{API}, wind_speed_unit=kn",
    },
    "time": {
        "iso8601": f"{API}, timeformat=iso8601 (the default): local time of `timezone`",
        "unixtime": f"{API}, timeformat=unixtime: seconds since the epoch, always UTC",
    },
}
"""Field -> accepted spelling -> its source."""

DEFAULTS: dict[str, str] = {
    "temperature_2m": "°C",
    "relative_humidity_2m": "%",
    "precipitation": "mm",
    "wind_speed_10m": "km/h",
    "time": "iso8601",
}
"""The API's default unit per field: what a response that names no unit is in."""

PRECIP_TO_MM: dict[str, tuple[float, float]] = {"mm": (1.0, 1.0), "inch": (25.4, 1.0)}
"""Precipitation: value * numerator / denominator = mm (1 inch = 25.4 mm exactly)."""

SPEED_TO_MS: dict[str, tuple[float, float]] = {
    "km/h": (1000.0, 3600.0),
    "m/s": (1.0, 1.0),
    "mp/h": (1609.344, 3600.0),  # the international mile: 1609.344 m exactly
    "mph": (1609.344, 3600.0),
    "kn": (1852.0, 3600.0),  # the international knot: 1852 m per hour exactly
}
"""Wind speed: value * numerator / denominator = m/s."""

FAHRENHEIT = "°F"
"""Temperature in °F is converted as (value - 32) * 5 / 9; °C is kept."""


def unknown_unit(field: str, unit: object) -> str | None:
    """Why `unit` is refused for `field`, or None when the table accepts it."""
    if isinstance(unit, str) and unit in ACCEPTED[field]:
        return None
    return (
        f"unknown {field} unit {unit!r} (accepted: {', '.join(sorted(ACCEPTED[field]))}; "
        "see apps/pipelines/units.py)"
    )
