"""The weather pipeline on a `file://` lake: layers, messy input, quarantine with reasons,
reconciliation, idempotent reruns (byte-identical gold), late data, crash and resume."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from apps.pipelines import cli
from apps.pipelines.locations import DEFAULT_LOCATIONS, Location, parse_locations
from apps.pipelines.parse import parse_response
from apps.pipelines.sample import generate
from apps.pipelines.sources import FileSource, month_windows
from apps.pipelines.transform import UnitError, deduplicate, features, normalize
from apps.pipelines.weather import ReconciliationError, WeatherPipeline
from apps.shared.lake import Lake, LakeError, open_lake
from apps.shared.schema import FEATURE_COLUMNS, TARGET

pytestmark = pytest.mark.unit

BERLIN, SINGAPORE = DEFAULT_LOCATIONS[0], DEFAULT_LOCATIONS[3]
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def response(times: list[str], **hourly: list[Any]) -> bytes:
    base = {
        "temperature_2m": [10.0] * len(times),
        "relative_humidity_2m": [50.0] * len(times),
        "precipitation": [0.0] * len(times),
        "wind_speed_10m": [10.0] * len(times),
    }
    base.update(hourly)
    return json.dumps(
        {
            "latitude": 52.52,
            "longitude": 13.41,
            "utc_offset_seconds": 0,
            "hourly_units": {
                "temperature_2m": "°C",
                "precipitation": "mm",
                "wind_speed_10m": "km/h",
            },
            "hourly": {"time": times, **base},
        }
    ).encode()


def hours(day: str, n: int = 24) -> list[str]:
    return [f"{day}T{h:02d}:00" for h in range(n)]


# -- parsing -------------------------------------------------------------------------------------


def test_parse_types_every_hour() -> None:
    parsed = parse_response(response(hours("2024-03-01")), "berlin", NOW)
    assert (parsed.rows_in, parsed.bronze.num_rows, parsed.quarantine.num_rows) == (24, 24, 0)
    assert parsed.bronze.schema.field("ts").type == pa.timestamp("us", tz="UTC")


_MESSY = [
    pytest.param(b'{"hourly": {"time": [', "malformed JSON", 1, 0),
    pytest.param(b'{"latitude": 1}', "missing field: hourly.time", 1, 0),
    pytest.param(
        response(hours("2024-03-01", 3), temperature_2m=[1.0, "warm", 2.0]),
        "wrong type: temperature_2m",
        3,
        2,
    ),
    pytest.param(  # ragged: every row quarantined, never padded (issue 15)
        response(hours("2024-03-01", 3), precipitation=[0.0]),
        "ragged arrays: time has 3 entries, temperature_2m 3, relative_humidity_2m 3, "
        "precipitation 1, wind_speed_10m 3",
        3,
        0,
    ),
    pytest.param(
        response(["2024-03-01T00:00", "yesterday", "2024-03-01T02:00"]), "bad timestamp", 3, 2
    ),
]


@pytest.mark.parametrize(("body", "reason", "rows_in", "good"), _MESSY)
def test_messy_records_are_quarantined_with_their_reason(
    body: bytes, reason: str, rows_in: int, good: int
) -> None:
    parsed = parse_response(body, "berlin", NOW)
    assert parsed.rows_in == rows_in
    assert parsed.bronze.num_rows == good
    assert parsed.rows_in == parsed.bronze.num_rows + parsed.quarantine.num_rows
    assert reason in parsed.quarantine["reason"].to_pylist()


def test_utc_offset_is_applied() -> None:
    body = json.loads(response(["2024-03-01T02:00"]))
    body["utc_offset_seconds"] = 3600
    parsed = parse_response(json.dumps(body).encode(), "berlin", NOW)
    assert parsed.bronze["ts"][0].as_py() == dt.datetime(2024, 3, 1, 1, tzinfo=dt.UTC)


def _variant(**changes: Any) -> bytes:
    body = json.loads(response(hours("2024-03-02", 4)))
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    return json.dumps(body).encode()


MANY = [
    response(hours("2024-03-01")),
    _variant(utc_offset_seconds=-7200),
    _variant(hourly_units=None),  # missing: defaults
    _variant(hourly_units={"temperature_2m": "°F", "precipitation": None}),  # one null unit
    _variant(hourly_units="celsius"),  # not an object
    _variant(latitude="52.5", longitude=None),
    _variant(utc_offset_seconds="3600"),
    json.dumps(json.loads(response(hours("2024-03-03", 2))), indent=2).encode(),  # many lines
    response(hours("2024-03-04", 2), temperature_2m=[None, 1]),  # null and int values
    response(hours("2024-03-04", 3), temperature_2m=[1.0, 2.0, 3.0, 4.0]),  # values without time
    b"  " + response(hours("2024-03-05", 2)) + b"\n",
    response(hours("2024-03-06", 2), temperature_2m=[1.0, True]),
    b"[]",
    b"",
]


def test_columnar_parse_gives_what_parse_response_gives() -> None:
    """parse_many types well-formed responses together with Arrow and hands the rest to
    parse_response; either way each response's rows, quarantine and counts are the same."""
    from apps.pipelines import parse
    from apps.pipelines.parse import Raw, parse_many

    messy = [case.values[0] for case in _MESSY]
    bodies = [*MANY, *messy, *MANY]  # the bad ones between good ones: blocks split around them
    raws = [Raw(b, f"loc{i % 3}", NOW + dt.timedelta(minutes=i)) for i, b in enumerate(bodies)]
    slow: list[bytes] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            parse, "parse_response", lambda b, *a: slow.append(b) or parse_response(b, *a)
        )
        many = parse_many(raws)
    # the columnar path took the four well-formed ones of each copy of MANY, nothing else
    assert len(slow) == len(bodies) - 8
    assert not {MANY[0], MANY[1], MANY[8], MANY[10]} & set(slow)
    assert len(many) == len(raws)
    for raw, got in zip(raws, many, strict=True):
        want = parse_response(raw.body, raw.location, raw.fetched_at)
        assert got.rows_in == want.rows_in, raw.body
        assert got.bronze.equals(want.bronze), raw.body
        assert got.quarantine.equals(want.quarantine), raw.body


# -- transforms ----------------------------------------------------------------------------------


def test_dedup_keeps_the_latest_ingestion() -> None:
    old = parse_response(response(hours("2024-03-01", 2), temperature_2m=[1.0, 2.0]), "berlin", NOW)
    new = parse_response(
        response(hours("2024-03-01", 2), temperature_2m=[5.0, 6.0]),
        "berlin",
        NOW + dt.timedelta(hours=1),
    )
    kept, superseded = deduplicate(pa.concat_tables([old.bronze, new.bronze]))
    assert kept["temperature"].to_pylist() == [5.0, 6.0]
    assert superseded.num_rows == 2
    assert superseded["reason"][0].as_py().startswith("duplicate")


def test_units_are_normalized() -> None:
    body = json.loads(
        response(hours("2024-03-01", 1), temperature_2m=[212.0], wind_speed_10m=[36.0])
    )
    body["hourly_units"] = {
        "temperature_2m": "°F",
        "precipitation": "inch",
        "wind_speed_10m": "km/h",
    }
    body["hourly"]["precipitation"] = [1.0]
    silver = normalize(parse_response(json.dumps(body).encode(), "x", NOW).bronze)
    assert silver["temperature_c"][0].as_py() == pytest.approx(100.0)
    assert silver["wind_speed_ms"][0].as_py() == pytest.approx(10.0)
    assert silver["precipitation_mm"][0].as_py() == pytest.approx(25.4)
    bronze = parse_response(json.dumps(body).encode(), "x", NOW).bronze
    body["hourly_units"]["wind_speed_10m"] = "furlongs/fortnight"
    refused = parse_response(json.dumps(body).encode(), "x", NOW)  # bronze refuses the file
    assert refused.refused is not None
    assert "furlongs" in refused.refused
    assert refused.bronze.num_rows == 0
    odd = bronze.set_column(
        bronze.schema.get_field_index("wind_speed_unit"),
        "wind_speed_unit",
        pa.array(["furlongs/fortnight"]),
    )
    with pytest.raises(UnitError, match="furlongs"):  # normalize alone still says so
        normalize(odd)


def test_features_use_the_calendar_and_the_past_only() -> None:
    rows = pa.table(
        {
            "location": ["a"] * 4,
            "date": pa.array([dt.date(2024, 1, d) for d in (1, 2, 3, 5)], pa.date32()),
            "temp_min_c": [0.0] * 4,
            "temp_max_c": [1.0, 2.0, 3.0, 5.0],
            "temp_mean_c": [0.5] * 4,
            "precipitation_mm": [0.0] * 4,
            "humidity_mean_pct": [50.0] * 4,
            "wind_max_ms": [3.0] * 4,
            "hours": pa.array([24] * 4, pa.int64()),
        }
    )
    out = features(rows).to_pylist()
    by_day = {r["date"].day: r for r in out}
    assert set(by_day) == {1, 2, 3, 5}  # the missing day 4 is not invented
    assert by_day[3]["temp_max_lag1"] == 2.0
    assert by_day[3]["target_next_day_temp_max_c"] is None
    assert by_day[5]["temp_max_lag1"] is None  # day 4 is a gap, not day 3
    assert by_day[2]["target_next_day_temp_max_c"] == 3.0
    assert set(FEATURE_COLUMNS) < set(out[0])
    assert TARGET in out[0]


# -- the whole pipeline --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out, dt.date(2023, 1, 1), dt.date(2023, 2, 28), locations=(BERLIN, SINGAPORE))
    return out


def run(sample: Path, lake: Path, **kwargs: Any) -> dict[str, Any]:
    return cli.run(f"file://{sample}", f"file://{lake}", **kwargs)


def test_full_run_lands_every_layer_and_reconciles(sample: Path, tmp_path: Path) -> None:
    report = run(sample, tmp_path / "lake", lineage_url=f"file://{tmp_path}/lineage.jsonl")
    layers = report["layers"]
    assert layers["raw"]["files_landed"] == len(list(sample.rglob("*.json")))
    assert layers["bronze"]["rows_in"] == layers["bronze"]["rows"] + sum(
        n for r, n in report["quarantine"]["by_reason"].items() if r.startswith("bronze")
    )
    assert layers["silver"]["rows_in"] == layers["silver"]["rows"] + sum(
        n for r, n in report["quarantine"]["by_reason"].items() if r.startswith("silver")
    )
    assert report["reconciliation"]["mismatches"] == []
    assert report["reconciliation"]["checked"] > 59
    reasons = report["quarantine"]["by_reason"]
    for expected in (
        "bronze: malformed JSON",
        "bronze: wrong type: wind_speed_10m",
        "silver: duplicate: superseded by a later ingestion of the same hour",
    ):
        assert reasons.get(expected, 0) > 0, expected
    assert any(r.startswith("bronze: ragged arrays: ") for r in reasons)  # the partial file
    assert any("expect_column_values_to_be_between(temperature_c)" in r for r in reasons)
    assert any("expect_column_values_to_not_be_null(temperature_c)" in r for r in reasons)
    assert report["validation"]["success"] is False
    assert report["validation"]["failed_rows"] > 0
    assert Path(report["validation"]["result"].removeprefix("file://")).is_file()
    lake = tmp_path / "lake"
    assert len(list((lake / "silver" / "weather").glob("date=*/part-0.parquet"))) == 59
    assert {
        p.parent.name for p in (lake / "gold" / "weather" / "features").glob("*/part-0.parquet")
    } == {"location=berlin", "location=singapore"}
    metrics = (lake / "_metrics" / "weather.prom").read_text()
    assert 'dex_pipeline_layer_rows{layer="silver",pipeline="weather"}' in metrics
    assert 'dex_pipeline_freshness_hours{location="berlin",pipeline="weather"}' in metrics
    events = [json.loads(line) for line in (tmp_path / "lineage.jsonl").read_text().splitlines()]
    jobs = {(e["job"]["name"], e["eventType"]) for e in events}
    for job in ("weather.ingest", "weather.bronze", "weather.silver", "weather.gold"):
        assert (job, "START") in jobs
        assert (job, "COMPLETE") in jobs
    silver_event = next(e for e in events if e["job"]["name"] == "weather.silver")
    assert silver_event["inputs"][0]["name"].endswith("bronze/weather")


def test_quarantine_is_written_with_reasons(sample: Path, tmp_path: Path) -> None:
    run(sample, tmp_path / "lake")
    lake = open_lake(f"file://{tmp_path}/lake")
    tables = [lake.read_parquet(p) for p in lake.glob("quarantine/weather/*/*/*.parquet")]
    allq = pa.concat_tables(tables)
    assert set(allq["layer"].to_pylist()) == {"bronze", "silver"}
    assert all(allq["reason"].to_pylist())
    singapore = lake.read_parquet(lake.glob("silver/weather/*/part-0.parquet")[0])
    temps = list(singapore["temperature_c"].to_pylist())
    assert max(temps) < 60  # °F normalized to °C; 999s quarantined


def test_rerun_is_idempotent_and_gold_byte_identical(sample: Path, tmp_path: Path) -> None:
    first = run(sample, tmp_path / "a")
    again = run(sample, tmp_path / "a")
    assert again["layers"]["raw"]["files_landed"] == 0
    assert again["layers"]["bronze"]["partitions_written"] == 0
    assert again["quarantine"]["rows"] == 0
    other = run(sample, tmp_path / "b")
    gold_a = sorted((tmp_path / "a" / "gold").rglob("*.parquet"))
    gold_b = sorted((tmp_path / "b" / "gold").rglob("*.parquet"))
    assert [p.relative_to(tmp_path / "a") for p in gold_a] == [
        p.relative_to(tmp_path / "b") for p in gold_b
    ]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(gold_a, gold_b, strict=True))
    assert first["layers"]["silver"]["rows"] == other["layers"]["silver"]["rows"]
    silver = pa.concat_tables(
        [pq.ParquetFile(p).read() for p in (tmp_path / "a" / "silver").rglob("*.parquet")]
    )
    keys = list(zip(silver["location"].to_pylist(), silver["ts"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys))  # no duplicates


def test_late_data_lands_in_its_partitions_and_rederives_only_those(
    sample: Path, tmp_path: Path
) -> None:
    run(sample, tmp_path / "lake")
    lake_dir = tmp_path / "lake"
    before = {
        p: p.stat().st_mtime_ns
        for p in (lake_dir / "gold" / "weather" / "daily").rglob("*.parquet")
    }
    late = tmp_path / "late"
    (late / "berlin").mkdir(parents=True)
    (late / "berlin" / "late.json").write_bytes(
        response(hours("2023-01-10"), temperature_2m=[-5.0] * 24)
    )
    report = run(late, lake_dir, locations="berlin")
    assert report["partitions"]["bronze"] == ["2023-01-10"]
    assert report["partitions"]["silver"] == ["2023-01-10"]
    assert report["partitions"]["gold"] == ["2023-01-10"]
    after = {
        p: p.stat().st_mtime_ns
        for p in (lake_dir / "gold" / "weather" / "daily").rglob("*.parquet")
    }
    changed = [p.parent.name for p in after if after[p] != before.get(p)]
    assert changed == ["date=2023-01-10"]
    daily = pq.ParquetFile(lake_dir / "gold/weather/daily/date=2023-01-10/part-0.parquet").read()
    berlin = daily.filter(pc.equal(daily["location"], "berlin"))
    assert berlin["temp_max_c"][0].as_py() == -5.0  # the late, later-ingested values won


def test_crash_between_layers_then_rerun(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"

    def boom(self: WeatherPipeline) -> None:
        raise RuntimeError("injected crash before silver")

    monkeypatch.setattr(WeatherPipeline, "silver", boom)
    with pytest.raises(RuntimeError, match="injected crash"):
        run(sample, lake)
    monkeypatch.undo()
    assert (lake / "bronze").exists()
    assert not (lake / "silver").exists()
    report = run(sample, lake)
    assert report["layers"]["raw"]["files_landed"] == 0  # raw was landed before the crash
    assert report["layers"]["silver"]["partitions_written"] == 59
    fresh = run(sample, tmp_path / "fresh")
    for p in sorted((tmp_path / "fresh" / "gold").rglob("*.parquet")):
        assert (lake / p.relative_to(tmp_path / "fresh")).read_bytes() == p.read_bytes()
    assert fresh["layers"]["silver"]["rows"] == report["layers"]["silver"]["rows"]


def test_crash_inside_bronze_after_partitions_then_rerun_has_no_duplicates(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    original = WeatherPipeline.save
    calls = {"n": 0}

    def crash_on_bronze_state(self: WeatherPipeline, state: dict[str, Any]) -> None:
        calls["n"] += 1
        if state["processed"]:
            raise RuntimeError("crash after writing partitions, before recording them")
        original(self, state)

    monkeypatch.setattr(WeatherPipeline, "save", crash_on_bronze_state)
    with pytest.raises(RuntimeError):
        run(sample, lake)
    monkeypatch.undo()
    report = run(sample, lake)
    fresh = run(sample, tmp_path / "fresh")
    assert report["layers"]["silver"]["rows"] == fresh["layers"]["silver"]["rows"]
    assert report["reconciliation"]["mismatches"] == []


def test_days_split_across_flushes_are_merged_not_duplicated(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a flush after every raw file, most days reach bronze in several parts: each part
    is merged into the day's one object, and the result is the one a single flush gives."""
    from apps.pipelines.steps import bronze as bronze_step

    whole = run(sample, tmp_path / "whole")
    monkeypatch.setattr(bronze_step, "READ_FILES", 1)
    monkeypatch.setattr(bronze_step, "BRONZE_FLUSH_ROWS", 1)
    monkeypatch.setattr(bronze_step, "BRONZE_MAX_ROWS", 1)
    parts = run(sample, tmp_path / "parts")
    files = len(list(sample.rglob("*.json")))
    assert parts["layers"]["bronze"]["rows"] > whole["layers"]["bronze"]["rows"]  # rewritten
    for layer in ("bronze", "silver"):
        assert parts["layers"][layer]["rows_in"] == whole["layers"][layer]["rows_in"]
    assert parts["layers"]["silver"]["rows"] == whole["layers"]["silver"]["rows"]
    assert parts["quarantine"] == whole["quarantine"]
    assert files > 3
    gold = sorted((tmp_path / "whole" / "gold").rglob("*.parquet"))
    assert gold
    for p in gold:
        twin = tmp_path / "parts" / p.relative_to(tmp_path / "whole")
        assert twin.read_bytes() == p.read_bytes()


def test_small_batches_give_the_same_lake(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Silver gates (and reads ahead) and gold aggregates a few days at a time: batch sizes
    change the work's shape, not its result."""
    from apps.pipelines.steps import gold as gold_step
    from apps.pipelines.steps import silver as silver_step

    whole = run(sample, tmp_path / "whole")
    monkeypatch.setattr(silver_step, "SILVER_BATCH_ROWS", 200)
    monkeypatch.setattr(gold_step, "GOLD_BATCH_ROWS", 300)
    small = run(sample, tmp_path / "small")
    assert whole["validation"]["batches"] == 1
    assert small["validation"]["batches"] > 10
    for key in ("rows_evaluated", "failed_rows", "success"):
        assert small["validation"][key] == whole["validation"][key]
    assert small["layers"]["silver"] == whole["layers"]["silver"]
    assert small["layers"]["gold"] == whole["layers"]["gold"]
    assert small["quarantine"] == whole["quarantine"]
    gold = sorted((tmp_path / "whole" / "gold").rglob("*.parquet"))
    for p in gold:
        assert (
            tmp_path / "small" / p.relative_to(tmp_path / "whole")
        ).read_bytes() == p.read_bytes()


def test_reconciliation_mismatch_fails_the_run(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.pipelines import transform

    real = transform.silver

    def lossy(table: pa.Table) -> tuple[pa.Table, pa.Table]:
        kept, superseded = real(table)
        return kept.slice(1), superseded  # silently drops a row

    monkeypatch.setattr(transform, "silver", lossy)
    with pytest.raises(ReconciliationError, match="rows in but"):
        run(sample, tmp_path / "lake")


def test_window_selects_files(sample: Path) -> None:
    source = FileSource(f"file://{sample}")
    jan = list(source.fetch([SINGAPORE], dt.date(2023, 1, 1), dt.date(2023, 1, 31)))
    everything = list(source.fetch([SINGAPORE]))
    assert len(jan) == 1
    assert len(everything) == 2


def test_cli_exit_codes(sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report_file = tmp_path / "report.json"
    code = cli.main(
        [
            "run",
            "--source",
            f"file://{sample}",
            "--lake",
            f"file://{tmp_path}/lake",
            "--locations",
            "singapore",
            "--report",
            str(report_file),
        ]
    )
    assert code == 0
    assert json.loads(report_file.read_text())["layers"]["silver"]["rows"] > 0
    assert (
        cli.main(["run", "--source", f"file://{tmp_path}/nope", "--lake", f"file://{tmp_path}/l2"])
        == 1
    )
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["run", "--source", f"file://{sample}", "--lake", "ftp://x/y"]) == 2
    assert (
        cli.main(
            [
                "run",
                "--source",
                f"file://{sample}",
                "--lake",
                f"file://{tmp_path}/l3",
                "--locations",
                "atlantis",
            ]
        )
        == 2
    )
    assert "unknown location 'atlantis'" in capsys.readouterr().err


def test_steps_one_at_a_time(sample: Path, tmp_path: Path) -> None:
    lake = f"file://{tmp_path}/lake"
    for step in ("ingest", "bronze", "silver", "gold", "finish"):
        assert (
            cli.main(
                [
                    "step",
                    step,
                    "--source",
                    f"file://{sample}",
                    "--lake",
                    lake,
                    "--report",
                    str(tmp_path / f"{step}.json"),
                ]
            )
            == 0
        )
    final = json.loads((tmp_path / "finish.json").read_text())
    assert set(final["freshness_hours"]) == {"berlin", "singapore"}
    assert (tmp_path / "lake" / "gold" / "weather" / "features").is_dir()


def test_helpers() -> None:
    assert list(month_windows(dt.date(2023, 1, 30), dt.date(2023, 3, 2))) == [
        (dt.date(2023, 1, 30), dt.date(2023, 1, 31)),
        (dt.date(2023, 2, 1), dt.date(2023, 2, 28)),
        (dt.date(2023, 3, 1), dt.date(2023, 3, 2)),
    ]
    assert parse_locations("berlin,x:1:2") == (BERLIN, Location("x", 1.0, 2.0))
    with pytest.raises(LakeError, match="scheme"):
        Lake("ftp://host/path")
    with pytest.raises(ValueError, match="coordinates"):
        Location("bad", 91, 0)


def test_many_objects_at_once(tmp_path: Path) -> None:
    """Reads and writes of many objects: in order, a missing one named, and one failed write
    raised only after the others are whole (none is half-written, the caller records none)."""
    lake = open_lake(f"file://{tmp_path}/lake")
    tables = [pa.table({"x": pa.array([i] * (i + 1), pa.int64())}) for i in range(6)]
    lake.write_bytes(b"not a folder", "blocked")
    items = [(t, ("t", f"n={i}", "part-0.parquet")) for i, t in enumerate(tables)]
    items.insert(3, (tables[0], ("blocked", "part-0.parquet")))  # its parent is a file
    with pytest.raises(OSError, match="blocked"):
        lake.write_parquet_many(items)
    rels = [f"t/n={i}/part-0.parquet" for i in range(6)]
    assert [t["x"].to_pylist() for t in lake.read_parquet_many(rels)] == [
        t["x"].to_pylist() for t in tables
    ]
    assert lake.read_parquet_many(rels[:1], columns=["x"])[0].num_rows == 1
    assert not list((tmp_path / "lake").rglob("*.tmp-*"))
    assert lake.read_many_or_none(["blocked", "t/none"]) == [b"not a folder", None]
    with pytest.raises(FileNotFoundError, match="none"):
        lake.read_many(["t/none"])


def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    lake = open_lake(f"file://{tmp_path}/lake")
    lake.write_bytes(b"old", "x", "obj")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        lake.write_bytes(b"new", "x", "obj")
    assert sorted(p.name for p in (tmp_path / "lake" / "x").iterdir()) == ["obj"]
    assert lake.read_bytes("x", "obj") == b"old"


def test_merged_profiles_equal_the_profile_of_the_whole() -> None:
    from apps.shared import metrics

    a = pa.table({"x": [1.0, None, 3.0], "n": pa.array([5, 6, 7], pa.int64())})
    b = pa.table({"x": [None, None, -2.0, 10.0], "n": pa.array([1, 2, 3, 4], pa.int64())})
    whole = metrics.profile(pa.concat_tables([a, b]))
    merged = metrics.merge(metrics.profile(a), metrics.profile(b))
    assert merged["rows"] == whole["rows"] == 7
    for col in ("x", "n"):
        assert merged["columns"][col]["min"] == whole["columns"][col]["min"]
        assert merged["columns"][col]["max"] == whole["columns"][col]["max"]
        assert merged["columns"][col]["null_rate"] == pytest.approx(
            whole["columns"][col]["null_rate"], abs=1e-6
        )


def test_batches_follow_row_counts_not_file_sizes(tmp_path: Path) -> None:
    """Batches of days hold about a row budget (SILVER_BATCH_ROWS, GOLD_BATCH_ROWS), read from
    the Parquet footers, so memory per batch does not depend on how well a day compresses."""
    lake = open_lake(f"file://{tmp_path}/lake")
    sizes = {"2024-01-01": 30, "2024-01-02": 50, "2024-01-03": 10, "2024-01-04": 70}
    for day, n in sizes.items():
        table = pa.table({"x": pa.array(range(n), pa.int64())})
        lake.write_parquet(table, "bronze", "weather", f"date={day}", "part-0.parquet")
        assert lake.parquet_rows("bronze", "weather", f"date={day}", "part-0.parquet") == n
    batches = list(WeatherPipeline(lake)._batches("bronze", sorted(sizes), 60))
    assert batches == [["2024-01-01", "2024-01-02"], ["2024-01-03", "2024-01-04"]]


def test_bronze_merges_hold_a_bounded_number_of_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Late data touching many existing days reads those days back a few at a time."""
    from apps.pipelines.steps import bronze as bronze_step

    lake = open_lake(f"file://{tmp_path}/lake")
    sizes = {"2024-01-01": 30, "2024-01-02": 50, "2024-01-04": 70, "2024-01-05": 10}
    for day, n in sizes.items():
        table = pa.table({"x": pa.array(range(n), pa.int64())})
        lake.write_parquet(table, "bronze", "weather", f"date={day}", "part-0.parquet")
    monkeypatch.setattr(bronze_step, "BRONZE_MAX_ROWS", 80)
    days = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    chunks = list(WeatherPipeline(lake)._merge_chunks(days))
    assert chunks == [
        [("2024-01-01", 30), ("2024-01-02", 50), ("2024-01-03", None)],
        [("2024-01-04", 70), ("2024-01-05", 10)],
    ]
