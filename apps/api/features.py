"""Gold features for /v1/forecast, read from the lake."""

from __future__ import annotations

import time
from typing import Any

from apps.shared.lake import Lake
from contracts.lake import gold_features


class Features:
    """The latest gold features per location, re-read at most once a minute."""

    def __init__(self, lake: Lake | None) -> None:
        self.lake = lake
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def latest(self, location: str) -> dict[str, Any] | None:
        hit = self._cache.get(location)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        row = None
        if self.lake is not None:
            rel = gold_features(location)
            if self.lake.exists(*rel):
                table = self.lake.read_parquet(*rel)
                if table.num_rows:
                    row = table.slice(table.num_rows - 1).to_pylist()[0]
        self._cache[location] = (time.monotonic() + 60, row)
        return row
