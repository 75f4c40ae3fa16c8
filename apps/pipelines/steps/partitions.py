"""The layout of the weather partitions, and rows cut into them (by day, by location)."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EPOCH = dt.date(1970, 1, 1)
"""Day 0 of Arrow's date32."""


def split(table: pa.Table, keys: np.ndarray) -> list[tuple[int, pa.Table]]:
    """Rows grouped by an integer key per row, in key order, each group keeping the rows'
    order: one stable sort (none if already in order) and zero-copy slices."""
    if not table.num_rows:
        return []
    if not bool((keys[1:] >= keys[:-1]).all()):
        order = np.argsort(keys, kind="stable")
        table, keys = table.take(pa.array(order)), keys[order]
    cuts = [0, *((keys[1:] != keys[:-1]).nonzero()[0] + 1).tolist(), len(keys)]
    return [(int(keys[a]), table.slice(a, b - a)) for a, b in itertools.pairwise(cuts)]


def by_day(table: pa.Table, column: str = "ts") -> dict[str, pa.Table]:
    """Rows by UTC day of a timestamp or date column (YYYY-MM-DD -> rows)."""
    days = pc.cast(pc.cast(table[column], pa.date32()), pa.int32())
    return {
        (EPOCH + dt.timedelta(days=day)).isoformat(): rows
        for day, rows in split(table, days.to_numpy(zero_copy_only=False).astype(np.int64))
    }


def by_location(table: pa.Table) -> dict[str, pa.Table]:
    """Rows by location (name -> rows)."""
    codes = pc.dictionary_encode(table["location"]).combine_chunks()
    names = codes.dictionary.to_pylist()
    return {
        names[code]: rows
        for code, rows in split(
            table, codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        )
    }


def partition(layer: str, day: str) -> tuple[str, ...]:
    """The one object of a layer's date partition."""
    return (layer, "weather", f"date={day}", "part-0.parquet")


def rel_path(parts: tuple[str, ...]) -> str:
    return "/".join(parts)
