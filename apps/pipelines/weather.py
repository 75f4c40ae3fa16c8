"""The weather pipeline: ingest -> bronze -> silver -> gold, step by step or all at once.

Each step reads its work from the lake's state (`_state/weather/state.json`) and leaves the
next step's work there, so Airflow can run the steps as separate tasks, a crashed run resumes
where it stopped, and a rerun of the same window changes nothing:

- **ingest** lands each response unchanged in `raw/`, keyed by its checksum and the window
  asked for (never rewritten).
- **bronze** judges each new raw file as a whole (`parse.py`: units, time zone, coordinates
  against the location's, arrays, the window recorded when it landed), then types every hour
  (`bronze/weather/date=D/part-0.parquet`); what cannot be typed goes to `quarantine/` with its
  reason, and a file that cannot be trusted is refused whole (its hours quarantined, the file
  named in the report), never stopping the others. Per raw file, rows in = rows out +
  quarantined, or the step fails; and the file's own claims are checked against what would
  land (`audit.py`): a mismatch is reported and those rows are quarantined. Raw files are
  fetched and parsed hundreds at a time (one columnar parse, see `parse.parse_many`), held up
  to a row budget, sorted once and cut into their days; a day that already has an object is
  read back and merged.
- **silver** re-derives each touched date: latest fetch time wins per (location, hour), units
  normalized (a unit bronze did not check, landed by an older version, is quarantined), Great
  Expectations gate; superseded and failing rows go to quarantine. Per date, bronze rows =
  silver rows + quarantined, exactly, or the run fails.
- **gold** re-derives the daily aggregates of touched dates and the features of touched
  locations (`gold/weather/daily/`, `gold/weather/features/`).

Every partition is one object, written atomically (see `lake.py`), a few at a time. Memory is
bounded by the batch budgets (`READ_FILES`, `BRONZE_FLUSH_ROWS` and `BRONZE_MAX_ROWS` in
`steps/bronze.py`, `SILVER_BATCH_ROWS` in `steps/silver.py`, `GOLD_BATCH_ROWS` in
`steps/gold.py`), not by the input's size. Each step is a module of `steps/`; this one puts
them together.
"""

from __future__ import annotations

from apps.pipelines.steps.bronze import BRONZE_FLUSH_ROWS, BRONZE_MAX_ROWS, READ_FILES, Bronze
from apps.pipelines.steps.finish import Finish
from apps.pipelines.steps.gold import GOLD_BATCH_ROWS, Gold
from apps.pipelines.steps.ingest import Ingest
from apps.pipelines.steps.report import QualityGateError, ReconciliationError, Report
from apps.pipelines.steps.silver import SILVER_BATCH_ROWS, Silver

__all__ = [
    "BRONZE_FLUSH_ROWS",
    "BRONZE_MAX_ROWS",
    "GOLD_BATCH_ROWS",
    "READ_FILES",
    "SILVER_BATCH_ROWS",
    "QualityGateError",
    "ReconciliationError",
    "Report",
    "WeatherPipeline",
]
# The budgets are re-exported to be read: a step reads its own module's, so a test or a
# benchmark that changes one changes it there (`apps.pipelines.steps.bronze.READ_FILES`, ...).


class WeatherPipeline(Ingest, Bronze, Silver, Gold, Finish):
    """The steps in order (`ingest`, `bronze`, `silver`, `gold`, `finish`) over one lake, one
    report and the lake's state (see `steps.base.Step`)."""
