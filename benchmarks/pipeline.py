"""Benchmark: the weather pipeline from raw to gold, next to its floor, at 1M and 10M rows.

For each size, in a fresh process: synthetic responses are landed in a `file://` lake (the
ingest step, not timed), then bronze + silver + gold run and are timed; peak RSS is the
process's high-water mark. The floor, in its own fresh process: the same number of rows
built in memory and written to Parquet with pyarrow alone. Printed: rows/s for both, the
ratio, and peak memory.

    .venv/bin/python benchmarks/pipeline.py [--sizes 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PIPELINE = r"""
import datetime as dt, json, random, resource, sys, time
from pathlib import Path
from apps.pipelines.lake import open_lake
from apps.pipelines.locations import Location
from apps.pipelines.sources import FileSource
from apps.pipelines.weather import WeatherPipeline

rows, work = int(sys.argv[1]), Path(sys.argv[2])
hours = 24 * 365
n_loc = max(1, rows // hours)
rng = random.Random(1)
source = work / "source"
locs = []
for i in range(n_loc):
    loc = Location(f"loc{i}", rng.uniform(-60, 60), rng.uniform(-170, 170))
    locs.append(loc)
    (source / loc.name).mkdir(parents=True)
    t0 = dt.datetime(2023, 1, 1)
    for month in range(12):
        start = dt.datetime(2023, month + 1, 1)
        end = dt.datetime(2023 + (month == 11), (month + 1) % 12 + 1, 1)
        n = int((end - start).total_seconds() // 3600)
        times = [(start + dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M") for h in range(n)]
        body = {"latitude": loc.latitude, "longitude": loc.longitude, "utc_offset_seconds": 0,
                "hourly_units": {"temperature_2m": "°C", "precipitation": "mm", "wind_speed_10m": "km/h"},
                "hourly": {"time": times,
                           "temperature_2m": [round(rng.gauss(12, 8), 1) for _ in range(n)],
                           "relative_humidity_2m": [round(rng.uniform(20, 100)) for _ in range(n)],
                           "precipitation": [0.0 if rng.random() > 0.1 else 1.2 for _ in range(n)],
                           "wind_speed_10m": [round(rng.uniform(0, 40), 1) for _ in range(n)]}}
        (source / loc.name / f"{month:02d}.json").write_text(json.dumps(body))
lake = open_lake(f"file://{work}/lake")
p = WeatherPipeline(lake)
p.ingest(FileSource(f"file://{source}").fetch(locs))
t = time.perf_counter()
p.bronze(); p.silver(); p.gold()
elapsed = time.perf_counter() - t
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
r = p.report.as_dict()
print(json.dumps({"rows": r["layers"]["bronze"]["rows_in"], "seconds": elapsed, "peak_mib": peak_mib}))
"""

FLOOR = r"""
import io, json, resource, sys, time
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
rows = int(sys.argv[1])
rng = np.random.default_rng(1)
table = pa.table({
    "location": pa.array(np.repeat([f"loc{i}" for i in range(max(1, rows // 8760) + 1)], 8760)[:rows]),
    "ts": pa.array(np.arange(rows) % 8760 * 3600_000_000 + 1672531200_000_000, pa.timestamp("us", tz="UTC")),
    "temperature_c": rng.normal(12, 8, rows), "relative_humidity_pct": rng.uniform(20, 100, rows),
    "precipitation_mm": rng.uniform(0, 1, rows), "wind_speed_ms": rng.uniform(0, 11, rows),
})
t = time.perf_counter()
pq.write_table(table, io.BytesIO(), compression="zstd")
elapsed = time.perf_counter() - t
print(json.dumps({"rows": rows, "seconds": elapsed,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    opts = parser.parse_args()
    print(
        f"{'rows':>12} {'pipeline rows/s':>16} {'floor rows/s':>14} {'ratio':>7} "
        f"{'pipeline peak MiB':>18} {'floor peak MiB':>15}"
    )
    for size in opts.sizes:
        with tempfile.TemporaryDirectory() as work:
            pipe = run(PIPELINE, str(size), work)
        floor = run(FLOOR, str(int(pipe["rows"])))
        p_rate, f_rate = pipe["rows"] / pipe["seconds"], floor["rows"] / floor["seconds"]
        print(
            f"{int(pipe['rows']):>12} {p_rate:>16,.0f} {f_rate:>14,.0f} {p_rate / f_rate:>7.3f} "
            f"{pipe['peak_mib']:>18,.0f} {floor['peak_mib']:>15,.0f}"
        )


if __name__ == "__main__":
    main()
