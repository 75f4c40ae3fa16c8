"""**finish**: freshness per location (from the newest gold features), the watermarks the next
ingest starts from, the run's metrics (`_metrics/weather.prom`, pushed) and its report
(`_runs/<run id>/report.json`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow.compute as pc

from apps.pipelines.steps.base import Step
from apps.shared import metrics


class Finish(Step):
    def finish(self) -> dict[str, Any]:
        now = self.now or dt.datetime.now(dt.UTC)
        newest = self._newest()
        self.report.freshness_hours = {
            loc: round((now - ts).total_seconds() / 3600, 1) for loc, ts in sorted(newest.items())
        }
        state = self.state()
        state["watermarks"].update({loc: ts.isoformat() for loc, ts in newest.items()})
        self.save(state)
        rendered = metrics.render(self.report.profiles, self.report.freshness_hours, now)
        self.lake.write_bytes(rendered, "_metrics", "weather.prom")
        problem = metrics.push(rendered, "dex-pipeline-weather")
        report = self.report.as_dict()
        report["metrics_push"] = problem or "ok"
        self.lake.write_json(report, "_runs", self.run_id, "report.json")
        return report

    def _newest(self) -> dict[str, dt.datetime]:
        """Per location, the last hour of its newest day of features."""
        newest: dict[str, dt.datetime] = {}
        rels = self.lake.glob("gold/weather/features/*/part-0.parquet")
        # only the dates, every location's fetched together (one round of GETs on S3)
        for rel, table in zip(
            rels, self.lake.read_parquet_many(rels, columns=["date"]), strict=True
        ):
            loc = rel.split("location=")[1].split("/")[0]
            dates = table["date"]
            if len(dates):
                last = pc.max(dates).as_py()
                newest[loc] = dt.datetime.combine(last, dt.time(23), tzinfo=dt.UTC)
        return newest
