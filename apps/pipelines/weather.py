"""The weather pipeline: ingest -> bronze -> silver -> gold, step by step or all at once.

Each step reads its work from the lake's state (`_state/weather/state.json`) and leaves the
next step's work there, so Airflow can run the steps as separate tasks, a crashed run resumes
where it stopped, and a rerun of the same window changes nothing:

- **ingest** lands each response unchanged in `raw/`, keyed by its checksum (never rewritten).
- **bronze** types every hour of every new raw file (`bronze/weather/date=D/part-0.parquet`);
  what cannot be typed goes to `quarantine/` with its reason. Per raw file, rows in = rows out
  + quarantined, or the step fails.
- **silver** re-derives each touched date: latest ingestion wins per (location, hour), units
  normalized, Great Expectations gate; superseded and failing rows go to quarantine. Per date,
  bronze rows = silver rows + quarantined, exactly, or the run fails.
- **gold** re-derives the daily aggregates of touched dates and the features of touched
  locations (`gold/weather/daily/`, `gold/weather/features/`).

Every partition is one object, written atomically (see `lake.py`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from apps.pipelines import metrics, quality, transform
from apps.pipelines.lake import Lake
from apps.pipelines.lineage import Lineage
from apps.pipelines.parse import checksum, parse_response
from apps.pipelines.schema import BRONZE, DAILY, QUARANTINE
from apps.pipelines.sources import RawResponse

STATE = ("_state", "weather", "state.json")
BRONZE_FLUSH_ROWS = 250_000
"""Parsed rows held before they are merged into their partitions (bounds memory)."""
SILVER_BATCH_ROWS = 250_000
"""Rows validated together in one Great Expectations call (bounds memory, amortizes cost)."""


EPOCH = dt.date(1970, 1, 1)
"""Day 0 of Arrow's date32."""


def _split_by_day(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """A table's rows by UTC day of `ts`, as (YYYY-MM-DD, rows): zero-copy slices when the
    rows come ordered by time (a response always does), else one filter per day."""
    days = pc.cast(table["ts"], pa.date32())
    ordinals = days.to_numpy(zero_copy_only=False).astype("int64")
    if len(ordinals) and bool((ordinals[1:] >= ordinals[:-1]).all()):
        starts = [0, *(int(i) + 1 for i in (ordinals[1:] != ordinals[:-1]).nonzero()[0])]
        ends = [*starts[1:], len(ordinals)]
        return [
            ((EPOCH + dt.timedelta(days=int(ordinals[a]))).isoformat(), table.slice(a, b - a))
            for a, b in zip(starts, ends, strict=True)
        ]
    return [
        (day.isoformat(), table.filter(pc.equal(days, pa.scalar(day, pa.date32()))))
        for day in pc.unique(days).to_pylist()
    ]


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
                day = _first_date(resp.body) or resp.fetched_at.date()
                base = (
                    "raw",
                    "weather",
                    f"source={resp.source}",
                    f"date={day.isoformat()}",
                    f"location={resp.location.name}",
                )
                if self.lake.exists(*base, f"{digest}.json"):
                    skipped += 1  # landed before: raw is never rewritten
                    continue
                self.lake.write_bytes(resp.body, *base, f"{digest}.json")
                self.lake.write_json(
                    {
                        "fetched_at": resp.fetched_at.isoformat(),
                        "source": resp.source,
                        "source_uri": resp.source_uri,
                        "checksum": digest,
                        "location": resp.location.name,
                        "bytes": len(resp.body),
                    },
                    *base,
                    f"{digest}.meta.json",
                )
                landed += 1
        self.report.add("raw", "files_landed", landed)
        self.report.add("raw", "files_already_landed", skipped)

    # -- bronze --------------------------------------------------------------------------------
    def bronze(self) -> None:
        state = self.state()
        todo = [
            p
            for p in self.lake.glob("raw/weather/*/*/*/*.json")
            if not p.endswith(".meta.json") and _digest(p) not in state["processed"]
        ]
        buffer: dict[str, list[pa.Table]] = {}
        buffered: list[str] = []
        rows = 0
        written: set[str] = set()
        with self.lineage.task(
            "weather.bronze",
            [self.lake.uri("raw", "weather")],
            [self.lake.uri("bronze", "weather")],
        ):
            for rel in todo:
                parsed_rows = self._parse_raw(rel, buffer)
                buffered.append(rel)
                rows += parsed_rows
                if rows >= BRONZE_FLUSH_ROWS:  # memory stays flat however large the input
                    written |= self._flush_bronze(buffer, buffered, state)
                    rows = 0
            written |= self._flush_bronze(buffer, buffered, state)
        self.report.add("bronze", "partitions_written", len(written))
        self.report.partitions.setdefault("bronze", []).extend(written)

    def _parse_raw(self, rel: str, buffer: dict[str, list[pa.Table]]) -> int:
        digest = _digest(rel)
        location = rel.split("/location=")[1].split("/", maxsplit=1)[0]
        meta = self.lake.read_json(rel[:-5] + ".meta.json", default={}) or {}
        fetched = (
            dt.datetime.fromisoformat(meta["fetched_at"])
            if "fetched_at" in meta
            else dt.datetime.now(dt.UTC)
        )
        parsed = parse_response(self.lake.read_bytes(rel), location, fetched)
        out, quarantined = parsed.bronze.num_rows, parsed.quarantine.num_rows
        self._reconcile(f"bronze:{rel}", parsed.rows_in, out, quarantined)
        if quarantined:
            day = rel.split("/date=")[1].split("/", maxsplit=1)[0]
            self.lake.write_parquet(
                parsed.quarantine,
                "quarantine",
                "weather",
                "layer=bronze",
                f"date={day}",
                f"{digest}.parquet",
            )
            self._count_quarantine(parsed.quarantine)
        self.report.add("bronze", "rows_in", parsed.rows_in)
        if out:
            for day, part in _split_by_day(parsed.bronze):
                buffer.setdefault(day, []).append(part)
        return int(out)

    def _flush_bronze(
        self, buffer: dict[str, list[pa.Table]], buffered: list[str], state: dict[str, Any]
    ) -> set[str]:
        """Merge the buffered rows into their date partitions, then record the raw files as
        processed. A crash before the state is saved reprocesses those files; the merge keeps
        one copy of each (raw file, location, hour), so nothing is duplicated."""
        days = set(buffer)
        for day in sorted(days):
            self._merge_bronze(day, buffer.pop(day))
        for rel in buffered:
            state["processed"][_digest(rel)] = rel
        state["pending"]["silver"] += sorted(days)
        self.save(state)
        buffered.clear()
        return days

    def _merge_bronze(self, day: str, new: list[pa.Table]) -> None:
        parts = list(new)
        if self.lake.exists("bronze", "weather", f"date={day}", "part-0.parquet"):
            parts.insert(
                0, self.lake.read_parquet("bronze", "weather", f"date={day}", "part-0.parquet")
            )
        # one cast and one contiguous buffer: polars converts a table of many small chunks
        # (a few rows per raw file and day) far slower than one chunk
        merged = pa.concat_tables(parts, promote_options="permissive").cast(BRONZE)
        df = transform.frame(merged)
        df = df.unique(subset=["_checksum", "location", "ts"], keep="first", maintain_order=True)
        df = df.sort(["location", "ts", "_fetched_at", "_checksum"])
        self.lake.write_parquet(
            df.to_arrow().cast(BRONZE), "bronze", "weather", f"date={day}", "part-0.parquet"
        )
        self.report.add("bronze", "rows", df.height)

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
            for batch_days in self._silver_batches(pending):
                result, good = self._silver_batch(batch_days)
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

    def _silver_batches(self, days: list[str]) -> Iterable[list[str]]:
        """Consecutive dates whose bronze rows add up to about SILVER_BATCH_ROWS."""
        batch: list[str] = []
        rows = 0
        for day in days:
            batch.append(day)
            # the exact row count from the Parquet footer: batches hold the same rows whatever
            # the input's size, so memory does not grow with it
            rows += self.lake.parquet_rows("bronze", "weather", f"date={day}", "part-0.parquet")
            if rows >= SILVER_BATCH_ROWS:
                yield batch
                batch, rows = [], 0
        if batch:
            yield batch

    def _silver_batch(self, days: list[str]) -> tuple[dict[str, Any], pa.Table]:
        frames, bronze_counts = [], {}
        for day in days:
            bronze = self.lake.read_parquet("bronze", "weather", f"date={day}", "part-0.parquet")
            bronze_counts[day] = bronze.num_rows
            frames.append(bronze)
        bronze_all = pa.concat_tables(frames)
        kept, superseded = transform.deduplicate(bronze_all)
        silver = transform.normalize(kept)
        checked = quality.validate(silver)
        if checked.batch_failures:
            raise QualityGateError(
                f"silver batch {days[0]}..{days[-1]} failed {checked.batch_failures}"
            )
        bad = pa.array([i in checked.failures for i in range(silver.num_rows)])
        failing = silver.filter(bad)
        reasons = [checked.failures[i] for i in sorted(checked.failures)]
        invalid = pa.table(
            {
                "layer": pa.array(["silver"] * failing.num_rows),
                "location": failing["location"],
                "ts": failing["ts"],
                "reason": pa.array(reasons, pa.string()),
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
        good = silver.filter(pc.invert(bad))
        quarantine = pa.concat_tables([superseded, invalid])
        q_dates = pc.cast(quarantine["ts"], pa.date32())
        g_dates = pc.cast(good["ts"], pa.date32())
        for day in days:
            d = pa.scalar(dt.date.fromisoformat(day), pa.date32())
            part = good.filter(pc.equal(g_dates, d))
            q = quarantine.filter(pc.equal(q_dates, d))
            self._reconcile(f"silver:date={day}", bronze_counts[day], part.num_rows, q.num_rows)
            self.lake.write_parquet(part, "silver", "weather", f"date={day}", "part-0.parquet")
            if q.num_rows:
                self.lake.write_parquet(
                    q, "quarantine", "weather", "layer=silver", f"date={day}", "part-0.parquet"
                )
            else:
                self.lake.delete("quarantine", "weather", "layer=silver", f"date={day}")
            self._count_quarantine(q)
            self.report.add("silver", "rows", part.num_rows)
            self.report.add("silver", "rows_in", bronze_counts[day])
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
            for day in pending:
                silver = self.lake.read_parquet(
                    "silver", "weather", f"date={day}", "part-0.parquet"
                )
                agg = transform.daily(silver)
                self.lake.write_parquet(
                    agg, "gold", "weather", "daily", f"date={day}", "part-0.parquet"
                )
                locations |= set(agg["location"].to_pylist())
                daily_profile = metrics.merge(daily_profile, metrics.profile(agg))
                self.report.add("gold", "daily_rows", agg.num_rows)
            state["pending"]["gold"] = []
            state["pending"]["features"] = sorted(locations)
            self.save(state)
            if locations:
                everything = [
                    self.lake.read_parquet(p)
                    for p in self.lake.glob("gold/weather/daily/*/part-0.parquet")
                ]
                all_daily = pa.concat_tables([t.cast(DAILY) for t in everything])
                for loc in sorted(locations):
                    rows = all_daily.filter(pc.equal(all_daily["location"], loc))
                    feats = transform.features(rows)
                    self.lake.write_parquet(
                        feats, "gold", "weather", "features", f"location={loc}", "part-0.parquet"
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
        for rel in self.lake.glob("gold/weather/features/*/part-0.parquet"):
            loc = rel.split("location=")[1].split("/")[0]
            dates = self.lake.read_parquet(rel)["date"]
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


def _digest(rel: str) -> str:
    return rel.rsplit("/", 1)[-1][: -len(".json")]


def _first_date(body: bytes) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(json.loads(body)["hourly"]["time"][0])[:10])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
