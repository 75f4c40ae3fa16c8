"""**bronze**: each new raw file judged as a whole (`parse.py`: units, time zone, coordinates
against the location's, arrays, the window recorded when it landed), then every hour typed
(`bronze/weather/date=D/part-0.parquet`); what cannot be typed goes to `quarantine/` with its
reason, and a file that cannot be trusted is refused whole (its hours quarantined, the file
named in the report), never stopping the others. Per raw file, rows in = rows out +
quarantined, or the step fails; and the file's own claims are checked against what would land
(`audit.py`): a mismatch is reported and those rows are quarantined. Raw files are fetched and
parsed hundreds at a time (one columnar parse, see `parse.parse_many`), held up to a row
budget, sorted once and cut into their days; a day that already has an object is read back and
merged.

The row budgets below are read when the step runs: tests and benchmarks turn them here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from apps.pipelines import transform
from apps.pipelines.audit import audit
from apps.pipelines.parse import Expect, Parsed, Raw, parse_many
from apps.pipelines.steps.base import Step
from apps.pipelines.steps.partitions import by_day, partition, rel_path
from apps.shared.schema import BRONZE, QUARANTINE

READ_FILES = 512
"""Raw responses fetched and parsed together (one columnar parse, concurrent GETs)."""
BRONZE_FLUSH_ROWS = 250_000
"""Parsed rows held before they are merged into their partitions, at the next raw date."""
BRONZE_MAX_ROWS = 1_000_000
"""Parsed rows held at most (bounds memory when one raw date holds more)."""


class Bronze(Step):
    def bronze(self) -> None:
        state = self.state()
        todo = [
            p
            for p in self.lake.glob("raw/weather/*/*/*/*.json")
            if not p.endswith(".meta.json") and p not in state["processed"]
        ]
        buffer: list[pa.Table] = []
        buffered: list[str] = []
        rows = 0
        written: set[str] = set()
        with self.lineage.task(
            "weather.bronze",
            [self.lake.uri("raw", "weather")],
            [self.lake.uri("bronze", "weather")],
        ):
            groups = _read_groups(todo)
            for group, following in itertools.zip_longest(groups, groups[1:]):
                rows += self._parse_raw(group, buffer)
                buffered += group
                # Flush between two raw dates, where the days written are usually complete:
                # a day flushed twice is read back and merged. Memory stays flat however large
                # the input: a date with more rows than BRONZE_MAX_ROWS is flushed in parts.
                new_date = following is None or raw_date(following[0]) != raw_date(group[0])
                if (rows >= BRONZE_FLUSH_ROWS and new_date) or rows >= BRONZE_MAX_ROWS:
                    written |= self._flush_bronze(buffer, buffered, state)
                    rows = 0
            written |= self._flush_bronze(buffer, buffered, state)
        self.report.add("bronze", "partitions_written", len(written))
        self.report.partitions.setdefault("bronze", []).extend(written)

    def _parse_raw(self, rels: list[str], buffer: list[pa.Table]) -> int:
        """Parse raw responses into `buffer`; quarantine what cannot be typed, refuse what
        cannot be trusted, and reconcile each file's claims with what lands from it. Returns
        the rows added."""
        bodies = self.lake.read_many(rels)
        metas = self.lake.read_many_or_none([rel[: -len(".json")] + ".meta.json" for rel in rels])
        raws = [
            Raw(
                body,
                rel.split("/location=")[1].split("/", maxsplit=1)[0],
                *_meta(meta),
            )
            for rel, body, meta in zip(rels, bodies, metas, strict=True)
        ]
        quarantine: list[tuple[pa.Table, tuple[str, ...]]] = []
        added = 0
        for rel, raw, parsed in zip(rels, raws, parse_many(raws), strict=True):
            bronze, quarantined_rows = self._audit(rel, raw, parsed)
            out, quarantined = bronze.num_rows, quarantined_rows.num_rows
            self._reconcile(f"bronze:{rel}", parsed.rows_in, out, quarantined)
            self.report.add("bronze", "rows_in", parsed.rows_in)
            if parsed.refused is not None:
                self.report.refused.append({"file": rel, "reason": parsed.refused})
                self.report.add("bronze", "files_refused", 1)
            if quarantined:
                where = ("quarantine", "weather", "layer=bronze", f"date={raw_date(rel)}")
                quarantine.append((quarantined_rows, (*where, f"{_digest(rel)}.parquet")))
                self._count_quarantine(quarantined_rows)
            if out:
                buffer.append(bronze)
                added += out
        self.lake.write_parquet_many(quarantine)
        return added

    def _audit(self, rel: str, raw: Raw, parsed: Parsed) -> tuple[pa.Table, pa.Table]:
        """Reconcile what the file claims with what would land from it (`audit.audit`). On a
        mismatch the record says what differs and the file's rows go to quarantine instead of
        bronze: a parser fault is seen, and never lands."""
        problems, claimed, landed = audit(raw.body, parsed.bronze, raw.expect)
        self.report.reconciliation.append(
            {
                "partition": f"file:{rel}",
                "location": raw.location,
                "hours_claimed": parsed.rows_in,
                "rows_out": 0 if problems else parsed.bronze.num_rows,
                "quarantined": parsed.quarantine.num_rows
                + (parsed.bronze.num_rows if problems else 0),
                "fingerprint_claimed": claimed,
                "fingerprint_landed": landed,
                "problems": problems,
                "ok": not problems and claimed == landed,
            }
        )
        if not problems and claimed == landed:
            return parsed.bronze, parsed.quarantine
        reason = "reconciliation mismatch: " + "; ".join(problems or ["fingerprints differ"])
        moved = _quarantined_whole(parsed.bronze, reason)
        return BRONZE.empty_table(), pa.concat_tables([parsed.quarantine, moved])

    def _flush_bronze(
        self, buffer: list[pa.Table], buffered: list[str], state: dict[str, Any]
    ) -> set[str]:
        """Merge the buffered rows into their date partitions, then record the raw files as
        processed. A crash before the state is saved reprocesses those files: their rows
        replace the copies the crashed run merged, so nothing is duplicated."""
        days = by_day(transform.sort_bronze(pa.concat_tables(buffer))) if buffer else {}
        buffer.clear()
        for chunk in self._merge_chunks(sorted(days)):  # existing rows held: a bounded number
            existing = [day for day, rows in chunk if rows is not None]
            merged = dict(
                zip(
                    existing,
                    self.lake.read_parquet_many(
                        [rel_path(partition("bronze", d)) for d in existing]
                    ),
                    strict=True,
                )
            )
            writes = []
            for day, _ in chunk:
                parts = [days[day]]
                if day in merged:
                    parts.insert(0, _without_files(merged.pop(day), days[day]))
                table = pa.concat_tables(parts, promote_options="permissive")
                if len(parts) > 1:
                    table = transform.sort_bronze(table)
                writes.append((table, partition("bronze", day)))
                self.report.add("bronze", "rows", table.num_rows)
            self.lake.write_parquet_many(writes)
        for rel in buffered:
            state["processed"][rel] = _digest(rel)
        state["pending"]["silver"] += sorted(days)
        self.save(state)
        buffered.clear()
        return set(days)

    def _merge_chunks(self, days: list[str]) -> Iterable[list[tuple[str, int | None]]]:
        """Days in chunks whose existing bronze rows (from the Parquet footers; None for a day
        with no object yet) add up to at most about BRONZE_MAX_ROWS: late data touching every
        day of a large lake is merged a few days at a time, not all at once."""
        chunk: list[tuple[str, int | None]] = []
        held = 0
        for day in days:
            rows = (
                self.lake.parquet_rows(*partition("bronze", day))
                if self.lake.exists(*partition("bronze", day))
                else None
            )
            if chunk and held + (rows or 0) > BRONZE_MAX_ROWS:
                yield chunk
                chunk, held = [], 0
            chunk.append((day, rows))
            held += rows or 0
        if chunk:
            yield chunk


def _quarantined_whole(rows: pa.Table, reason: str) -> pa.Table:
    """Bronze rows as quarantine records, all with one reason."""
    return pa.table(
        {
            "layer": pa.array(["bronze"] * rows.num_rows, pa.string()),
            "location": rows["location"],
            "ts": rows["ts"],
            "reason": pa.array([reason[:500]] * rows.num_rows, pa.string()),
            "record": pa.array([""] * rows.num_rows, pa.string()),
            "_checksum": rows["_checksum"],
        },
        schema=QUARANTINE,
    )


def _meta(meta: bytes | None) -> tuple[dt.datetime, Expect]:
    """A raw response's fetch time and what was asked for (coordinates, window), from its
    metadata. One landed without metadata (by hand, or by an older version) counts as fetched
    at the start of time, so it never wins over a response whose fetch time is known, and is
    judged on nothing it does not say (an older version recorded no coordinates or window)."""
    fetched = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    if meta is None:
        return fetched, Expect()
    try:
        doc = json.loads(meta)
        assert isinstance(doc, dict)
    except (ValueError, AssertionError):
        return fetched, Expect()
    with contextlib.suppress(ValueError, KeyError, TypeError):
        fetched = dt.datetime.fromisoformat(doc["fetched_at"])

    def day(key: str) -> dt.date | None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return dt.date.fromisoformat(doc[key])
        return None

    def number(key: str) -> float | None:
        value = doc.get(key)
        return float(value) if isinstance(value, int | float) else None

    return fetched, Expect(
        number("latitude"), number("longitude"), day("window_start"), day("window_end")
    )


def _without_files(existing: pa.Table, new: pa.Table) -> pa.Table:
    """The rows of a partition that did not come from the raw files in `new`: those are being
    merged again (after a crash), and their new rows replace the old ones."""
    again = transform.frame(new.select(["location", "_checksum"])).unique()
    kept = transform.frame(existing).join(again, on=["location", "_checksum"], how="anti")
    return kept.to_arrow().cast(existing.schema)


def raw_date(rel: str) -> str:
    """The date a raw response was filed under (its first hour's)."""
    return rel.split("/date=")[1].split("/", maxsplit=1)[0]


def _read_groups(rels: list[str]) -> list[list[str]]:
    """Raw paths (sorted) in groups of at most READ_FILES, each within one raw date."""
    groups: list[list[str]] = []
    for _, same_date in itertools.groupby(rels, key=raw_date):
        paths = list(same_date)
        groups += [paths[i : i + READ_FILES] for i in range(0, len(paths), READ_FILES)]
    return groups


def _digest(rel: str) -> str:
    return rel.rsplit("/", 1)[-1][: -len(".json")]
