"""**gold**: the daily aggregates of touched dates and the features of touched locations
re-derived (`gold/weather/daily/`, `gold/weather/features/`).

The row budget below is read when the step runs: tests and benchmarks turn it here.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from apps.pipelines import transform
from apps.pipelines.steps.base import Step
from apps.pipelines.steps.partitions import by_day, by_location, partition, rel_path
from apps.shared import metrics
from apps.shared.schema import DAILY, FEATURES
from contracts.lake import gold_features

GOLD_BATCH_ROWS = 1_000_000
"""Silver rows aggregated together into daily partitions."""


class Gold(Step):
    def gold(self) -> None:
        state = self.state()
        pending = sorted(set(state["pending"]["gold"]))
        locations: set[str] = set(state["pending"]["features"])
        daily_profile: dict[str, Any] | None = None
        with self.lineage.task(
            "weather.gold", [self.lake.uri("silver", "weather")], [self.lake.uri("gold", "weather")]
        ):
            for batch in self._batches("silver", pending, GOLD_BATCH_ROWS):
                agg = self._daily(batch)
                locations |= set(pc.unique(agg["location"]).to_pylist())
                daily_profile = metrics.merge(daily_profile, metrics.profile(agg))
                self.report.add("gold", "daily_rows", agg.num_rows)
            state["pending"]["gold"] = []
            state["pending"]["features"] = sorted(locations)
            self.save(state)
            if locations:
                self._features(locations)
                state["pending"]["features"] = []
                self.save(state)
        self.report.add("gold", "partitions_written", len(pending))
        self.report.partitions.setdefault("gold", []).extend(pending)
        self.report.partitions.setdefault("features", []).extend(sorted(locations))
        if daily_profile is not None:
            self.report.profiles["gold"] = daily_profile

    def _daily(self, batch: list[str]) -> pa.Table:
        """Aggregate a batch of silver dates and write their daily partitions; returns the
        aggregates."""
        silver = self.lake.read_parquet_many(
            [rel_path(partition("silver", day)) for day in batch], columns=transform.DAILY_INPUTS
        )
        agg = transform.daily(pa.concat_tables(silver))
        by_date = by_day(agg, "date")
        self.lake.write_parquet_many(
            [
                (
                    by_date.get(day, DAILY.empty_table()),
                    ("gold", "weather", "daily", f"date={day}", "part-0.parquet"),
                )
                for day in batch
            ]
        )
        return agg

    def _features(self, locations: set[str]) -> None:
        """Re-derive the features of `locations` from all their daily rows, one partition
        each."""
        daily = self.lake.read_parquet_many(self.lake.glob("gold/weather/daily/*/part-0.parquet"))
        all_daily = pa.concat_tables([t.cast(DAILY) for t in daily])
        touched = all_daily.filter(pc.is_in(all_daily["location"], pa.array(sorted(locations))))
        feats = transform.features(touched)
        by_loc = by_location(feats)
        self.lake.write_parquet_many(
            [
                (by_loc.get(loc, FEATURES.empty_table()), gold_features(loc))
                for loc in sorted(locations)
            ]
        )
        self.report.add("gold", "feature_rows", feats.num_rows)
