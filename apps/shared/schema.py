"""Column layouts of the layers (pyarrow schemas): the contract between steps and readers."""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

BRONZE = pa.schema(
    [
        ("location", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("ts", TS),
        ("temperature", pa.float64()),
        ("temperature_unit", pa.string()),
        ("relative_humidity", pa.float64()),
        ("precipitation", pa.float64()),
        ("precipitation_unit", pa.string()),
        ("wind_speed", pa.float64()),
        ("wind_speed_unit", pa.string()),
        ("_checksum", pa.string()),
        ("_fetched_at", TS),
    ]
)

SILVER = pa.schema(
    [
        ("location", pa.string()),
        ("ts", TS),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("temperature_c", pa.float64()),
        ("relative_humidity_pct", pa.float64()),
        ("precipitation_mm", pa.float64()),
        ("wind_speed_ms", pa.float64()),
        ("_checksum", pa.string()),
        ("_fetched_at", TS),
    ]
)

QUARANTINE = pa.schema(
    [
        ("layer", pa.string()),
        ("location", pa.string()),
        ("ts", TS),
        ("reason", pa.string()),
        ("record", pa.string()),
        ("_checksum", pa.string()),
    ]
)

DAILY = pa.schema(
    [
        ("location", pa.string()),
        ("date", pa.date32()),
        ("temp_min_c", pa.float64()),
        ("temp_max_c", pa.float64()),
        ("temp_mean_c", pa.float64()),
        ("precipitation_mm", pa.float64()),
        ("humidity_mean_pct", pa.float64()),
        ("wind_max_ms", pa.float64()),
        ("hours", pa.int64()),
    ]
)

FEATURES = pa.schema(
    [
        ("location", pa.string()),
        ("date", pa.date32()),
        ("temp_max_c", pa.float64()),
        ("temp_min_c", pa.float64()),
        ("temp_mean_c", pa.float64()),
        ("precipitation_mm", pa.float64()),
        ("humidity_mean_pct", pa.float64()),
        ("wind_max_ms", pa.float64()),
        ("temp_max_lag1", pa.float64()),
        ("temp_max_lag2", pa.float64()),
        ("temp_max_lag3", pa.float64()),
        ("temp_max_roll7_mean", pa.float64()),
        ("precip_roll3_sum", pa.float64()),
        ("doy_sin", pa.float64()),
        ("doy_cos", pa.float64()),
        ("target_next_day_temp_max_c", pa.float64()),
    ]
)

FEATURE_COLUMNS = [
    f.name for f in FEATURES if f.name not in ("location", "date", "target_next_day_temp_max_c")
]
"""The model's inputs (the training app and the API read this list)."""
TARGET = "target_next_day_temp_max_c"
