"""Silver and gold transformations, as pure functions over Arrow tables (polars inside)."""

from __future__ import annotations

import math

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from apps.pipelines.units import FAHRENHEIT, PRECIP_TO_MM, SPEED_TO_MS
from apps.shared.schema import BRONZE, DAILY, FEATURES, QUARANTINE, SILVER

TEMPERATURE_UNITS = ("°C", FAHRENHEIT)
UNIT_COLUMNS = {
    "temperature_unit": TEMPERATURE_UNITS,
    "precipitation_unit": tuple(PRECIP_TO_MM),
    "wind_speed_unit": tuple(SPEED_TO_MS),
}
"""Bronze unit column -> the spellings silver converts (bronze refuses any other)."""
UNKNOWN_UNIT = "unknown unit (landed before units were checked in bronze)"


def frame(table: pa.Table) -> pl.DataFrame:
    """A polars frame of an Arrow table, from one contiguous chunk: converting a table made
    of many small chunks (a few rows per raw file and day) costs far more than the copy."""
    df = pl.from_arrow(table.combine_chunks())
    assert isinstance(df, pl.DataFrame)
    return df


class UnitError(ValueError):
    """A unit the pipeline does not know how to normalize."""


BRONZE_ORDER = ["location", "ts", "_fetched_at", "_checksum"]
"""How a bronze partition's rows are ordered (ties keep their arrival order)."""
SUPERSEDED = "duplicate: superseded by a later ingestion of the same hour"


def _by_day_then(columns: list[str]) -> list[pl.Expr | str]:
    return [pl.col("ts").dt.date(), *columns]


def sort_bronze(bronze: pa.Table) -> pa.Table:
    """Rows by UTC day, then BRONZE_ORDER: one sort puts every date partition's rows in the
    order its file keeps them (the same rows give the same file)."""
    df = frame(bronze).sort(_by_day_then(BRONZE_ORDER), maintain_order=True)
    return df.to_arrow().cast(BRONZE)


def silver(bronze: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Bronze rows -> (silver rows by day, location and hour; superseded rows and rows in a
    unit silver cannot convert, as quarantine): `deduplicate` then `normalize`, in one pass
    over one frame. Bronze refuses unknown units, so those can only be rows an older version
    landed: they are quarantined, never allowed to stop the run."""
    df = frame(bronze)
    known = pl.all_horizontal(
        [
            pl.col(col).is_in(list(spellings)).fill_null(False)
            for col, spellings in UNIT_COLUMNS.items()
        ]
    )
    unknown = df.filter(~known)
    kept, superseded = _deduplicate(df.filter(known) if unknown.height else df)
    if unknown.height:
        odd = unknown.select(
            pl.lit("silver").alias("layer"),
            pl.col("location"),
            pl.col("ts"),
            pl.lit(UNKNOWN_UNIT).alias("reason"),
            pl.concat_str(
                [pl.col(c).fill_null("null") for c in UNIT_COLUMNS], separator=", "
            ).alias("record"),
            pl.col("_checksum"),
        )
        superseded = pa.concat_tables([superseded, odd.to_arrow().cast(QUARANTINE)])
    return _normalize(kept).to_arrow().cast(SILVER), superseded


def deduplicate(bronze: pa.Table) -> tuple[pa.Table, pa.Table]:
    """One row per (location, ts): the latest ingestion wins (ties: the larger checksum, then
    the last in bronze order, so the choice is deterministic). Returns (kept rows by day,
    location and hour; superseded-as-quarantine)."""
    kept, superseded = _deduplicate(frame(bronze))
    return kept.to_arrow().cast(BRONZE), superseded


def _deduplicate(df: pl.DataFrame) -> tuple[pl.DataFrame, pa.Table]:
    # bronze is stored in this order already, so the sort is a check more than a shuffle;
    # the winner is then the last row of each (location, ts) run
    df = df.sort(_by_day_then(BRONZE_ORDER), maintain_order=True)
    last = df.select(
        pl.col("location").ne_missing(pl.col("location").shift(-1))
        | pl.col("ts").ne_missing(pl.col("ts").shift(-1))
    ).to_series()
    kept, dropped = df.filter(last), df.filter(~last)
    quarantine = dropped.select(
        pl.lit("silver").alias("layer"),
        pl.col("location"),
        pl.col("ts"),
        pl.lit(SUPERSEDED).alias("reason"),
        pl.lit("").alias("record"),
        pl.col("_checksum"),
    )
    return kept, quarantine.to_arrow().cast(QUARANTINE)


def normalize(bronze: pa.Table) -> pa.Table:
    """Units to °C, %, mm and m/s; the silver layout, rows by day, location and hour."""
    df = frame(bronze).sort(_by_day_then(["location", "ts"]), maintain_order=True)
    return _normalize(df).to_arrow().cast(SILVER)


def _normalize(df: pl.DataFrame) -> pl.DataFrame:
    """`normalize` on a frame, keeping its row order."""
    units = df.select(
        pl.col("temperature_unit").unique().implode(),
        pl.col("precipitation_unit").unique().implode(),
        pl.col("wind_speed_unit").unique().implode(),
    ).row(0)
    for col, found, known in zip(
        ("temperature", "precipitation", "wind speed"),
        units,
        (set(TEMPERATURE_UNITS), set(PRECIP_TO_MM), set(SPEED_TO_MS)),
        strict=True,
    ):
        unknown = set(found) - known
        if unknown:
            raise UnitError(f"unknown {col} unit(s): {sorted(unknown)}")
    return df.select(
        "location",
        "ts",
        "latitude",
        "longitude",
        pl.when(pl.col("temperature_unit") == FAHRENHEIT)
        .then((pl.col("temperature") - 32) * 5 / 9)
        .otherwise(pl.col("temperature"))
        .alias("temperature_c"),
        pl.col("relative_humidity").alias("relative_humidity_pct"),
        _scaled("precipitation", "precipitation_unit", PRECIP_TO_MM).alias("precipitation_mm"),
        _scaled("wind_speed", "wind_speed_unit", SPEED_TO_MS).alias("wind_speed_ms"),
        "_checksum",
        "_fetched_at",
    )


def _scaled(col: str, unit: str, table: dict[str, tuple[float, float]]) -> pl.Expr:
    """value * numerator / denominator of its unit: exact factors, one rounding each."""
    num = {k: v[0] for k, v in table.items()}
    den = {k: v[1] for k, v in table.items()}
    return (
        pl.col(col)
        * pl.col(unit).replace_strict(num, return_dtype=pl.Float64)
        / pl.col(unit).replace_strict(den, return_dtype=pl.Float64)
    )


DAILY_INPUTS = [
    "location",
    "ts",
    "temperature_c",
    "precipitation_mm",
    "relative_humidity_pct",
    "wind_speed_ms",
]
"""The silver columns the daily aggregates read."""


def daily(silver: pa.Table) -> pa.Table:
    """Daily aggregates per location. Arrow's single-threaded hash aggregation folds each
    group's rows in their order, so a day's figures do not depend on which other days or
    locations were aggregated with it (the gold bytes of a rerun match a fresh run's)."""
    table = silver.append_column("date", pc.cast(silver["ts"], pa.date32()))
    total = pc.ScalarAggregateOptions(skip_nulls=True, min_count=0)  # an all-null day sums to 0
    out = (
        table.group_by(["location", "date"], use_threads=False)
        .aggregate(
            [
                ("temperature_c", "min"),
                ("temperature_c", "max"),
                ("temperature_c", "mean"),
                ("precipitation_mm", "sum", total),
                ("relative_humidity_pct", "mean"),
                ("wind_speed_ms", "max"),
                ([], "count_all"),
            ]
        )
        .rename_columns(
            {
                "temperature_c_min": "temp_min_c",
                "temperature_c_max": "temp_max_c",
                "temperature_c_mean": "temp_mean_c",
                "precipitation_mm_sum": "precipitation_mm",
                "relative_humidity_pct_mean": "humidity_mean_pct",
                "wind_speed_ms_max": "wind_max_ms",
                "count_all": "hours",
            }
        )
        .sort_by([("location", "ascending"), ("date", "ascending")])
    )
    return out.select(DAILY.names).cast(DAILY)


def features(daily_rows: pa.Table) -> pa.Table:
    """Training features per location and day: lags and rolling windows of the past only, the
    day of year as a circle, and the target (the next day's max temperature, null on the last
    day). Gaps in the days are kept as gaps: lags use the calendar, not row order. Every
    figure is computed from its own location's days alone, in a fixed order."""
    df = frame(daily_rows.cast(DAILY))
    if not df.height:
        return FEATURES.empty_table()
    calendar = (
        df.group_by("location")
        .agg(pl.col("date").min().alias("first"), pl.col("date").max().alias("last"))
        .select("location", pl.date_ranges("first", "last", "1d").alias("date"))
        .explode("date", empty_as_null=True)
    )
    full = calendar.join(df, on=["location", "date"], how="left").sort(["location", "date"])

    def past(col: str, days: int) -> pl.Expr:
        return pl.col(col).shift(days).over("location")

    week = [past("temp_max_c", k) for k in range(7)]
    three = [past("precipitation_mm", k) for k in range(3)]
    seen_week = pl.sum_horizontal([x.is_not_null() for x in week])
    seen_three = pl.sum_horizontal([x.is_not_null() for x in three])
    angle = pl.col("date").dt.ordinal_day() * (2 * math.pi / 365.25)
    out = (
        full.with_columns(
            past("temp_max_c", 1).alias("temp_max_lag1"),
            past("temp_max_c", 2).alias("temp_max_lag2"),
            past("temp_max_c", 3).alias("temp_max_lag3"),
            pl.when(seen_week >= 4).then(pl.mean_horizontal(week)).alias("temp_max_roll7_mean"),
            pl.when(seen_three >= 2).then(pl.sum_horizontal(three)).alias("precip_roll3_sum"),
            angle.sin().alias("doy_sin"),
            angle.cos().alias("doy_cos"),
            past("temp_max_c", -1).alias("target_next_day_temp_max_c"),
        )
        .filter(pl.col("temp_max_c").is_not_null())
        .select([f.name for f in FEATURES])
    )
    return out.to_arrow().cast(FEATURES)
