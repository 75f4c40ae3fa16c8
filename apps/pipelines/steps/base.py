"""What every step of the weather pipeline shares: the lake, the lineage, the run's report,
the pipeline's state in the lake, reconciliation and the quarantine counts."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from apps.pipelines.lineage import Lineage
from apps.pipelines.steps.partitions import partition
from apps.pipelines.steps.report import ReconciliationError, Report
from apps.shared.lake import Lake

STATE = ("_state", "weather", "state.json")


class Step:
    """The pipeline's lake, lineage, report and state; each step is a subclass's method."""

    def __init__(
        self,
        lake: Lake,
        lineage: Lineage | None = None,
        run_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> None:
        self.lake = lake
        self.lineage = lineage or Lineage(None)
        self.run_id = (
            run_id or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        )
        self.now = now
        self.report = Report(self.run_id, lake.url, dt.datetime.now(dt.UTC).isoformat())

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state = self.lake.read_json(*STATE, default=None) or {}
        state.setdefault("processed", {})
        state.setdefault("pending", {"silver": [], "gold": [], "features": []})
        state.setdefault("watermarks", {})
        return state

    def save(self, state: dict[str, Any]) -> None:
        for key in ("silver", "gold", "features"):
            state["pending"][key] = sorted(set(state["pending"][key]))
        self.lake.write_json(state, *STATE)

    # -- helpers -------------------------------------------------------------------------------
    def _batches(self, layer: str, days: list[str], limit: int) -> Iterable[list[str]]:
        """Consecutive dates whose rows in `layer` add up to about `limit`."""
        batch: list[str] = []
        rows = 0
        for day in days:
            batch.append(day)
            # the exact row count from the Parquet footer: batches hold the same rows whatever
            # the input's size, so memory does not grow with it
            rows += self.lake.parquet_rows(*partition(layer, day))
            if rows >= limit:
                yield batch
                batch, rows = [], 0
        if batch:
            yield batch

    def _reconcile(self, where: str, rows_in: int, out: int, quarantined: int) -> None:
        ok = rows_in == out + quarantined
        self.report.reconciliation.append(
            {
                "partition": where,
                "rows_in": rows_in,
                "rows_out": out,
                "quarantined": quarantined,
                "ok": ok,
            }
        )
        if not ok:
            raise ReconciliationError(
                f"{where}: {rows_in} rows in but {out} out + {quarantined} "
                f"quarantined = {out + quarantined}"
            )

    def _count_quarantine(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        for reason in table["reason"].to_pylist():
            self.report.quarantine[f"{table['layer'][0].as_py()}: {reason}"] += 1
