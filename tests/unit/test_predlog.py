"""The prediction log's lines: one per model call, read back one record per row; a full buffer
is flushed before its interval; a failed write keeps every line for the next flush."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import to_json

from apps.api import predlog
from apps.api.predlog import PredictionLog, entry, expand
from apps.shared.lake import open_lake

pytestmark = pytest.mark.unit

FIELDS: dict[str, Any] = {
    "request_id": "r1",
    "client": "c",
    "route": "predict",
    "model_name": "m",
    "model_version": "3",
    "role": "champion",
    "served": True,
}


def test_a_line_reads_back_one_record_per_row_with_the_day_predicted() -> None:
    rows: list[dict[str, Any]] = [
        {"location": "berlin", "date": dt.date(2024, 2, 28)},
        {"location": "oslo", "date": None},
        {"location": "rome", "date": "2024-12-31"},
    ]
    line = json.loads(to_json(entry(**FIELDS, inputs=rows, outputs=[1.0, 2.0, 3.5])))
    records = expand(line)
    assert [r["for_date"] for r in records] == ["2024-02-29", None, "2025-01-01"]
    assert [r["output"] for r in records] == [1.0, 2.0, 3.5]
    assert [r["inputs"]["location"] for r in records] == ["berlin", "oslo", "rome"]
    assert {r["model_version"] for r in records} == {"3"}
    old = {**FIELDS, "inputs": {"location": "berlin"}, "output": 1.0}  # the per-row shape
    assert expand(old) == [old]
    with pytest.raises(ValueError, match="2 rows but 1 outputs"):
        entry(**FIELDS, inputs=rows[:2], outputs=[1.0])


def _lines(root: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for f in sorted(root.rglob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]


def test_a_full_buffer_is_flushed_before_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predlog, "FLUSH_BYTES", 1_000)
    log = PredictionLog(open_lake(f"file://{tmp_path}", layered=False), flush_seconds=3600)
    log.start()
    try:
        rows = [{"location": "berlin", "x": float(i)} for i in range(200)]
        log.add(entry(**FIELDS, inputs=rows, outputs=[0.5] * 200))
        deadline = time.monotonic() + 10
        while log.written == 0:
            assert time.monotonic() < deadline, "a full buffer waited for the interval"
            time.sleep(0.05)
    finally:
        log.close()
    assert len(expand(_lines(tmp_path)[0])) == 200


def test_a_failed_write_keeps_every_line(tmp_path: Path) -> None:
    lake = open_lake(f"file://{tmp_path}", layered=False)
    log = PredictionLog(lake)
    log.add(entry(**FIELDS, inputs=[{"location": "a"}], outputs=[1.0]))
    log.add(entry(**{**FIELDS, "request_id": "r2"}, inputs=[{"location": "b"}], outputs=[2.0]))
    real = lake.write_bytes

    def broken(*a: Any, **k: Any) -> str:
        raise OSError("disk full")

    lake.write_bytes = broken  # type: ignore[method-assign]
    assert log.flush() == 0
    lake.write_bytes = real  # type: ignore[method-assign]
    assert log.flush() == 2
    assert [line["request_id"] for line in _lines(tmp_path)] == ["r1", "r2"]


def test_a_validated_batch_is_logged_as_columns_and_reads_back_as_its_rows() -> None:
    from apps.api.app import PredictRequest
    from apps.api.rows import parse_rows

    row = {
        "location": "berlin",
        "date": "2024-06-01",
        "temp_max_c": 5,
        "temp_min_c": 1.0,
        "temp_mean_c": 3.0,
        "precipitation_mm": 0.0,
        "humidity_mean_pct": 70.0,
        "wind_max_ms": 4.0,
        "doy_sin": 0.1,
        "doy_cos": 0.99,
    }
    rows = parse_rows({"rows": [row, {**row, "location": "oslo", "date": None}]}, PredictRequest)
    line = json.loads(to_json(entry(**FIELDS, inputs=rows, outputs=[1.0, 2.0])))
    assert "columns" in line  # not a dict per row
    assert "inputs" not in line
    back = expand(line)
    assert [r["for_date"] for r in back] == ["2024-06-02", None]
    want = [{**r, "date": r["date"] and r["date"].isoformat()} for r in rows.records]
    assert [r["inputs"] for r in back] == want
