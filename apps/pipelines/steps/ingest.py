"""**ingest**: each response lands unchanged in `raw/`, keyed by its checksum and the window
asked for (never rewritten), its metadata (fetch time, source, coordinates, window) beside it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

from apps.pipelines.parse import checksum
from apps.pipelines.sources import RawResponse
from apps.pipelines.steps.base import Step


class Ingest(Step):
    def ingest(self, responses: Iterable[RawResponse]) -> None:
        landed = skipped = 0
        with self.lineage.task("weather.ingest", [], [self.lake.uri("raw", "weather")]):
            for resp in responses:
                digest = checksum(resp.body)
                # The window asked for is part of the name: the same body asked for with
                # another window lands again (and its hours in that window with it); the same
                # body and window land once.
                name = (
                    digest
                    if resp.start is None and resp.end is None
                    else f"{digest}.{resp.start or ''}_{resp.end or ''}"
                )
                day = _first_date(resp.body) or resp.fetched_at.date()
                base = (
                    "raw",
                    "weather",
                    f"source={resp.source}",
                    f"date={day.isoformat()}",
                    f"location={resp.location.name}",
                )
                if self.lake.exists(*base, f"{name}.json"):
                    skipped += 1  # landed before: raw is never rewritten
                    continue
                # the metadata first: a response in raw always has its fetch time beside it
                self.lake.write_json(
                    {
                        "fetched_at": resp.fetched_at.isoformat(),
                        "source": resp.source,
                        "source_uri": resp.source_uri,
                        "checksum": digest,
                        "location": resp.location.name,
                        "latitude": resp.location.latitude,
                        "longitude": resp.location.longitude,
                        "window_start": resp.start.isoformat() if resp.start else None,
                        "window_end": resp.end.isoformat() if resp.end else None,
                        "bytes": len(resp.body),
                    },
                    *base,
                    f"{name}.meta.json",
                )
                self.lake.write_bytes(resp.body, *base, f"{name}.json")
                landed += 1
        self.report.add("raw", "files_landed", landed)
        self.report.add("raw", "files_already_landed", skipped)


def _first_date(body: bytes) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(json.loads(body)["hourly"]["time"][0])[:10])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
