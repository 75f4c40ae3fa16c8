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
bounded by the batch budgets below, not by the input's size.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from apps.pipelines import quality, transform
from apps.pipelines.audit import audit
from apps.pipelines.lineage import Lineage
from apps.pipelines.parse import Expect, Parsed, Raw, checksum, parse_many
from apps.pipelines.sources import RawResponse
from apps.shared import metrics
from apps.shared.lake import Lake
from apps.shared.schema import BRONZE, DAILY, FEATURES, QUARANTINE, SILVER
from contracts.lake import gold_features

STATE = ("_state", "weather", "state.json")
READ_FILES = 512
"""Raw responses fetched and parsed together (one columnar parse, concurrent GETs)."""
BRONZE_FLUSH_ROWS = 250_000
"""Parsed rows held before they are merged into their partitions, at the next raw date."""
BRONZE_MAX_ROWS = 1_000_000
"""Parsed rows held at most (bounds memory when one raw date holds more)."""
SILVER_BATCH_ROWS = 500_000
"""Rows validated together in one Great Expectations call (bounds memory, amortizes cost)."""
GOLD_BATCH_ROWS = 1_000_000
"""Silver rows aggregated together into daily partitions."""


EPOCH = dt.date(1970, 1, 1)
"""Day 0 of Arrow's date32."""


def _split(table: pa.Table, keys: np.ndarray) -> list[tuple[int, pa.Table]]:
    """Rows grouped by an integer key per row, in key order, each group keeping the rows'
    order: one stable sort (none if already in order) and zero-copy slices."""
    if not table.num_rows:
        return []
    if not bool((keys[1:] >= keys[:-1]).all()):
        order = np.argsort(keys, kind="stable")
        table, keys = table.take(pa.array(order)), keys[order]
    cuts = [0, *((keys[1:] != keys[:-1]).nonzero()[0] + 1).tolist(), len(keys)]
    return [(int(keys[a]), table.slice(a, b - a)) for a, b in itertools.pairwise(cuts)]


def _by_day(table: pa.Table, column: str = "ts") -> dict[str, pa.Table]:
    """Rows by UTC day of a timestamp or date column (YYYY-MM-DD -> rows)."""
    days = pc.cast(pc.cast(table[column], pa.date32()), pa.int32())
    return {
        (EPOCH + dt.timedelta(days=day)).isoformat(): rows
        for day, rows in _split(table, days.to_numpy(zero_copy_only=False).astype(np.int64))
    }


def _by_location(table: pa.Table) -> dict[str, pa.Table]:
    """Rows by location (name -> rows)."""
    codes = pc.dictionary_encode(table["location"]).combine_chunks()
    names = codes.dictionary.to_pylist()
    return {
        names[code]: rows
        for code, rows in _split(
            table, codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        )
    }


def _part(layer: str, day: str) -> tuple[str, ...]:
    """The one object of a layer's date partition."""
    return (layer, "weather", f"date={day}", "part-0.parquet")


def _rel(parts: tuple[str, ...]) -> str:
    return "/".join(parts)


class ReconciliationError(Exception):
    """Rows in != rows out + rows quarantined: something was lost or invented."""


class QualityGateError(Exception):
    """A table-level expectation failed: the step's own output is malformed."""


@dataclass
class Report:
    run_id: str
    lake: str
    started_at: str
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    quarantine: Counter[str] = field(default_factory=Counter)
    partitions: dict[str, list[str]] = field(default_factory=dict)
    reconciliation: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    freshness_hours: dict[str, float] = field(default_factory=dict)

    def layer(self, name: str) -> dict[str, Any]:
        return self.layers.setdefault(name, {})

    def add(self, layer: str, key: str, n: int) -> None:
        d = self.layer(layer)
        d[key] = d.get(key, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "lake": self.lake,
            "started_at": self.started_at,
            "finished_at": dt.datetime.now(dt.UTC).isoformat(),
            "layers": self.layers,
            "quarantine": {
                "rows": sum(self.quarantine.values()),
                "by_reason": dict(sorted(self.quarantine.items())),
            },
            "partitions": {k: sorted(set(v)) for k, v in self.partitions.items()},
            "reconciliation": {
                "checked": len(self.reconciliation),
                "mismatches": [r for r in self.reconciliation if not r["ok"]],
            },
            "refused": {"files": len(self.refused), "by_file": self.refused},
            "validation": self.validation,
            "profiles": self.profiles,
            "freshness_hours": self.freshness_hours,
        }


class WeatherPipeline:
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

    # -- ingest --------------------------------------------------------------------------------
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

    # -- bronze --------------------------------------------------------------------------------
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
                new_date = following is None or _raw_date(following[0]) != _raw_date(group[0])
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
                where = ("quarantine", "weather", "layer=bronze", f"date={_raw_date(rel)}")
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
        rows = parsed.bronze
        reason = "reconciliation mismatch: " + "; ".join(problems or ["fingerprints differ"])
        moved = pa.table(
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
        return BRONZE.empty_table(), pa.concat_tables([parsed.quarantine, moved])

    def _flush_bronze(
        self, buffer: list[pa.Table], buffered: list[str], state: dict[str, Any]
    ) -> set[str]:
        """Merge the buffered rows into their date partitions, then record the raw files as
        processed. A crash before the state is saved reprocesses those files: their rows
        replace the copies the crashed run merged, so nothing is duplicated."""
        days = _by_day(transform.sort_bronze(pa.concat_tables(buffer))) if buffer else {}
        buffer.clear()
        for chunk in self._merge_chunks(sorted(days)):  # existing rows held: a bounded number
            existing = [day for day, rows in chunk if rows is not None]
            merged = dict(
                zip(
                    existing,
                    self.lake.read_parquet_many([_rel(_part("bronze", d)) for d in existing]),
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
                writes.append((table, _part("bronze", day)))
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
                self.lake.parquet_rows(*_part("bronze", day))
                if self.lake.exists(*_part("bronze", day))
                else None
            )
            if chunk and held + (rows or 0) > BRONZE_MAX_ROWS:
                yield chunk
                chunk, held = [], 0
            chunk.append((day, rows))
            held += rows or 0
        if chunk:
            yield chunk

    # -- silver --------------------------------------------------------------------------------
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
            stored = self.lake.write_json(results, "_runs", self.run_id, "validation.json")
            failed = sum(r["failed_rows"] for r in results)
            self.report.validation = {
                "success": all(r["success"] for r in results),
                "batches": len(results),
                "rows_evaluated": sum(r["rows"] for r in results),
                "failed_rows": failed,
                "expectations": len(quality.EXPECTATIONS) + 2,
                "result": self.lake.uri(stored.split(self.lake.root.rstrip("/") + "/", 1)[-1])
                if self.lake.protocol != "file"
                else "file://" + stored,
            }
        if profile is not None:
            self.report.profiles["silver"] = profile

    def _batches(self, layer: str, days: list[str], limit: int) -> Iterable[list[str]]:
        """Consecutive dates whose rows in `layer` add up to about `limit`."""
        batch: list[str] = []
        rows = 0
        for day in days:
            batch.append(day)
            # the exact row count from the Parquet footer: batches hold the same rows whatever
            # the input's size, so memory does not grow with it
            rows += self.lake.parquet_rows(*_part(layer, day))
            if rows >= limit:
                yield batch
                batch, rows = [], 0
        if batch:
            yield batch

    def _silver_rows(self, days: list[str]) -> tuple[dict[str, int], pa.Table, pa.Table]:
        """A batch's bronze rows per day, its silver rows and its superseded rows."""
        tables = self.lake.read_parquet_many([_rel(_part("bronze", day)) for day in days])
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
        failed = sorted(checked.failures)
        bad[failed] = True
        failing = silver.filter(pa.array(bad))
        invalid = pa.table(
            {
                "layer": pa.array(["silver"] * failing.num_rows),
                "location": failing["location"],
                "ts": failing["ts"],
                "reason": pa.array([checked.failures[i] for i in failed], pa.string()),
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
        good = silver.filter(pa.array(~bad))
        good_days = _by_day(good)
        quarantine_days = _by_day(pa.concat_tables([superseded, invalid]))
        writes = []
        for day in days:
            part = good_days.get(day, SILVER.empty_table())
            q = quarantine_days.get(day, QUARANTINE.empty_table())
            self._reconcile(f"silver:date={day}", bronze_counts[day], part.num_rows, q.num_rows)
            writes.append((part, _part("silver", day)))
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

    # -- gold ----------------------------------------------------------------------------------
    def gold(self) -> None:
        state = self.state()
        pending = sorted(set(state["pending"]["gold"]))
        locations: set[str] = set(state["pending"]["features"])
        daily_profile: dict[str, Any] | None = None
        with self.lineage.task(
            "weather.gold", [self.lake.uri("silver", "weather")], [self.lake.uri("gold", "weather")]
        ):
            for batch in self._batches("silver", pending, GOLD_BATCH_ROWS):
                silver = self.lake.read_parquet_many(
                    [_rel(_part("silver", day)) for day in batch], columns=transform.DAILY_INPUTS
                )
                agg = transform.daily(pa.concat_tables(silver))
                by_date = _by_day(agg, "date")
                self.lake.write_parquet_many(
                    [
                        (
                            by_date.get(day, DAILY.empty_table()),
                            ("gold", "weather", "daily", f"date={day}", "part-0.parquet"),
                        )
                        for day in batch
                    ]
                )
                locations |= set(pc.unique(agg["location"]).to_pylist())
                daily_profile = metrics.merge(daily_profile, metrics.profile(agg))
                self.report.add("gold", "daily_rows", agg.num_rows)
            state["pending"]["gold"] = []
            state["pending"]["features"] = sorted(locations)
            self.save(state)
            if locations:
                daily = self.lake.read_parquet_many(
                    self.lake.glob("gold/weather/daily/*/part-0.parquet")
                )
                all_daily = pa.concat_tables([t.cast(DAILY) for t in daily])
                touched = all_daily.filter(
                    pc.is_in(all_daily["location"], pa.array(sorted(locations)))
                )
                feats = transform.features(touched)
                by_location = _by_location(feats)
                self.lake.write_parquet_many(
                    [
                        (
                            by_location.get(loc, FEATURES.empty_table()),
                            gold_features(loc),
                        )
                        for loc in sorted(locations)
                    ]
                )
                self.report.add("gold", "feature_rows", feats.num_rows)
                state["pending"]["features"] = []
                self.save(state)
        self.report.add("gold", "partitions_written", len(pending))
        self.report.partitions.setdefault("gold", []).extend(pending)
        self.report.partitions.setdefault("features", []).extend(sorted(locations))
        if daily_profile is not None:
            self.report.profiles["gold"] = daily_profile

    # -- freshness and metrics ---------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        now = self.now or dt.datetime.now(dt.UTC)
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

    # -- helpers -------------------------------------------------------------------------------
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


def _raw_date(rel: str) -> str:
    """The date a raw response was filed under (its first hour's)."""
    return rel.split("/date=")[1].split("/", maxsplit=1)[0]


def _read_groups(rels: list[str]) -> list[list[str]]:
    """Raw paths (sorted) in groups of at most READ_FILES, each within one raw date."""
    groups: list[list[str]] = []
    for _, same_date in itertools.groupby(rels, key=_raw_date):
        paths = list(same_date)
        groups += [paths[i : i + READ_FILES] for i in range(0, len(paths), READ_FILES)]
    return groups


def _digest(rel: str) -> str:
    return rel.rsplit("/", 1)[-1][: -len(".json")]


def _first_date(body: bytes) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(json.loads(body)["hourly"]["time"][0])[:10])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
