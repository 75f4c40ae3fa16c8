"""Benchmark: the weather pipeline from raw to gold, next to pyarrow-alone floors, at 1M and
10M rows.

Input: one Open-Meteo-shaped response per location and month (8,760 hours a location),
landed in a `file://` lake by the ingest step (not timed). Each measurement runs in a fresh
process, and peak memory is that process's high-water mark (ru_maxrss):

- **pipeline**: bronze + silver (Great Expectations gate included) + gold, timed after the
  imports and the suite's set-up, which are printed apart as `startup` (a process pays them
  once, whatever the input's size).
- **floor (write)**: the same rows, already typed in memory (read from raw outside the timer),
  written to one Parquet object with the lake's writer settings by pyarrow alone.
- **floor (raw)**: the same raw files read, parsed by pyarrow's JSON reader (all at once, on
  every core) and written to one Parquet object: what pyarrow alone needs to get from raw to
  Parquet, the same start and end as the pipeline's first layer.
- **two layers**: the typed rows written twice (as bronze, as silver), one object per date,
  by pyarrow alone on as many threads as the pipeline writes with: the writes the layout in
  the issue requires.
- **gate**: the Great Expectations suite alone over the same rows, in the pipeline's batches.

`bound` is the rate of the required work alone: parsing raw (the raw floor minus its one
write) + the two layers + the gate, each timed on its own and summed, with no merging,
deduplication, normalization, reconciliation, quarantine, gold or bookkeeping. It is printed
as a ratio to the raw floor; it assumes the parts do not overlap (the steps are separate
tasks, and the suite runs in-process). Also printed: the pipeline's ratio to each floor,
seconds per step, and peak memory.

    .venv/bin/python benchmarks/pipeline.py [--sizes 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SETUP = r"""
import datetime as dt, json, sys
from pathlib import Path
import numpy as np
from apps.shared.lake import open_lake
from apps.pipelines.locations import Location
from apps.pipelines.sources import FileSource
from apps.pipelines.weather import WeatherPipeline

rows, work = int(sys.argv[1]), Path(sys.argv[2])
n_loc = max(1, rows // 8760)
rng = np.random.default_rng(1)
source = work / "source"
locs = []
for i in range(n_loc):
    loc = Location(f"loc{i}", float(rng.uniform(-60, 60)), float(rng.uniform(-170, 170)))
    locs.append(loc)
    (source / loc.name).mkdir(parents=True)
    for month in range(12):
        start = dt.datetime(2023, month + 1, 1)
        end = dt.datetime(2023 + (month == 11), (month + 1) % 12 + 1, 1)
        n = int((end - start).total_seconds() // 3600)
        times = [(start + dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M") for h in range(n)]
        body = {"latitude": loc.latitude, "longitude": loc.longitude, "utc_offset_seconds": 0,
                "hourly_units": {"temperature_2m": "°C", "precipitation": "mm",
                                 "wind_speed_10m": "km/h"},
                "hourly": {"time": times,
                           "temperature_2m": np.round(rng.normal(12, 8, n), 1).tolist(),
                           "relative_humidity_2m": np.round(rng.uniform(20, 100, n)).tolist(),
                           "precipitation": np.where(rng.random(n) > 0.1, 0.0, 1.2).tolist(),
                           "wind_speed_10m": np.round(rng.uniform(0, 40, n), 1).tolist()}}
        (source / loc.name / f"{month:02d}.json").write_text(json.dumps(body))
lake = open_lake(f"file://{work}/lake")
WeatherPipeline(lake).ingest(FileSource(f"file://{source}").fetch(locs))
"""

PIPELINE = r"""
import json, resource, sys, time
t = time.perf_counter()
from apps.pipelines import quality
from apps.shared.lake import open_lake
from apps.pipelines.weather import WeatherPipeline
quality._suite()  # built on first use: built here, outside the timed steps
startup = time.perf_counter() - t
p = WeatherPipeline(open_lake(f"file://{sys.argv[1]}/lake"))
steps = {}
for step in (p.bronze, p.silver, p.gold):
    t = time.perf_counter()
    step()
    steps[step.__name__] = time.perf_counter() - t
r = p.report.as_dict()
print(json.dumps({"rows": r["layers"]["bronze"]["rows_in"], "seconds": sum(steps.values()),
                  "steps": steps, "startup": startup,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

RAW = r"""
import glob, io, json, resource, sys, time
import numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.json as pj, pyarrow.parquet as pq

HOURLY = ["temperature_2m", "relative_humidity_2m", "precipitation", "wind_speed_10m"]
SCHEMA = pa.schema([("latitude", pa.float64()), ("longitude", pa.float64()), ("hourly", pa.struct(
    [("time", pa.list_(pa.string()))] + [(f, pa.list_(pa.float64())) for f in HOURLY]))])
WRITER = dict(compression="zstd", use_dictionary=True, write_statistics=True, store_schema=True)


def typed(work):
    files = sorted(f for f in glob.glob(f"{work}/lake/raw/weather/*/*/*/*.json")
                   if not f.endswith(".meta.json"))
    bodies, names = [], []
    for f in files:
        with open(f, "rb") as fh:
            bodies.append(fh.read())
        names.append(f.split("location=")[1].split("/")[0])
    doc = pj.read_json(io.BytesIO(b"\n".join(bodies)),
                       parse_options=pj.ParseOptions(explicit_schema=SCHEMA)).combine_chunks()
    hourly = doc.column("hourly").chunk(0)
    owner = pa.array(np.repeat(np.arange(len(names)),
                               pc.list_value_length(pc.struct_field(hourly, "time")).to_numpy()))
    return pa.table({
        "location": pa.array(names).take(owner),
        "latitude": doc.column("latitude").take(owner),
        "longitude": doc.column("longitude").take(owner),
        "ts": pc.strptime(pc.list_flatten(pc.struct_field(hourly, "time")),
                          format="%Y-%m-%dT%H:%M", unit="us").cast(pa.timestamp("us", tz="UTC")),
        **{f: pc.list_flatten(pc.struct_field(hourly, f)) for f in HOURLY},
    })


def write(table):
    buf = io.BytesIO()
    pq.write_table(table, buf, **WRITER)
    return buf.getbuffer().nbytes


mode, work = sys.argv[1], sys.argv[2]
if mode == "raw":
    t = time.perf_counter()
    table = typed(work)
    write(table)
else:
    table = typed(work).combine_chunks()
    t = time.perf_counter()
    if mode == "write":
        write(table)
    elif mode == "gate":  # the Great Expectations suite alone, over silver-shaped rows
        from apps.pipelines import quality
        from apps.shared.schema import SILVER
        from apps.pipelines.weather import SILVER_BATCH_ROWS
        table = table.rename_columns({"temperature_2m": "temperature_c",
                                      "relative_humidity_2m": "relative_humidity_pct",
                                      "precipitation": "precipitation_mm",
                                      "wind_speed_10m": "wind_speed_ms"})
        table = table.append_column("_checksum", pc.binary_join_element_wise(
            table["location"], "0" * 60, "")).append_column(
            "_fetched_at", pa.array([0] * table.num_rows, pa.timestamp("us", tz="UTC")))
        table = table.select(SILVER.names).cast(SILVER)
        quality._suite()
        t = time.perf_counter()
        for start in range(0, table.num_rows, SILVER_BATCH_ROWS):
            assert quality.validate(table.slice(start, SILVER_BATCH_ROWS)).success
    else:  # two layers: bronze-shaped and silver-shaped rows, one object per date each
        days = pc.cast(table["ts"], pa.date32()).to_numpy(zero_copy_only=False)
        order = np.argsort(days, kind="stable")
        table, days = table.take(pa.array(order)), days[order]
        cuts = [0, *(np.flatnonzero(days[1:] != days[:-1]) + 1).tolist(), len(days)]
        from concurrent.futures import ThreadPoolExecutor
        from apps.shared.lake import WORKERS
        parts = [table.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]
        with ThreadPoolExecutor(WORKERS) as pool:  # as many writers as the pipeline's
            list(pool.map(write, parts * 2))  # bronze, then silver
elapsed = time.perf_counter() - t
print(json.dumps({"rows": table.num_rows, "seconds": elapsed,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if proc.returncode:
        raise SystemExit(f"benchmark step failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    opts = parser.parse_args()
    head = (
        f"{'rows':>11} {'pipeline/s':>11} {'floor write/s':>14} {'floor raw/s':>12} "
        f"{'two layers/s':>13} {'gate/s':>10} {'vs write':>9} {'vs raw':>7} {'bound':>6} "
        f"{'peak MiB':>9} "
        f"{'floor MiB':>10}  steps (s)"
    )
    print(head)
    for size in opts.sizes:
        with tempfile.TemporaryDirectory() as work:
            subprocess.run([sys.executable, "-c", SETUP, str(size), work], cwd=ROOT, check=True)
            pipe = run(PIPELINE, work)
            floors = {mode: run(RAW, mode, work) for mode in ("write", "raw", "layers", "gate")}
        rate = {k: v["rows"] / v["seconds"] for k, v in floors.items()}
        p_rate = pipe["rows"] / pipe["seconds"]
        # the work the layout asks for, each part timed alone: parsing raw (the raw
        # floor minus its one write), the two row-level layers, the gate
        sec = {k: v["seconds"] for k, v in floors.items()}
        bound = pipe["rows"] / (sec["raw"] - sec["write"] + sec["layers"] + sec["gate"])
        steps = " ".join(f"{k} {v:.2f}" for k, v in pipe["steps"].items())
        print(
            f"{pipe['rows']:>11,} {p_rate:>11,.0f} {rate['write']:>14,.0f} "
            f"{rate['raw']:>12,.0f} {rate['layers']:>13,.0f} {rate['gate']:>10,.0f} "
            f"{p_rate / rate['write']:>9.3f} "
            f"{p_rate / rate['raw']:>7.3f} {bound / rate['raw']:>6.3f} "
            f"{pipe['peak_mib']:>9,.0f} {floors['raw']['peak_mib']:>10,.0f}  "
            f"{steps} (startup {pipe['startup']:.2f})"
        )


if __name__ == "__main__":
    main()
