"""Benchmark: how long offline synthesis takes, next to its floor.

Prints, each measured in a fresh interpreter (best of --repeat runs):
- per stack: import + synthesis of that one stack;
- all four stacks synthesized in one process;
- the floor: what Pulumi itself costs for the same work: importing exactly the provider SDK
  modules the program loads, plus registering the same number of trivial resources under the
  same mocks (a synthetic program, nothing else), for each stack and for all four.
The ratio to the floor says how much the program itself costs on top of Pulumi (the goal is
at most 1.3x); the last lines split the floor into import and registration.

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
from toolchain.synth import synthesize
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
stacks, modules = json.loads(sys.argv[1]), sys.argv[2:]
for name in modules:
    # Any ordinary attribute lookup makes a lazily registered module load for real.
    getattr(importlib.import_module(name), "_dex_touch", None)
t_import = time.perf_counter() - t0
from stacks.stackfiles import read_stack_file
from toolchain.synth import run_program
for stack, count in stacks.items():
    def trivial(count=count):
        for i in range(count):
            pulumi.CustomResource("dex:bench:Trivial", f"r{i}", {"index": i})
    run_program(read_stack_file(stack), program=trivial)
print(json.dumps({"seconds": time.perf_counter() - t0, "import": t_import}))
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
    counts_all = together["counts"]
    floor_all = best(FLOOR, [json.dumps(counts_all), *sorted(all_sdk)], opts.repeat)
    for (label, seconds, count, sdk), stack in zip(rows, STACKS, strict=True):
        floor = best(FLOOR, [json.dumps({stack: count}), *sdk], opts.repeat)  # type: ignore[list-item]
        f_s, f_imp = float(floor["seconds"]), float(floor["import"])  # type: ignore[arg-type]
        print(
            f"{label:<34}{seconds:>9.2f}{count:>11}{seconds / f_s:>9.2f}"
            f"   (floor {f_s:.2f} s: {f_imp:.2f} s import of {len(sdk)} SDK modules,"
            f" {f_s - f_imp:.2f} s registering {count} trivial resources)"
        )
    t_all = float(together["seconds"])  # type: ignore[arg-type]
    n_all = sum(counts_all.values())  # type: ignore[union-attr]
    f_all, f_all_imp = float(floor_all["seconds"]), float(floor_all["import"])  # type: ignore[arg-type]
    print(f"{'all four stacks, one process':<34}{t_all:>9.2f}{n_all:>11}{t_all / f_all:>9.2f}x")
    print(
        f"{'floor: SDK import + trivial resources':<34}{f_all:>9.2f}{n_all:>11}{1:>9.2f}"
        f"   ({f_all_imp:.2f} s import of {len(all_sdk)} modules, {f_all - f_all_imp:.2f} s"
        f" registering; {1000 * (f_all - f_all_imp) / n_all:.2f} ms per resource)"
    )
    print(f"where the rest goes: {t_all - f_all:.2f} s of the program's own work on top of Pulumi")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark wall time {time.perf_counter() - start:.1f} s)")
