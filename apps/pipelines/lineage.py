"""OpenLineage run events for each task: START, then COMPLETE or FAIL, with the datasets read
and written. The transport is a file (JSON lines) or an HTTP endpoint (Marquez and friends),
from `DEX_LINEAGE_URL`: `file:///path/events.jsonl` or `http(s)://host[:port]`; unset, no
events are sent."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlparse

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport

PRODUCER = "https://github.com/dataenginex/dex/apps/pipelines"
NAMESPACE = "dex"


def client_for(url: str | None) -> OpenLineageClient | None:
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return OpenLineageClient(
            transport=FileTransport(FileConfig(log_file_path=parsed.path, append=True))
        )
    if parsed.scheme in ("http", "https"):
        return OpenLineageClient(transport=HttpTransport(HttpConfig(url=url)))
    raise ValueError(f"lineage URL {url!r}: use file:///path or http(s)://host")


def dataset_name(uri: str) -> tuple[str, str]:
    """(namespace, name) of a dataset in OpenLineage's naming: `s3://bucket` + `path`."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return "file", parsed.path
    return f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/")


class Lineage:
    def __init__(self, url: str | None, parent_run_id: str | None = None) -> None:
        self.client = client_for(url)
        self.parent_run_id = parent_run_id

    def _emit(
        self, state: RunState, run_id: str, job: str, inputs: Sequence[str], outputs: Sequence[str]
    ) -> None:
        if self.client is None:
            return
        self.client.emit(
            RunEvent(
                eventType=state,
                eventTime=dt.datetime.now(dt.UTC).isoformat(),
                run=Run(runId=run_id),
                job=Job(namespace=NAMESPACE, name=job),
                producer=PRODUCER,
                inputs=[InputDataset(*dataset_name(u)) for u in inputs],
                outputs=[OutputDataset(*dataset_name(u)) for u in outputs],
            )
        )

    @contextmanager
    def task(self, job: str, inputs: Sequence[str], outputs: Sequence[str]) -> Iterator[str]:
        run_id = str(uuid.uuid4())
        self._emit(RunState.START, run_id, job, inputs, outputs)
        try:
            yield run_id
        except BaseException:
            self._emit(RunState.FAIL, run_id, job, inputs, outputs)
            raise
        self._emit(RunState.COMPLETE, run_id, job, inputs, outputs)
