"""The prediction log: every prediction (inputs, output, model version, request id) appended
to the object store in batches, one JSON-lines object per flush, under
`raw/predictions/date=YYYY-MM-DD/`. A background thread flushes, so requests never wait on
storage; what is still buffered at shutdown is flushed by `close()`."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from typing import Any

from apps.pipelines.lake import Lake

log = logging.getLogger("dex.api.predlog")


class PredictionLog:
    def __init__(self, lake: Lake | None, flush_seconds: float = 5.0) -> None:
        self.lake = lake
        self.flush_seconds = flush_seconds
        self._buffer: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def add(self, records: list[dict[str, Any]]) -> None:
        if self.lake is None:
            return
        # Serialized here, a few microseconds per request, rather than all at once in the
        # flush, where thousands of records would hold the GIL and stall every request.
        lines = [json.dumps(r, default=str) for r in records]
        with self._lock:
            self._buffer.extend(lines)

    def flush(self) -> int:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch or self.lake is None:
            return 0
        now = dt.datetime.now(dt.UTC)
        body = ("\n".join(batch) + "\n").encode()
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
            return 0
        self.written += len(batch)
        return len(batch)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.flush_seconds):
                self.flush()

        self._thread = threading.Thread(target=loop, name="dex-prediction-log", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
