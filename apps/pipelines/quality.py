"""The silver quality gate: a Great Expectations 1.x suite run over each batch of silver
rows. Rows that fail an expectation are routed to quarantine with the expectation's name;
the suite's full result is stored with the run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa

EXPECTATIONS: list[tuple[str, dict[str, Any]]] = [
    ("ExpectColumnValuesToNotBeNull", {"column": "temperature_c"}),
    ("ExpectColumnValuesToNotBeNull", {"column": "ts"}),
    (
        "ExpectColumnValuesToBeBetween",
        {"column": "temperature_c", "min_value": -90, "max_value": 60},
    ),
    (
        "ExpectColumnValuesToBeBetween",
        {"column": "relative_humidity_pct", "min_value": 0, "max_value": 100},
    ),
    (
        "ExpectColumnValuesToBeBetween",
        {"column": "precipitation_mm", "min_value": 0, "max_value": 500},
    ),
    (
        "ExpectColumnValuesToBeBetween",
        {"column": "wind_speed_ms", "min_value": 0, "max_value": 120},
    ),
    ("ExpectColumnValuesToBeBetween", {"column": "latitude", "min_value": -90, "max_value": 90}),
    ("ExpectColumnValuesToBeBetween", {"column": "longitude", "min_value": -180, "max_value": 180}),
]
"""Row-level checks; schema, uniqueness and time order are checked on the batch."""

ROW_ID = "_row"


TABLE_LEVEL = ("expect_table_columns_to_match_set", "expect_compound_columns_to_be_unique")


@dataclass
class QualityResult:
    failures: dict[int, str]
    """Row index -> the first expectation it failed (those rows go to quarantine)."""
    batch_failures: list[str]
    """Table-level expectations that failed (schema, uniqueness): the step itself is wrong."""
    success: bool
    """Every expectation passed on every row."""
    result: dict[str, Any]
    """The suite result as JSON (Great Expectations' own shape, row lists removed)."""


@cache
def _suite() -> tuple[Any, Any]:
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (
        context.data_sources.add_pandas("dex")
        .add_dataframe_asset("weather_silver")
        .add_batch_definition_whole_dataframe("batch")
    )
    suite = gx.ExpectationSuite(name="weather_silver")
    for name, kwargs in EXPECTATIONS:
        suite.add_expectation(getattr(gx.expectations, name)(**kwargs))
    suite.add_expectation(
        gx.expectations.ExpectTableColumnsToMatchSet(
            column_set=[
                "location",
                "ts",
                "latitude",
                "longitude",
                "temperature_c",
                "relative_humidity_pct",
                "precipitation_mm",
                "wind_speed_ms",
                "_checksum",
                "_fetched_at",
                ROW_ID,
            ],
            exact_match=True,
        )
    )
    suite.add_expectation(
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["location", "ts"])
    )
    return batch_def, context.suites.add(suite)


def validate(silver: pa.Table) -> QualityResult:
    """Run the suite over `silver`; report failing rows by index."""
    batch_def, suite = _suite()
    df = silver.append_column(
        ROW_ID, pa.array(np.arange(silver.num_rows, dtype=np.int64))
    ).to_pandas()
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(
        suite,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]},
    )
    failures: dict[int, str] = {}
    for r in result.results:
        if r.success:
            continue
        config = r.expectation_config
        label = f"{config.type}({config.kwargs.get('column', '')})"
        for item in r.result.get("unexpected_index_list") or []:
            if isinstance(item, dict) and ROW_ID in item:
                failures.setdefault(int(item[ROW_ID]), f"failed expectation: {label}")
    doc = result.to_json_dict()
    for r in doc.get("results", []):  # row lists make the stored result huge: keep counts
        r.get("result", {}).pop("unexpected_index_list", None)
        r.get("result", {}).pop("unexpected_list", None)
        r.get("result", {}).pop("partial_unexpected_index_list", None)
    batch_failures = [
        r.expectation_config.type
        for r in result.results
        if not r.success and r.expectation_config.type in TABLE_LEVEL
    ]
    return QualityResult(failures, batch_failures, bool(result.success), doc)
