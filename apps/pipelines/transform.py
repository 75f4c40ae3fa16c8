"""Silver and gold transformations, as pure functions over Arrow tables (polars inside)."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pyarrow as pa

from apps.pipelines.schema import DAILY, FEATURES, QUARANTINE, SILVER

SPEED_TO_MS = {"km/h": 1 / 3.6, "m/s": 1.0, "mph": 0.44704, "kn": 0.514444}
PRECIP_TO_MM = {"mm": 1.0, "inch": 25.4}


def frame(table: pa.Table) -> pl.DataFrame:
    """A polars frame of an Arrow table, from one contiguous chunk: converting a table made
    of many small chunks (a few rows per raw file and day) costs far more than the copy."""
    df = pl.from_arrow(table.combine_chunks())
    assert isinstance(df, pl.DataFrame)
    return df


class UnitError(ValueError):
    """A unit the pipeline does not know how to normalize."""


def deduplicate(bronze: pa.Table) -> tuple[pa.Table, pa.Table]:
    """One row per (location, ts): the latest ingestion wins (ties: the larger checksum, so
    the choice is deterministic). Returns (kept, superseded-as-quarantine)."""
    df = frame(bronze)
    df = df.sort(
        ["location", "ts", "_fetched_at", "_checksum"], descending=[False, False, True, True]
    )
    first = df.select(pl.struct(["location", "ts"]).is_first_distinct()).to_series()
    kept, dropped = df.filter(first), df.filter(~first)
    quarantine = dropped.select(
        pl.lit("silver").alias("layer"),
        pl.col("location"),
        pl.col("ts"),
        pl.lit("duplicate: superseded by a later ingestion of the same hour").alias("reason"),
        pl.lit("").alias("record"),
        pl.col("_checksum"),
    )
    return kept.to_arrow(), quarantine.to_arrow().cast(QUARANTINE)


def normalize(bronze: pa.Table) -> pa.Table:
    """Units to °C, %, mm and m/s; the silver layout."""
    df = frame(bronze)
    for col, known in (("wind_speed_unit", SPEED_TO_MS), ("precipitation_unit", PRECIP_TO_MM)):
        unknown = set(df[col].unique().to_list()) - set(known)
        if unknown:
            raise UnitError(f"unknown {col.removesuffix('_unit')} unit(s): {sorted(unknown)}")
    temp_units = set(df["temperature_unit"].unique().to_list()) - {"°C", "°F"}
    if temp_units:
        raise UnitError(f"unknown temperature unit(s): {sorted(temp_units)}")
    out = df.select(
        "location",
        "ts",
        "latitude",
        "longitude",
        pl.when(pl.col("temperature_unit") == "°F")
        .then((pl.col("temperature") - 32) * 5 / 9)
        .otherwise(pl.col("temperature"))
        .alias("temperature_c"),
        pl.col("relative_humidity").alias("relative_humidity_pct"),
        (
            pl.col("precipitation")
            * pl.col("precipitation_unit").replace_strict(PRECIP_TO_MM, return_dtype=pl.Float64)
        ).alias("precipitation_mm"),
        (
            pl.col("wind_speed")
            * pl.col("wind_speed_unit").replace_strict(SPEED_TO_MS, return_dtype=pl.Float64)
        ).alias("wind_speed_ms"),
        "_checksum",
        "_fetched_at",
    ).sort(["location", "ts"])
    return out.to_arrow().cast(SILVER)


def daily(silver: pa.Table) -> pa.Table:
    """Daily aggregates per location."""
    df = frame(silver)
    out = (
        df.with_columns(pl.col("ts").dt.date().alias("date"))
        .group_by(["location", "date"])
        .agg(
            pl.col("temperature_c").min().alias("temp_min_c"),
            pl.col("temperature_c").max().alias("temp_max_c"),
            pl.col("temperature_c").mean().alias("temp_mean_c"),
            pl.col("precipitation_mm").sum().alias("precipitation_mm"),
            pl.col("relative_humidity_pct").mean().alias("humidity_mean_pct"),
            pl.col("wind_speed_ms").max().alias("wind_max_ms"),
            pl.len().cast(pl.Int64).alias("hours"),
        )
        .sort(["location", "date"])
    )
    return out.to_arrow().cast(DAILY)


def features(daily_rows: pa.Table) -> pa.Table:
    """Training features per location and day: lags and rolling windows of the past only, the
    day of year as a circle, and the target (the next day's max temperature, null on the last
    day). Gaps in the days are kept as gaps: lags use the calendar, not row order."""
    df = frame(daily_rows)
    parts = []
    for (loc,), group in df.sort("date").group_by(["location"], maintain_order=True):
        first, last = group["date"].min(), group["date"].max()
        assert isinstance(first, dt.date) and isinstance(last, dt.date)  # noqa: PT018
        days = group.select(pl.date_range(first, last, "1d", eager=True).alias("date"))
        full = days.join(group, on="date", how="left").with_columns(pl.lit(loc).alias("location"))
        full = full.with_columns(
            pl.col("temp_max_c").shift(1).alias("temp_max_lag1"),
            pl.col("temp_max_c").shift(2).alias("temp_max_lag2"),
            pl.col("temp_max_c").shift(3).alias("temp_max_lag3"),
            pl.col("temp_max_c").rolling_mean(7, min_samples=4).alias("temp_max_roll7_mean"),
            pl.col("precipitation_mm").rolling_sum(3, min_samples=2).alias("precip_roll3_sum"),
            (pl.col("date").dt.ordinal_day() * (2 * math.pi / 365.25)).sin().alias("doy_sin"),
            (pl.col("date").dt.ordinal_day() * (2 * math.pi / 365.25)).cos().alias("doy_cos"),
            pl.col("temp_max_c").shift(-1).alias("target_next_day_temp_max_c"),
        )
        parts.append(full.filter(pl.col("temp_max_c").is_not_null()))
    if not parts:
        return FEATURES.empty_table()
    out = pl.concat(parts).select([f.name for f in FEATURES]).sort(["location", "date"])
    return out.to_arrow().cast(FEATURES)
