"""Issue 15, as properties: messy responses (ragged arrays, repeated hours, non-finite and
mistyped values, unknown units, coordinates of another place, local times around a
daylight-saving change, unixtime, hours outside the window) go through the whole pipeline, and
whatever they are:

- the run finishes;
- every input hour is in silver, or in quarantine with a reason (a refused file's hours are
  there too, and the file is named in the report's refusals);
- silver never holds a non-finite value, a duplicate (location, hour), or an hour outside the
  requested window; each file's reconciliation balances.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from apps.pipelines import cli
from apps.pipelines.parse import Expect, Raw, parse_many, parse_response
from apps.pipelines.sources import SourceError, _time_span
from apps.shared.lake import open_lake

pytestmark = pytest.mark.unit

WINDOW = (dt.date(2024, 3, 31), dt.date(2024, 3, 31))
PLACES = {"berlin": (52.52, 13.41), "oslo": (59.91, 10.75)}
FIELDS = ("temperature_2m", "relative_humidity_2m", "precipitation", "wind_speed_10m")
BIG = "__BIG__"  # written as 1e999: a JSON number no float holds


@st.composite
def responses(draw: st.DrawFn) -> tuple[str, str]:
    """(location folder, response text)."""
    place = draw(st.sampled_from(sorted(PLACES)))
    day = draw(st.sampled_from(["2024-03-30", "2024-03-31", "2024-03-31", "2024-04-01"]))
    first = draw(st.integers(*{"2024-03-30": (18, 23), "2024-04-01": (0, 3)}.get(day, (0, 23))))
    n = draw(st.integers(1, 8))
    clock = draw(st.sampled_from(["gmt", "offset", "berlin", "unixtime"]))
    start = dt.datetime.fromisoformat(f"{day}T{first:02d}:00")
    local = [start + dt.timedelta(hours=h) for h in range(n)]
    doc: dict[str, Any] = {
        "latitude": PLACES[place][0],
        "longitude": PLACES[place][1],
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "hourly_units": {"time": "iso8601", "temperature_2m": "°C", "wind_speed_10m": "km/h"},
    }
    times: list[Any] = [t.strftime("%Y-%m-%dT%H:%M") for t in local]
    if clock == "offset":
        doc.pop("timezone")
        doc["utc_offset_seconds"] = draw(st.sampled_from([-7200, 3600, 19800]))
    elif clock == "berlin":
        doc["timezone"] = "Europe/Berlin"
        doc["utc_offset_seconds"] = 3600
    elif clock == "unixtime":
        doc["hourly_units"]["time"] = "unixtime"
        times = [int(t.replace(tzinfo=dt.UTC).timestamp()) for t in local]
    number = st.floats(0, 40, allow_nan=False).map(lambda x: round(x, 1))
    odd = st.sampled_from([None, math.nan, math.inf, -math.inf, BIG, "n/a", True])
    hourly: dict[str, Any] = {"time": times}
    for f in FIELDS:
        hourly[f] = [draw(number) for _ in range(n)]
    if draw(st.booleans()):  # one odd value somewhere
        hourly[draw(st.sampled_from(FIELDS))][draw(st.integers(0, n - 1))] = draw(odd)
    if n > 1 and draw(st.booleans()):  # the same hour again, same or other values
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        hourly["time"].append(hourly["time"][i])
        for f in FIELDS:
            hourly[f].append(hourly[f][i] if draw(st.booleans()) else hourly[f][j])
    if draw(st.integers(0, 9)) == 0:  # ragged
        f = draw(st.sampled_from(FIELDS))
        hourly[f] = hourly[f][:-1] if draw(st.booleans()) else [*hourly[f], 1.0]
    if draw(st.integers(0, 11)) == 0:
        doc["hourly_units"]["wind_speed_10m"] = draw(st.sampled_from(["furlongs", "kmh", None]))
    if draw(st.integers(0, 11)) == 0:  # a unit Arrow reads as absent, present as null or odd
        doc["hourly_units"][draw(st.sampled_from(["relative_humidity_2m", "time"]))] = draw(
            st.sampled_from([None, "percent", "%"])
        )
    if draw(st.integers(0, 11)) == 0:  # another place's coordinates
        doc["latitude"], doc["longitude"] = 40.42, -3.70
    doc["hourly"] = hourly
    return place, json.dumps(doc).replace(f'"{BIG}"', "1e999")


def _read(lake: Path, pattern: str) -> pa.Table | None:
    store = open_lake(f"file://{lake}")
    tables = [store.read_parquet(p) for p in store.glob(pattern)]
    return pa.concat_tables(tables, promote_options="permissive") if tables else None


@settings(
    max_examples=int(os.environ.get("DEX_PROPERTY_EXAMPLES", "60")),  # bounded: make test
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(responses(), min_size=1, max_size=4))
def test_messy_responses_are_converted_quarantined_or_refused(
    files: list[tuple[str, str]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for k, (place, text) in enumerate(files):
            (root / "src" / place).mkdir(parents=True, exist_ok=True)
            (root / "src" / place / f"{k}.json").write_text(text)
        try:
            report = cli.run(
                f"file://{root}/src",
                f"file://{root}/lake",
                start=WINDOW[0],
                end=WINDOW[1],
                locations=",".join(sorted({place for place, _ in files})),
            )
        except SourceError:  # only when every file lies wholly outside the window
            spans = [_time_span(text.encode()) for _, text in files]
            assert all(s is not None and (s[0] > WINDOW[1] or s[1] < WINDOW[0]) for s in spans)
            event("every file outside the window")
            return
        assert report["reconciliation"]["mismatches"] == []
        landed = [
            json.loads(p.read_bytes())
            for p in (root / "lake" / "raw").rglob("*.json")
            if not p.name.endswith(".meta.json")
        ]
        hours_in = sum(len(doc["hourly"]["time"]) for doc in landed)
        assert report["layers"]["bronze"]["rows_in"] == hours_in

        silver = _read(root / "lake", "silver/weather/*/part-0.parquet")
        quarantine = _read(root / "lake", "quarantine/weather/*/*/*.parquet")
        silver_rows = silver.num_rows if silver is not None else 0
        quarantined = quarantine.num_rows if quarantine is not None else 0
        assert silver_rows + quarantined == hours_in  # every hour: in silver, or quarantined
        event(f"silver rows: {'some' if silver_rows else 'none'}")
        event(f"files refused: {'some' if report['refused']['files'] else 'none'}")
        if quarantine is not None:
            for reason in set(quarantine["reason"].to_pylist()):
                event(reason.split(":")[0])
        if quarantine is not None:
            assert all(quarantine["reason"].to_pylist())
            refused = [r for r in quarantine["reason"].to_pylist() if r.startswith("refused: ")]
            assert bool(refused) == bool(report["refused"]["files"])
        if silver is not None:
            keys = list(zip(silver["location"].to_pylist(), silver["ts"].to_pylist(), strict=True))
            assert len(keys) == len(set(keys))
            assert all(WINDOW[0] <= ts.date() <= WINDOW[1] for _, ts in keys)
            for col in ("temperature_c", "relative_humidity_pct", "precipitation_mm"):
                assert all(v is None or math.isfinite(v) for v in silver[col].to_pylist()), col
            assert all(v is None or math.isfinite(v) for v in silver["wind_speed_ms"].to_pylist())


@settings(
    max_examples=int(os.environ.get("DEX_PROPERTY_EXAMPLES", "100")), deadline=None, database=None
)
@given(st.lists(responses(), min_size=1, max_size=6), st.booleans())
def test_the_columnar_parse_judges_as_parse_response_does(
    files: list[tuple[str, str]], expected: bool
) -> None:
    """Whatever the mess, parse_many (columnar where it can judge exactly) gives each response
    the rows, quarantine and refusal that parse_response gives it."""
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    raws = [
        Raw(
            text.encode(),
            place,
            now,
            Expect(*PLACES[place], *WINDOW) if expected else Expect(),
        )
        for place, text in files
    ]
    for raw, got in zip(raws, parse_many(raws), strict=True):
        want = parse_response(raw.body, raw.location, raw.fetched_at, raw.expect)
        assert (got.rows_in, got.refused) == (want.rows_in, want.refused)
        assert got.bronze.equals(want.bronze)
        assert got.quarantine.equals(want.quarantine)
