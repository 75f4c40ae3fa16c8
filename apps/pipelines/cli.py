"""`python -m apps.pipelines`: run the weather pipeline, whole or one step at a time.

    python -m apps.pipelines run --source file:///data/weather --lake file:///lake
    python -m apps.pipelines step bronze --lake s3://bucket/lake

Airflow's tasks call `step`; `dex pipelines run weather` calls `run`. Settings may also come
from the environment (DEX_LAKE_URL, DEX_SOURCE_URL, DEX_LINEAGE_URL, DEX_S3_ENDPOINT_URL).
Exit codes: 0 success, 1 the run failed (reconciliation, quality gate, a source that cannot be
read or holds nothing for the locations and dates asked for), 2 bad input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from typing import Any

from apps.shared.lake import LakeError, open_lake

__all__ = [
    "LakeError",
    "QualityGateError",
    "ReconciliationError",
    "SourceError",
    "UnitError",
    "main",
    "run",
]
from apps.pipelines.lineage import Lineage
from apps.pipelines.locations import parse_locations
from apps.pipelines.sources import FileSource, OpenMeteoSource, SourceError
from apps.pipelines.transform import UnitError
from apps.pipelines.weather import QualityGateError, ReconciliationError, WeatherPipeline

STEPS = ("ingest", "bronze", "silver", "gold", "finish")


def build_source(url: str) -> FileSource | OpenMeteoSource:
    if url.startswith(("http://", "https://")):
        return OpenMeteoSource(base_url=url)
    return FileSource(url)


def run(
    source_url: str,
    lake_url: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    locations: str | None = None,
    lineage_url: str | None = None,
    steps: tuple[str, ...] = STEPS,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Run the given steps; returns the report. Raises on failure (see `main` for codes)."""
    lake = open_lake(lake_url)
    pipeline = WeatherPipeline(lake, Lineage(lineage_url), run_id=run_id)
    locs = parse_locations(locations)
    if "ingest" in steps:
        source = build_source(source_url)
        if isinstance(source, OpenMeteoSource):
            today = dt.datetime.now(dt.UTC).date()
            first = start or _watermark_start(pipeline.state(), today)
            last = end or today - dt.timedelta(days=1)
            pipeline.ingest(source.fetch(locs, first, last))
        else:
            pipeline.ingest(source.fetch(locs, start, end))
    if "bronze" in steps:
        pipeline.bronze()
    if "silver" in steps:
        pipeline.silver()
    if "gold" in steps:
        pipeline.gold()
    return pipeline.finish() if "finish" in steps else pipeline.report.as_dict()


def _watermark_start(state: dict[str, Any], today: dt.date) -> dt.date:
    marks = [dt.datetime.fromisoformat(v).date() for v in state.get("watermarks", {}).values()]
    return min(marks) + dt.timedelta(days=1) if marks else today - dt.timedelta(days=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apps.pipelines", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "step"):
        p = sub.add_parser(name)
        if name == "step":
            p.add_argument("step", choices=STEPS)
        p.add_argument("--source", default=os.environ.get("DEX_SOURCE_URL"))
        p.add_argument("--lake", default=os.environ.get("DEX_LAKE_URL"))
        p.add_argument("--start", type=dt.date.fromisoformat)
        p.add_argument("--end", type=dt.date.fromisoformat)
        p.add_argument("--locations", default=os.environ.get("DEX_LOCATIONS"))
        p.add_argument("--lineage", default=os.environ.get("DEX_LINEAGE_URL"))
        p.add_argument("--run-id")
        p.add_argument("--report")
    opts = parser.parse_args(argv)
    if not opts.lake:
        parser.error("--lake (or DEX_LAKE_URL) is required")
    steps = STEPS if opts.command == "run" else (opts.step,)
    if "ingest" in steps and not opts.source:
        parser.error("--source (or DEX_SOURCE_URL) is required to ingest")
    try:
        report = run(
            opts.source or "",
            opts.lake,
            opts.start,
            opts.end,
            opts.locations,
            opts.lineage,
            steps,
            opts.run_id,
        )
    except (SourceError, ReconciliationError, QualityGateError, UnitError) as exc:
        print(f"error: the run failed: {exc}", file=sys.stderr)
        return 1
    except (LakeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2, sort_keys=True, default=str)
    if opts.report:
        with open(opts.report, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0
