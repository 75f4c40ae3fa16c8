"""Benchmark: how long offline synthesis takes, next to its floor.

Prints, each measured in a fresh interpreter (best of --repeat runs):
- per stack: import + synthesis of that one stack;
- all four stacks synthesized in one process;
- the floor: importing exactly the provider SDK modules the program loads, and nothing else.
The ratio to the floor says how much the program itself costs on top of loading the SDKs.

    .venv/bin/python benchmarks/synth.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("dev", "prod", "gcp-dev", "gcp-prod")

SYNTH = """
import json, sys, time
t0 = time.perf_counter()
from stacks.synth import synthesize
counts = {s: len(synthesize(s)["deployment"]["resources"]) for s in sys.argv[1:]}
elapsed = time.perf_counter() - t0
# Service packages really loaded (the SDKs register the rest lazily, unloaded).
sdk = sorted(m for m, mod in list(sys.modules.items())
             if m.startswith(("pulumi_aws.", "pulumi_gcp.", "pulumi_kubernetes.",
                              "pulumi_random.")) and m.count(".") == 1
             and not m.split(".")[1].startswith("_")
             and type(mod).__name__ != "_LazyModule")
print(json.dumps({"seconds": elapsed, "counts": counts, "sdk": sdk}))
"""

FLOOR = """
import importlib, json, sys, time
t0 = time.perf_counter()
import pulumi
for name in sys.argv[1:]:
    # Any ordinary attribute lookup makes a lazily registered module load for real.
    getattr(importlib.import_module(name), "_dex_touch", None)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def run(code: str, *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def best(code: str, args: list[str], repeat: int) -> dict[str, object]:
    results = [run(code, *args) for _ in range(repeat)]
    return min(results, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    print(f"{'what':<34}{'seconds':>9}{'resources':>11}{'x floor':>9}")
    all_sdk: set[str] = set()
    rows = []
    for stack in STACKS:
        res = best(SYNTH, [stack], opts.repeat)
        all_sdk |= set(res["sdk"])  # type: ignore[arg-type]
        rows.append(
            (
                f"synthesize {stack}",
                float(res["seconds"]),  # type: ignore[arg-type]
                sum(res["counts"].values()),
                res["sdk"],
            )
        )  # type: ignore[union-attr]
    together = best(SYNTH, list(STACKS), opts.repeat)
    floor_all = float(best(FLOOR, sorted(all_sdk), opts.repeat)["seconds"])  # type: ignore[arg-type]
    for label, seconds, count, sdk in rows:
        floor = float(best(FLOOR, list(sdk), opts.repeat)["seconds"])  # type: ignore[arg-type]
        print(
            f"{label:<34}{seconds:>9.2f}{count:>11}{seconds / floor:>9.2f}"
            f"   (floor {floor:.2f} s: {len(sdk)} SDK modules)"
        )
    t_all = float(together["seconds"])  # type: ignore[arg-type]
    n_all = sum(together["counts"].values())  # type: ignore[union-attr]
    print(f"{'all four stacks, one process':<34}{t_all:>9.2f}{n_all:>11}{t_all / floor_all:>9.2f}")
    print(
        f"{'floor: import the SDK modules':<34}{floor_all:>9.2f}{'':>11}{1:>9.2f}"
        f"   ({len(all_sdk)} modules: {', '.join(sorted(all_sdk))})"
    )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark wall time {time.perf_counter() - start:.1f} s)")
