"""**silver**: each touched date re-derived: latest fetch time wins per (location, hour),
units normalized (a unit bronze did not check, landed by an older version, is quarantined),
Great Expectations gate; superseded and failing rows go to quarantine. Per date, bronze rows =
silver rows + quarantined, exactly, or the run fails.

The row budget below is read when the step runs: tests and benchmarks turn it here.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from apps.pipelines import quality, transform
from apps.pipelines.steps.base import Step
from apps.pipelines.steps.partitions import by_day, partition, rel_path
from apps.pipelines.steps.report import QualityGateError
from apps.shared import metrics
from apps.shared.schema import BRONZE, QUARANTINE, SILVER

SILVER_BATCH_ROWS = 500_000
"""Rows validated together in one Great Expectations call (bounds memory, amortizes cost)."""


class Silver(Step):
    def silver(self) -> None:
        state = self.state()
        pending = sorted(set(state["pending"]["silver"]))
        results: list[dict[str, Any]] = []
        profile: dict[str, Any] | None = None
        with self.lineage.task(
            "weather.silver",
            [self.lake.uri("bronze", "weather")],
            [self.lake.uri("silver", "weather"), self.lake.uri("quarantine", "weather")],
        ):
            batches = list(self._batches("bronze", pending, SILVER_BATCH_ROWS))
            # The next batch is read and transformed (Arrow and polars: the GIL released) on
            # a thread while this one goes through the gate (mostly Python): both cores work.
            with ThreadPoolExecutor(1) as ahead:
                upcoming = ahead.submit(self._silver_rows, batches[0]) if batches else None
                for i, batch_days in enumerate(batches):
                    assert upcoming is not None
                    rows = upcoming.result()
                    if i + 1 < len(batches):
                        upcoming = ahead.submit(self._silver_rows, batches[i + 1])
                    result, good = self._silver_batch(batch_days, *rows)
                    results.append(result)
                    profile = metrics.merge(profile, metrics.profile(good))
                    state["pending"]["silver"] = [
                        d for d in state["pending"]["silver"] if d not in batch_days
                    ]
                    state["pending"]["gold"] += batch_days
                    self.save(state)
        if results:
            self.report.validation = self._validation(results)
        if profile is not None:
            self.report.profiles["silver"] = profile

    def _validation(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        """The gate's results, stored in the run's folder, and their summary for the report."""
        stored = self.lake.write_json(results, "_runs", self.run_id, "validation.json")
        failed = sum(r["failed_rows"] for r in results)
        return {
            "success": all(r["success"] for r in results),
            "batches": len(results),
            "rows_evaluated": sum(r["rows"] for r in results),
            "failed_rows": failed,
            "expectations": len(quality.EXPECTATIONS) + 2,
            "result": self.lake.uri(stored.split(self.lake.root.rstrip("/") + "/", 1)[-1])
            if self.lake.protocol != "file"
            else "file://" + stored,
        }

    def _silver_rows(self, days: list[str]) -> tuple[dict[str, int], pa.Table, pa.Table]:
        """A batch's bronze rows per day, its silver rows and its superseded rows."""
        tables = self.lake.read_parquet_many([rel_path(partition("bronze", day)) for day in days])
        bronze_counts = {day: t.num_rows for day, t in zip(days, tables, strict=True)}
        silver, superseded = transform.silver(pa.concat_tables(tables).cast(BRONZE))
        return bronze_counts, silver, superseded

    def _silver_batch(
        self,
        days: list[str],
        bronze_counts: dict[str, int],
        silver: pa.Table,
        superseded: pa.Table,
    ) -> tuple[dict[str, Any], pa.Table]:
        """Gate a batch, then write its silver and quarantine partitions by day."""
        checked = quality.validate(silver)
        if checked.batch_failures:
            raise QualityGateError(
                f"silver batch {days[0]}..{days[-1]} failed {checked.batch_failures}"
            )
        bad = np.zeros(silver.num_rows, dtype=bool)
        bad[sorted(checked.failures)] = True
        invalid = _failing(silver.filter(pa.array(bad)), checked.failures)
        good = silver.filter(pa.array(~bad))
        good_days = by_day(good)
        quarantine_days = by_day(pa.concat_tables([superseded, invalid]))
        writes = []
        for day in days:
            part = good_days.get(day, SILVER.empty_table())
            q = quarantine_days.get(day, QUARANTINE.empty_table())
            self._reconcile(f"silver:date={day}", bronze_counts[day], part.num_rows, q.num_rows)
            writes.append((part, partition("silver", day)))
            if q.num_rows:
                writes.append(
                    (q, ("quarantine", "weather", "layer=silver", f"date={day}", "part-0.parquet"))
                )
            else:
                self.lake.delete("quarantine", "weather", "layer=silver", f"date={day}")
            self._count_quarantine(q)
            self.report.add("silver", "rows", part.num_rows)
            self.report.add("silver", "rows_in", bronze_counts[day])
        self.lake.write_parquet_many(writes)
        self.report.add("silver", "partitions_written", len(days))
        self.report.partitions.setdefault("silver", []).extend(days)
        return {
            "dates": [days[0], days[-1]],
            "rows": silver.num_rows,
            "success": checked.success,
            "failed_rows": len(checked.failures),
            "result": checked.result,
        }, good


def _failing(failing: pa.Table, failures: dict[int, str]) -> pa.Table:
    """The rows that failed the gate (in row order) as quarantine records, with the failed
    expectation of each (`failures`: batch row -> reason)."""
    return pa.table(
        {
            "layer": pa.array(["silver"] * failing.num_rows),
            "location": failing["location"],
            "ts": failing["ts"],
            "reason": pa.array([failures[i] for i in sorted(failures)], pa.string()),
            "record": pa.array(
                [
                    json.dumps(r, default=str)
                    for r in failing.drop_columns(["_fetched_at"]).to_pylist()
                ],
                pa.string(),
            ),
            "_checksum": failing["_checksum"],
        },
        schema=QUARANTINE,
    )
