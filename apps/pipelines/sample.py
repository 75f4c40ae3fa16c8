"""The bundled sample data: SYNTHETIC hourly weather in the Open-Meteo response shape.

Realistic on purpose: a seasonal cycle by latitude, a daily cycle, autocorrelated noise,
humidity that falls as temperature rises, showers, gusty wind. Messy on purpose, so the
quarantine and the quality gate have something to show: a few nulls, impossible values,
strings where numbers belong, a truncated array, a malformed file, and a late correction
that overlaps a month already delivered (deduplicated in silver, latest ingestion wins).
Singapore reports in °F and m/s, to exercise unit normalization.

    python -m apps.pipelines.sample OUT_DIR [--start 2023-01-01 --end 2024-12-31]

The generator is seeded: the same arguments give the same files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
from pathlib import Path
from typing import Any

from apps.pipelines.locations import DEFAULT_LOCATIONS, Location
from apps.pipelines.sources import month_windows

CLIMATE = {  # annual mean °C, seasonal amplitude, daily amplitude, rain chance per hour
    "berlin": (10.0, 9.5, 4.0, 0.06),
    "madrid": (15.0, 9.0, 6.5, 0.03),
    "oslo": (6.5, 10.5, 3.5, 0.07),
    "singapore": (27.5, 1.0, 3.0, 0.09),
}


def _series(
    loc: Location, start: dt.date, end: dt.date, rng: random.Random
) -> dict[str, list[Any]]:
    mean, season, day_amp, rain_p = CLIMATE.get(loc.name, (12.0, 8.0, 4.0, 0.05))
    south = loc.latitude < 0
    hours = int(((end - start).days + 1) * 24)
    t0 = dt.datetime.combine(start, dt.time(0))
    times, temp, hum, rain, wind = [], [], [], [], []
    noise = 0.0
    for h in range(hours):
        t = t0 + dt.timedelta(hours=h)
        doy = t.timetuple().tm_yday
        seasonal = -math.cos(2 * math.pi * (doy - 15) / 365.25) * season * (-1 if south else 1)
        diurnal = -math.cos(2 * math.pi * (t.hour - 3) / 24) * day_amp
        noise = 0.92 * noise + rng.gauss(0, 0.8)
        value = mean + seasonal + diurnal + noise
        times.append(t.strftime("%Y-%m-%dT%H:%M"))
        temp.append(round(value, 1))
        hum.append(round(min(100.0, max(5.0, 75 - 1.8 * (value - mean) + rng.gauss(0, 6))), 0))
        rain.append(round(rng.gammavariate(0.8, 1.6), 1) if rng.random() < rain_p else 0.0)
        wind.append(round(max(0.0, rng.weibullvariate(12, 2.0)), 1))
    return {
        "time": times,
        "temperature_2m": temp,
        "relative_humidity_2m": hum,
        "precipitation": rain,
        "wind_speed_10m": wind,
    }


def _response(loc: Location, hourly: dict[str, list[Any]]) -> dict[str, Any]:
    fahrenheit = loc.name == "singapore"
    if fahrenheit:
        hourly = {
            **hourly,
            "temperature_2m": [
                round(v * 9 / 5 + 32, 1) if isinstance(v, float) else v
                for v in hourly["temperature_2m"]
            ],
            "wind_speed_10m": [
                round(v / 3.6, 2) if isinstance(v, float) else v for v in hourly["wind_speed_10m"]
            ],
        }
    return {
        "latitude": loc.latitude,
        "longitude": loc.longitude,
        "generationtime_ms": 0.5,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": 40.0,
        "hourly_units": {
            "time": "iso8601",
            "temperature_2m": "°F" if fahrenheit else "°C",
            "relative_humidity_2m": "%",
            "precipitation": "mm",
            "wind_speed_10m": "m/s" if fahrenheit else "km/h",
        },
        "hourly": hourly,
    }


def _mess(hourly: dict[str, list[Any]], rng: random.Random) -> None:
    n = len(hourly["time"])
    for _ in range(max(1, n // 400)):  # ~0.25% nulls
        hourly["temperature_2m"][rng.randrange(n)] = None
    for _ in range(max(1, n // 1500)):  # impossible values
        hourly["temperature_2m"][rng.randrange(n)] = 999.0
        hourly["relative_humidity_2m"][rng.randrange(n)] = 140.0
    for _ in range(max(1, n // 2000)):  # strings where numbers belong
        hourly["wind_speed_10m"][rng.randrange(n)] = "n/a"


def generate(
    out: Path,
    start: dt.date,
    end: dt.date,
    locations: tuple[Location, ...] = DEFAULT_LOCATIONS,
    seed: int = 7,
) -> int:
    """Write the sample files; returns how many."""
    written = 0
    for loc in locations:
        rng = random.Random(f"{seed}-{loc.name}")
        folder = out / loc.name
        folder.mkdir(parents=True, exist_ok=True)
        full = _series(loc, start, end, rng)
        for first, last in month_windows(start, end):
            i = (first - start).days * 24
            j = ((last - start).days + 1) * 24
            hourly = {k: v[i:j] for k, v in full.items()}
            _mess(hourly, rng)
            (folder / f"{first:%Y-%m}.json").write_text(json.dumps(_response(loc, hourly)))
            written += 1
    # A late correction: a week of berlin re-delivered with revised values (later ingestion).
    berlin = next((x for x in locations if x.name == "berlin"), None)
    if berlin is not None:
        week_start = start + dt.timedelta(days=40)
        rng = random.Random(f"{seed}-correction")
        week = _series(berlin, week_start, week_start + dt.timedelta(days=6), rng)
        (out / "berlin" / f"{week_start:%Y-%m}-correction.json").write_text(
            json.dumps(_response(berlin, week))
        )
        # A truncated delivery (precipitation array shorter than time) and a broken file.
        short = _series(berlin, start, start + dt.timedelta(days=1), rng)
        short["precipitation"] = short["precipitation"][:30]
        (out / "berlin" / f"{start:%Y-%m}-partial.json").write_text(
            json.dumps(_response(berlin, short))
        )
        (out / "berlin" / f"{start:%Y-%m}-broken.json").write_text(
            '{"latitude": 52.52, "hourly": {"time": ['
        )
        written += 3
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2023, 1, 1))
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2024, 12, 31))
    parser.add_argument("--seed", type=int, default=7)
    opts = parser.parse_args()
    print(f"wrote {generate(opts.out, opts.start, opts.end, seed=opts.seed)} files to {opts.out}")


if __name__ == "__main__":
    main()
