"""The prediction log: every prediction (inputs, output, model version, request id) appended
to the object store in batches, one JSON-lines object per flush, under
`raw/predictions/date=YYYY-MM-DD/`. A background thread flushes, so requests never wait on
storage; what is still buffered at shutdown is flushed by `close()`.

A line is one model call, built only by `entry()` (the API calls it in one place,
`Rollout.log` in apps/api/rollout.py): `ts`, `request_id`, `client`, `route`
(predict, forecast, batch), `model_name`, `model_version`, `role` (champion or challenger),
`served` (false for a shadow score nobody received), the rows (`inputs`, a list of objects; or
`columns`, field -> values, for a validated batch) and `outputs` (one value per row).
Serialized once per call by pydantic-core's encoder (a 1,000-row request: well under 1 ms,
not the ~10 ms of a `json.dumps` per row). Readers take a line through `expand()`: one record
per row with `inputs`, `output` and `for_date` (the day predicted, the day after the row's
`date` when it gives one; the feedback step joins it with that day's actual). Lines of the
older one-record-per-row shape pass through `expand()` unchanged.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_json

from apps.shared.lake import Lake

log = logging.getLogger("dex.api.predlog")

FLUSH_BYTES = 4 * 1024 * 1024
"""Buffered bytes that wake the flusher before its interval: one flush never joins more than
about this much while holding the GIL."""


def entry(
    *,
    request_id: str,
    client: str,
    route: str,
    model_name: str,
    model_version: str,
    role: str,
    served: bool,
    inputs: Sequence[dict[str, Any]],
    outputs: Sequence[float],
) -> dict[str, Any]:
    """The log line of one model call. A batch that carries its columns (`Rows`) is logged
    as columns (`columns`: field -> values), which costs a fraction of a dict per row."""
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} rows but {len(outputs)} outputs")
    columns = getattr(inputs, "field_values", None)  # a Rows batch: its columns as plain values
    rows: dict[str, Any] = {"inputs": inputs} if columns is None else {"columns": columns}
    return {
        "ts": dt.datetime.now(dt.UTC).isoformat(),
        "request_id": request_id,
        "client": client,
        "route": route,
        "model_name": model_name,
        "model_version": model_version,
        "role": role,
        "served": served,
        **rows,
        "outputs": outputs,
    }


def _for_date(row: dict[str, Any]) -> str | None:
    day = row.get("date") if isinstance(row, dict) else None
    if day is None:
        return None
    if not isinstance(day, dt.date):
        day = dt.date.fromisoformat(str(day)[:10])
    return (day + dt.timedelta(days=1)).isoformat()


def expand(line: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per row of a log line (a line of the per-row shape is one already)."""
    if "outputs" not in line:
        return [line]
    base = {k: v for k, v in line.items() if k not in ("inputs", "columns", "outputs")}
    if "columns" in line:
        names = list(line["columns"])
        line = {
            **line,
            "inputs": [
                dict(zip(names, v, strict=True))
                for v in zip(*line["columns"].values(), strict=True)
            ],
        }
    return [
        {**base, "for_date": _for_date(row), "inputs": row, "output": value}
        for row, value in zip(line["inputs"], line["outputs"], strict=True)
    ]


def records(**fields: Any) -> list[dict[str, Any]]:
    """The per-row records of one model call (`entry`'s fields), as `expand` reads them."""
    return expand(entry(**fields))


class PredictionLog:
    def __init__(self, lake: Lake | None, flush_seconds: float = 5.0) -> None:
        self.lake = lake
        self.flush_seconds = flush_seconds
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        """Lines (model calls) written so far."""

    @property
    def enabled(self) -> bool:
        """Whether anything is logged (no lake: nothing, so callers build no entry)."""
        return self.lake is not None

    def add(self, line: dict[str, Any]) -> None:
        """Buffer one `entry()`; serialized here, once, so a flush only joins bytes."""
        if self.lake is None:
            return
        data = to_json(line, fallback=str, inf_nan_mode="null")
        with self._lock:
            self._buffer.append(data)
            self._buffered += len(data) + 1
            full = self._buffered >= FLUSH_BYTES
        if full:
            self._wake.set()

    def flush(self) -> int:
        with self._lock:
            batch, self._buffer, self._buffered = self._buffer, [], 0
        if not batch or self.lake is None:
            return 0
        now = dt.datetime.now(dt.UTC)
        body = b"\n".join(batch) + b"\n"
        try:
            self.lake.write_bytes(
                body,
                "raw",
                "predictions",
                f"date={now:%Y-%m-%d}",
                f"{now:%H%M%S}-{uuid.uuid4().hex[:8]}.jsonl",
            )
        except Exception:
            log.exception("could not write the prediction log; will retry")
            with self._lock:
                self._buffer[:0] = batch
                self._buffered += len(body)
            return 0
        self.written += len(batch)
        return len(batch)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self._wake.wait(self.flush_seconds)
                self._wake.clear()
                self.flush()

        self._thread = threading.Thread(target=loop, name="dex-prediction-log", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
