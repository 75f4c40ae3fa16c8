"""Sources of raw weather responses, in the Open-Meteo API's JSON shape.

- `OpenMeteoSource`: the live HTTP API through httpx, with timeouts, retries with exponential
  backoff on transport errors and 5xx, `Retry-After` honoured on 429, and a floor on the
  interval between requests so a run stays inside the API's rate limit.
- `FileSource`: a folder or bucket of such JSON files laid out as `{location}/*.json`, for
  offline runs and for the bundled sample data.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import httpx

from apps.pipelines.locations import Location
from apps.shared.lake import Lake, open_lake

HOURLY = ("temperature_2m", "relative_humidity_2m", "precipitation", "wind_speed_10m")


@dataclass(frozen=True)
class RawResponse:
    location: Location
    body: bytes
    """The response exactly as received."""
    source: str
    source_uri: str
    fetched_at: dt.datetime
    """When the response was fetched (from the API) or delivered (a file's modification time):
    the latest wins when two deliveries hold the same hour."""
    start: dt.date | None = None
    """The first day of the window asked for (UTC); None: open."""
    end: dt.date | None = None
    """The last day of the window asked for (UTC); None: open."""


class SourceError(Exception):
    """A source that cannot be read at all (not one bad record: those are quarantined)."""


class OpenMeteoSource:
    """Hourly observations from the Open-Meteo archive API, one request per location and
    month of the window."""

    name = "open-meteo"

    def __init__(
        self,
        base_url: str = "https://archive-api.open-meteo.com/v1/archive",
        timeout_s: float = 10.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        min_interval_s: float = 0.2,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url
        self.retries = retries
        self.backoff_s = backoff_s
        self.min_interval_s = min_interval_s
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0))
        self.sleep = sleep
        self._last = 0.0

    def _get(self, params: dict[str, str]) -> httpx.Response:
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            wait = self.min_interval_s - (time.monotonic() - self._last)
            if wait > 0:
                self.sleep(wait)
            self._last = time.monotonic()
            try:
                response = self.client.get(self.base_url, params=params)
            except httpx.TransportError as exc:  # timeouts, refused connections, resets
                last_error = exc
                self.sleep(self.backoff_s * 2**attempt)
                continue
            if response.status_code == 429:
                retry_after = response.headers.get("Retry-After", "")
                delay = float(retry_after) if retry_after.isdigit() else self.backoff_s * 2**attempt
                last_error = SourceError(f"rate limited (429), retry after {delay:.1f} s")
                self.sleep(delay)
                continue
            if response.status_code >= 500:
                last_error = SourceError(f"server error {response.status_code}")
                self.sleep(self.backoff_s * 2**attempt)
                continue
            if response.status_code >= 400:
                raise SourceError(
                    f"{self.base_url} answered {response.status_code}: {response.text[:200]}"
                )
            return response
        raise SourceError(
            f"{self.base_url}: gave up after {self.retries + 1} attempts ({last_error})"
        )

    def fetch(
        self, locations: Sequence[Location], start: dt.date, end: dt.date
    ) -> Iterator[RawResponse]:
        for loc in locations:
            for first, last in month_windows(start, end):
                params = {
                    "latitude": f"{loc.latitude:.4f}",
                    "longitude": f"{loc.longitude:.4f}",
                    "start_date": first.isoformat(),
                    "end_date": last.isoformat(),
                    "hourly": ",".join(HOURLY),
                    "timezone": "UTC",
                }
                response = self._get(params)
                yield RawResponse(
                    loc,
                    response.content,
                    self.name,
                    str(response.url),
                    dt.datetime.now(dt.UTC),
                    first,
                    last,
                )


def month_windows(start: dt.date, end: dt.date) -> Iterator[tuple[dt.date, dt.date]]:
    """[start, end] cut at month boundaries."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    cur = start
    while cur <= end:
        nxt = (cur.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        yield cur, min(end, nxt - dt.timedelta(days=1))
        cur = nxt


class FileSource:
    """Responses stored as `{location}/*.json` under a folder or bucket URL. A file's fetch
    time is its modification time in the store (when it was delivered), so a re-delivery wins
    over an older file whatever order the files are listed in."""

    name = "file"
    LAYOUT = "{location}/*.json (one folder per location, e.g. berlin/2024-03.json)"

    def __init__(self, url: str) -> None:
        self.url = url
        self.lake: Lake = open_lake(url, layered=False)
        if not self.lake.exists():
            raise SourceError(f"source {url!r} does not exist")

    def fetch(
        self,
        locations: Sequence[Location],
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> Iterator[RawResponse]:
        """Every response of `locations` that overlaps [start, end]. Raises SourceError when
        there is none, saying what the source holds and the layout expected."""
        listed = dt.datetime.now(dt.UTC)  # only for a store that keeps no modification time
        found = 0
        for loc in locations:
            for rel in self.lake.glob(f"{loc.name}/*.json"):
                body = self.lake.read_bytes(rel)
                if start or end:
                    span = _time_span(body)
                    if span is not None and (
                        (end and span[0] > end) or (start and span[1] < start)
                    ):
                        continue
                found += 1
                yield RawResponse(
                    loc,
                    body,
                    self.name,
                    self.lake.uri(rel),
                    self._modified(rel) or listed,
                    start,
                    end,
                )
        if not found:
            raise SourceError(self._nothing(locations, start, end))

    def _modified(self, rel: str) -> dt.datetime | None:
        """When the store last wrote the file (local: mtime; S3: LastModified; GCS: updated)."""
        try:
            info = self.lake.fs.info(self.lake.path(rel))
        except OSError:
            return None
        for key in ("mtime", "LastModified", "updated", "last_modified"):
            value = info.get(key)
            if isinstance(value, int | float):
                return dt.datetime.fromtimestamp(value, dt.UTC)
            if isinstance(value, dt.datetime):
                return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            if isinstance(value, str):
                try:
                    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    continue
        return None

    def _nothing(
        self, locations: Sequence[Location], start: dt.date | None, end: dt.date | None
    ) -> str:
        files = sorted(
            {rel for depth in ("", "*/", "*/*/") for rel in self.lake.glob(f"{depth}*.json")}
        )
        names = ", ".join(loc.name for loc in locations)
        window = f" between {start or '...'} and {end or '...'}" if start or end else ""
        seen = f"found {len(files)} .json file(s)"
        if files:
            seen += f" (e.g. {', '.join(files[:3])})"
        return (
            f"source {self.url!r} holds no responses for {names}{window}: {seen}; "
            f"the expected layout is {self.LAYOUT}"
        )


def _time_span(body: bytes) -> tuple[dt.date, dt.date] | None:
    """First and last date of a response, or None when it cannot be told (the whole file is
    then taken, and its problems quarantined downstream)."""
    try:
        times = json.loads(body)["hourly"]["time"]
        return dt.date.fromisoformat(str(times[0])[:10]), dt.date.fromisoformat(str(times[-1])[:10])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
