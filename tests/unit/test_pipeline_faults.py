"""Issue 15: messy inputs are converted exactly, quarantined with a reason, or refused whole,
and one bad file never stops the rest. One small hand-written source per fault class, run
through the pipeline as a user would (`cli.run` / `cli.main`), then what landed is read back."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from apps.pipelines import cli
from apps.pipelines.parse import parse_response
from apps.shared.lake import open_lake

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BERLIN = (52.52, 13.41)


def hours(day: str, n: int = 24, first: int = 0) -> list[str]:
    return [f"{day}T{h:02d}:00" for h in range(first, first + n)]


def body(
    times: list[Any],
    coords: tuple[float, float] = BERLIN,
    units: Mapping[str, str | None] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An Open-Meteo archive response; `hourly_<field>=[...]` overrides a series."""
    n = len(times)
    hourly: dict[str, Any] = {
        "time": times,
        "temperature_2m": [10.0] * n,
        "relative_humidity_2m": [50.0] * n,
        "precipitation": [0.0] * n,
        "wind_speed_10m": [10.0] * n,
    }
    doc: dict[str, Any] = {
        "latitude": coords[0],
        "longitude": coords[1],
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "hourly_units": {
            "time": "iso8601",
            "temperature_2m": "°C",
            "relative_humidity_2m": "%",
            "precipitation": "mm",
            "wind_speed_10m": "km/h",
            **(units or {}),
        },
    }
    for key, value in extra.items():
        if key.startswith("hourly_"):
            hourly[key.removeprefix("hourly_")] = value
        else:
            doc[key] = value
    doc["hourly"] = hourly
    return doc


def drop(root: Path, files: Mapping[str, dict[str, Any] | str]) -> Path:
    """Write a file source: relative path -> response (or raw text), in the given order."""
    for rel, doc in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return root


def run(source: Path, lake: Path, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("locations", "berlin")
    return cli.run(f"file://{source}", f"file://{lake}", **kwargs)


def layer(lake: Path, pattern: str) -> pa.Table:
    store = open_lake(f"file://{lake}")
    tables = [store.read_parquet(p) for p in store.glob(pattern)]
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


def silver(lake: Path) -> pa.Table:
    return layer(lake, "silver/weather/*/part-0.parquet")


def quarantine(lake: Path) -> pa.Table:
    return layer(lake, "quarantine/weather/*/*/*.parquet")


def reasons(lake: Path) -> list[str]:
    q = quarantine(lake)
    return q["reason"].to_pylist() if q.num_rows else []


def utc(day: str, hour: int) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hour:02d}:00").replace(tzinfo=dt.UTC)


# -- 1. ragged arrays ----------------------------------------------------------------------------


def test_ragged_arrays_quarantine_every_row_of_the_response(tmp_path: Path) -> None:
    src = drop(
        tmp_path / "src",
        {
            "berlin/ragged.json": body(hours("2024-03-01"), hourly_temperature_2m=[1.0] * 23),
            "berlin/fine.json": body(hours("2024-03-02")),
        },
    )
    report = run(src, tmp_path / "lake")
    rows = silver(tmp_path / "lake")
    days = {t.date().isoformat() for t in rows["ts"].to_pylist()}
    assert days == {"2024-03-02"}  # nothing of the ragged day, never padded or realigned
    ragged = [r for r in reasons(tmp_path / "lake") if r.startswith("ragged arrays")]
    assert len(ragged) == 24
    assert "temperature_2m 23" in ragged[0]
    assert report["reconciliation"]["mismatches"] == []


# -- 2. a source laid out otherwise ----------------------------------------------------------------


def test_a_source_in_another_layout_says_what_it_found_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = drop(tmp_path / "src", {"berlin_2024-03-01.json": body(hours("2024-03-01"))})
    code = cli.main(
        [
            *("run", "--source", f"file://{src}", "--lake", f"file://{tmp_path}/lake"),
            *("--locations", "berlin"),
        ]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "berlin_2024-03-01.json" in err  # what was found
    assert "{location}/*.json" in err  # and the layout expected


# -- 3. units ------------------------------------------------------------------------------------


def test_an_unknown_unit_refuses_that_file_alone_and_blocks_nothing(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    src = drop(
        tmp_path / "src",
        {
            "berlin/a-odd.json": body(hours("2024-03-01"), units={"wind_speed_10m": "furlongs"}),
            "berlin/b-fine.json": body(hours("2024-03-02")),
        },
    )
    report = run(src, lake)  # finishes
    assert [f["file"].rsplit("/", 2)[-2] for f in report["refused"]["by_file"]] == [
        "location=berlin"
    ]
    assert "furlongs" in report["refused"]["by_file"][0]["reason"]
    assert sum(r.startswith("refused: unknown wind_speed_10m unit") for r in reasons(lake)) == 24
    assert {t.date() for t in silver(lake)["ts"].to_pylist()} == {dt.date(2024, 3, 2)}
    state = json.loads((lake / "_state" / "weather" / "state.json").read_text())
    assert state["pending"] == {"silver": [], "gold": [], "features": []}
    later = drop(tmp_path / "later", {"berlin/c.json": body(hours("2024-03-03"))})
    again = run(later, lake)  # a later run is not blocked
    assert again["layers"]["silver"]["rows"] == 24
    assert dt.date(2024, 3, 3) in {t.date() for t in silver(lake)["ts"].to_pylist()}


def test_every_api_unit_spelling_is_converted_exactly(tmp_path: Path) -> None:
    files = {}
    cases = [  # (units, temperature, precipitation, wind) -> (°C, mm, m/s)
        ({"temperature_2m": "°F", "wind_speed_10m": "mp/h"}, 50.0, 1.0, 10.0),
        ({"precipitation": "inch", "wind_speed_10m": "kn"}, 20.0, 2.0, 10.0),
        ({"wind_speed_10m": "m/s"}, 20.0, 0.5, 3.0),
        ({"wind_speed_10m": "km/h"}, 20.0, 0.5, 36.0),
    ]
    for i, (units, temp, rain, wind) in enumerate(cases):
        files[f"berlin/{i}.json"] = body(
            hours(f"2024-03-0{i + 1}", 1),
            units=units,
            hourly_temperature_2m=[temp],
            hourly_precipitation=[rain],
            hourly_wind_speed_10m=[wind],
        )
    run(drop(tmp_path / "src", files), tmp_path / "lake")
    got = silver(tmp_path / "lake").sort_by("ts").to_pylist()
    assert [(r["temperature_c"], r["precipitation_mm"], r["wind_speed_ms"]) for r in got] == [
        ((50.0 - 32) * 5 / 9, 1.0, 10.0 * 1609.344 / 3600),
        (20.0, 2.0 * 25.4, 10.0 * 1852 / 3600),
        (20.0, 0.5, 3.0),
        (20.0, 0.5, 36.0 * 1000 / 3600),
    ]


def test_silver_quarantines_a_unit_an_older_version_let_into_bronze() -> None:
    from apps.pipelines.transform import UNKNOWN_UNIT
    from apps.pipelines.transform import silver as to_silver

    bronze = parse_response(json.dumps(body(hours("2024-03-01", 3))).encode(), "berlin", NOW)
    rows = bronze.bronze
    units = pa.array(["furlongs", "km/h", None], pa.string())
    rows = rows.set_column(rows.schema.get_field_index("wind_speed_unit"), "wind_speed_unit", units)
    kept, quarantined = to_silver(rows)
    assert kept.num_rows == 1
    assert quarantined["reason"].to_pylist() == [UNKNOWN_UNIT] * 2


# -- 4. coordinates ------------------------------------------------------------------------------


def test_a_file_for_another_place_is_refused_not_landed_under_the_folder(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    src = drop(
        tmp_path / "src",
        {
            "berlin/madrid.json": body(hours("2024-03-01"), coords=(40.42, -3.70)),
            "berlin/snapped.json": body(hours("2024-03-02"), coords=(52.5, 13.375)),  # grid
        },
    )
    report = run(src, lake)
    assert {t.date() for t in silver(lake)["ts"].to_pylist()} == {dt.date(2024, 3, 2)}
    (refused,) = report["refused"]["by_file"]
    assert "coordinates (40.42, -3.7)" in refused["reason"]
    assert sum("coordinates" in r for r in reasons(lake)) == 24


# -- 5. fetch time, not read order ---------------------------------------------------------------


def test_the_latest_delivery_wins_whatever_the_read_order(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    src = drop(
        tmp_path / "src",
        {  # listed (and read) first, but delivered last: the correction
            "berlin/a-correction.json": body(
                hours("2024-03-01", 2), hourly_temperature_2m=[5.0, 6.0]
            ),
            "berlin/b-original.json": body(
                hours("2024-03-01", 2), hourly_temperature_2m=[1.0, 2.0]
            ),
        },
    )
    delivered = {"a-correction.json": 1_700_000_000, "b-original.json": 1_600_000_000}
    for name, when in delivered.items():
        os.utime(src / "berlin" / name, (when, when))
    run(src, lake)
    assert silver(lake).sort_by("ts")["temperature_c"].to_pylist() == [5.0, 6.0]
    metas = [json.loads(p.read_text()) for p in (lake / "raw").rglob("*.meta.json")]
    assert sorted(m["fetched_at"] for m in metas) == [
        dt.datetime.fromtimestamp(when, dt.UTC).isoformat() for when in sorted(delivered.values())
    ]


# -- 6. the window -------------------------------------------------------------------------------


def test_rows_outside_the_requested_window_never_land(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    three_days = hours("2024-03-01") + hours("2024-03-02") + hours("2024-03-03")
    src = drop(tmp_path / "src", {"berlin/march.json": body(three_days)})
    run(src, lake, start=dt.date(2024, 3, 2), end=dt.date(2024, 3, 2))
    for pattern in (
        "bronze/weather/*/part-0.parquet",
        "silver/weather/*/part-0.parquet",
        "gold/weather/daily/*/part-0.parquet",
    ):
        table = layer(lake, pattern)
        column = "date" if "gold" in pattern else "ts"
        days = {
            (d if isinstance(d, dt.date) and not isinstance(d, dt.datetime) else d.date())
            for d in table[column].to_pylist()
        }
        assert days == {dt.date(2024, 3, 2)}, pattern
    assert sum(r.startswith("outside the requested window") for r in reasons(lake)) == 48


def test_the_same_file_asked_for_with_another_window_lands_that_window(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    src = drop(
        tmp_path / "src", {"berlin/march.json": body(hours("2024-03-01") + hours("2024-03-02"))}
    )
    run(src, lake, start=dt.date(2024, 3, 1), end=dt.date(2024, 3, 1))
    run(src, lake, start=dt.date(2024, 3, 2), end=dt.date(2024, 3, 2))
    again = run(src, lake, start=dt.date(2024, 3, 2), end=dt.date(2024, 3, 2))
    assert again["layers"]["raw"]["files_landed"] == 0  # the same body and window: once
    rows = silver(lake)
    assert rows.num_rows == 48
    assert {t.date() for t in rows["ts"].to_pylist()} == {dt.date(2024, 3, 1), dt.date(2024, 3, 2)}


# -- 7. the same hour twice in one response ------------------------------------------------------


def test_one_hour_twice_with_different_values_is_quarantined(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    times = ["2024-03-01T00:00", "2024-03-01T01:00", "2024-03-01T01:00", "2024-03-01T02:00"]
    same = ["2024-03-02T00:00", "2024-03-02T00:00"]
    src = drop(
        tmp_path / "src",
        {
            "berlin/twice.json": body(times, hourly_temperature_2m=[1.0, 2.0, 3.0, 4.0]),
            "berlin/copies.json": body(same),  # identical copies: collapsed to one
        },
    )
    run(src, lake)
    got = {r["ts"]: r["temperature_c"] for r in silver(lake).to_pylist()}
    assert got == {
        utc("2024-03-01", 0): 1.0,
        utc("2024-03-01", 2): 4.0,
        utc("2024-03-02", 0): 10.0,
    }
    found = reasons(lake)
    assert found.count("duplicate hour in response with different values") == 2
    assert found.count("duplicate hour in response: identical copy collapsed") == 1


# -- 8. non-finite numbers -----------------------------------------------------------------------


def test_non_finite_numbers_never_reach_silver_or_gold(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    text = (
        json.dumps(body(hours("2024-03-01", 5)))
        .replace(
            '"temperature_2m": [10.0, 10.0, 10.0, 10.0, 10.0]',
            '"temperature_2m": [NaN, Infinity, 1e999, 10.0, 10.0]',
        )
        .replace(
            '"relative_humidity_2m": [50.0, 50.0, 50.0, 50.0, 50.0]',
            '"relative_humidity_2m": [50.0, 50.0, 50.0, 50.0, NaN]',
        )
    )
    assert text.count("NaN") == 2
    run(drop(tmp_path / "src", {"berlin/nan.json": text}), lake)
    rows = silver(lake)
    assert rows["temperature_c"].to_pylist() == [10.0]
    for col in ("temperature_c", "relative_humidity_pct", "precipitation_mm", "wind_speed_ms"):
        assert all(math.isfinite(v) for v in rows[col].to_pylist()), col
    gold = layer(lake, "gold/weather/daily/*/part-0.parquet")
    for col in ("temp_min_c", "temp_max_c", "temp_mean_c", "humidity_mean_pct"):
        assert all(math.isfinite(v) for v in gold[col].to_pylist()), col
    found = reasons(lake)
    assert found.count("non-finite value: temperature_2m") == 3
    assert found.count("non-finite value: relative_humidity_2m") == 1


# -- 9. local time -------------------------------------------------------------------------------


def _local(times: list[Any], zone: str, offset: int, timeformat: str = "iso8601") -> bytes:
    doc = body(times, timezone=zone, utc_offset_seconds=offset)
    doc["hourly_units"]["time"] = timeformat
    return json.dumps(doc).encode()


def test_local_time_follows_the_zone_rules_across_daylight_saving() -> None:
    # clocks go forward at 02:00 on 2024-03-31 in Berlin: 02:00 does not exist
    spring = parse_response(
        _local(
            ["2024-03-31T00:00", "2024-03-31T01:00", "2024-03-31T03:00", "2024-03-31T04:00"],
            "Europe/Berlin",
            3600,
        ),
        "berlin",
        NOW,
    )
    assert spring.bronze["ts"].to_pylist() == [
        utc("2024-03-30", 23),
        utc("2024-03-31", 0),
        utc("2024-03-31", 1),
        utc("2024-03-31", 2),
    ]
    gap = parse_response(_local(["2024-03-31T02:00"], "Europe/Berlin", 3600), "berlin", NOW)
    assert gap.bronze.num_rows == 0
    assert "nonexistent local time" in gap.quarantine["reason"][0].as_py()
    # clocks go back at 03:00 on 2024-10-27: 02:00 happens twice, in that order
    autumn = parse_response(
        _local(
            ["2024-10-27T01:00", "2024-10-27T02:00", "2024-10-27T02:00", "2024-10-27T03:00"],
            "Europe/Berlin",
            7200,
        ),
        "berlin",
        NOW,
    )
    assert autumn.bronze["ts"].to_pylist() == [
        utc("2024-10-26", 23),
        utc("2024-10-27", 0),
        utc("2024-10-27", 1),
        utc("2024-10-27", 2),
    ]
    once = parse_response(_local(["2024-10-27T02:00"], "Europe/Berlin", 7200), "berlin", NOW)
    assert once.bronze.num_rows == 0  # either instant: refused, never guessed
    assert "ambiguous local time" in once.quarantine["reason"][0].as_py()


def test_unixtime_is_utc_and_an_unknown_zone_is_refused() -> None:
    stamp = int(utc("2024-03-31", 1).timestamp())
    unix = parse_response(_local([stamp], "Europe/Berlin", 7200, "unixtime"), "berlin", NOW)
    assert unix.bronze["ts"].to_pylist() == [utc("2024-03-31", 1)]
    nowhere = parse_response(_local(["2024-03-01T00:00"], "Mars/Olympus", 0), "berlin", NOW)
    assert nowhere.bronze.num_rows == 0
    assert "unknown timezone" in nowhere.quarantine["reason"][0].as_py()


# -- 10. reconciliation sees what a faulty parser lets through -------------------------------------


def test_reconciliation_compares_each_file_with_what_landed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parser that shifts one file's values by an hour (as a wrong offset or a misaligned
    array would): the file's own claims do not match, the mismatch is reported, and those
    rows do not land."""
    from apps.pipelines.steps import bronze as bronze_step

    real = bronze_step.parse_many  # type: ignore[attr-defined]

    def shifting(raws: Any) -> Any:
        out = real(raws)
        for parsed in out:
            if parsed.bronze.num_rows:
                i = parsed.bronze.schema.get_field_index("ts")
                shifted = pc.add(parsed.bronze["ts"], pa.scalar(3_600_000_000, pa.duration("us")))
                parsed.bronze = parsed.bronze.set_column(i, "ts", shifted)
        return out

    monkeypatch.setattr(bronze_step, "parse_many", shifting)
    lake = tmp_path / "lake"
    src = drop(tmp_path / "src", {"berlin/a.json": body(hours("2024-03-01", 3))})
    report = run(src, lake)
    (mismatch,) = report["reconciliation"]["mismatches"]
    assert mismatch["partition"].endswith(".json")
    assert "not what the file holds at that hour" in " ".join(mismatch["problems"])
    assert mismatch["fingerprint_claimed"] != mismatch["fingerprint_landed"]
    assert silver(lake).num_rows == 0


# -- the columnar fast path stays equivalent -----------------------------------------------------


def test_the_columnar_path_takes_clean_responses_and_hands_on_every_new_fault() -> None:
    from apps.pipelines import parse
    from apps.pipelines.parse import Expect, Raw, parse_many

    window = Expect(*BERLIN, dt.date(2024, 3, 1), dt.date(2024, 3, 2))
    fixed = body(hours("2024-03-02", 3), utc_offset_seconds=-3600)
    fixed.pop("timezone")  # no zone: at the fixed offset
    clean = [
        json.dumps(body(hours("2024-03-01"))).encode(),
        json.dumps(body(hours("2024-03-02"), coords=(52.5, 13.375))).encode(),
        json.dumps(fixed).encode(),
        json.dumps(body(hours("2024-03-01"), units={"wind_speed_10m": "mp/h"})).encode(),
    ]
    messy = [
        json.dumps(body(hours("2024-03-01"), hourly_temperature_2m=[1.0] * 23)).encode(),
        json.dumps(body(hours("2024-03-01"), units={"wind_speed_10m": "furlongs"})).encode(),
        json.dumps(body(hours("2024-03-01"), units={"relative_humidity_2m": None})).encode(),
        json.dumps(body(hours("2024-03-01"), coords=(40.42, -3.70))).encode(),
        json.dumps(body(hours("2024-03-03"))).encode(),  # outside the window
        json.dumps(body(["2024-03-01T00:00", "2024-03-01T00:00"])).encode(),
        json.dumps(body(hours("2024-03-01", 2)))
        .replace("[10.0, 10.0]", "[1e999, 10.0]", 1)
        .encode(),
        _local(hours("2024-03-01", 2), "Europe/Berlin", 3600),
        _local([1709251200], "GMT", 0, "unixtime"),
        json.dumps(body(hours("2024-03-01", 2), utc_offset_seconds=3600)).encode(),  # GMT+1?
    ]
    bodies = [*clean, *messy, *clean]
    raws = [Raw(b, "berlin", NOW, window) for b in bodies]
    slow: list[bytes] = []

    def counted(b: bytes, *args: Any) -> Any:
        slow.append(b)
        return parse_response(b, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parse, "parse_response", counted)
        many = parse_many(raws)
    assert slow == messy
    for raw, got in zip(raws, many, strict=True):
        want = parse_response(raw.body, raw.location, raw.fetched_at, raw.expect)
        assert (got.rows_in, got.refused) == (want.rows_in, want.refused), raw.body
        assert got.bronze.equals(want.bronze), raw.body
        assert got.quarantine.equals(want.quarantine), raw.body


def test_dex_prints_the_files_it_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dex.cli import app

    src = drop(
        tmp_path / "src",
        {
            "berlin/a-odd.json": body(hours("2024-03-01"), units={"wind_speed_10m": "furlongs"}),
            "berlin/b-fine.json": body(hours("2024-03-02")),
        },
    )
    result = CliRunner().invoke(
        app,
        [
            "pipelines", "run", "weather", "--source", f"file://{src}",
            "--lake", f"file://{tmp_path / 'lake'}", "--locations", "berlin",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 files refused whole" in result.stdout
    assert "furlongs" in result.stdout
