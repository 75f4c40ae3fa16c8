"""Benchmark: how long offline synthesis takes, next to its floor.

Prints, each measured in a fresh interpreter (best of --repeat runs):
- per stack: import + synthesis of that one stack;
- all four stacks synthesized in one process;
- the floor: what Pulumi itself costs for the same work: importing exactly the provider SDK
  modules the program loads (at any depth: pulumi_kubernetes loads its API versions lazily,
  below the service packages), plus registering the same number of trivial resources under
  the same mocks and engine (a synthetic program, nothing else), for each stack and for all four.
The ratio to the floor says how much the program itself costs on top of Pulumi (the goal is
at most 1.3x). The last lines say where the rest goes: the four stacks synthesized once more
with the SDK imported first, so its import, the program's own modules and the registrations
are timed apart, each next to the floor's, garbage collection included and shown.

    .venv/bin/python benchmarks/synth.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("dev", "prod", "gcp-dev", "gcp-prod")
SDKS = (
    "pulumi_aws",
    "pulumi_command",
    "pulumi_docker_build",
    "pulumi_gcp",
    "pulumi_kubernetes",
    "pulumi_random",
    "pulumi_tls",
)
"""The provider SDKs: whatever the program loads of them is Pulumi's cost, in the floor."""

GC_CLOCK = """
import gc, time
_gc = {"seconds": 0.0, "start": 0.0}
def _gc_clock(phase, info):
    if phase == "start":
        _gc["start"] = time.perf_counter()
    else:
        _gc["seconds"] += time.perf_counter() - _gc["start"]
gc.callbacks.append(_gc_clock)
"""
"""Each child times its garbage collections (a large share of both the program and floor)."""

SYNTH = (
    GC_CLOCK
    + """
import json, sys
t0, c0 = time.perf_counter(), time.process_time()
from toolchain.synth import synthesize
counts = {s: len(synthesize(s)["deployment"]["resources"]) for s in sys.argv[2:]}
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
# Provider SDK modules really loaded, at any depth (the SDKs register their service packages,
# and pulumi_kubernetes its API versions, lazily: those never touched stay unloaded).
SDKS = set(json.loads(sys.argv[1]))
sdk = sorted(m for m, mod in list(sys.modules.items())
             if m.split(".")[0] in SDKS
             and not any(part.startswith("_") for part in m.split("."))
             and type(mod).__name__ != "_LazyModule")
print(json.dumps({"seconds": elapsed, "cpu": cpu, "gc": _gc["seconds"], "counts": counts,
                  "sdk": sdk}))
"""
)

IMPORT_SDK = """
import importlib, json, sys
t0, c0 = time.perf_counter(), time.process_time()
import pulumi
for name in sys.argv[2:]:
    # Any ordinary attribute lookup makes a lazily registered module load for real.
    getattr(importlib.import_module(name), "_dex_touch", None)
t_import, gc_import = time.perf_counter() - t0, _gc["seconds"]
"""

FLOOR = (
    GC_CLOCK
    + IMPORT_SDK
    + """
from stacks.stackfiles import read_stack_file
from toolchain.synth import run_program
for stack, count in json.loads(sys.argv[1]).items():
    def trivial(count=count):
        for i in range(count):
            pulumi.CustomResource("dex:bench:Trivial", f"r{i}", {"index": i})
    run_program(read_stack_file(stack), program=trivial)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                  "import": t_import, "gc": _gc["seconds"], "gc_import": gc_import}))
"""
)

BREAKDOWN = (
    GC_CLOCK
    + IMPORT_SDK
    + """
t1, gc1 = time.perf_counter(), _gc["seconds"]
import toolchain.synth, stacks.program, stacks.aws, stacks.gcp, stacks.platform
t2, gc2 = time.perf_counter(), _gc["seconds"]
for stack in json.loads(sys.argv[1]):
    toolchain.synth.synthesize(stack)
t3, gc3 = time.perf_counter(), _gc["seconds"]
print(json.dumps({"seconds": t3 - t0, "import": t_import, "gc_import": gc_import,
                  "own_modules": t2 - t1, "gc_own_modules": gc2 - gc1,
                  "register": t3 - t2, "gc_register": gc3 - gc2}))
"""
)


def run(code: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def best(code: str, args: list[str], repeat: int) -> dict[str, Any]:
    results = [run(code, *args) for _ in range(repeat)]
    return min(results, key=lambda r: float(r["seconds"]))


def where_the_rest_goes(
    counts: dict[str, int], sdk: list[str], floor: dict[str, Any], repeat: int
) -> None:
    """The four stacks once more, the SDK imported first: each phase next to the floor's."""
    parts = best(BREAKDOWN, [json.dumps(list(counts)), *sdk], repeat)
    n = sum(counts.values())
    f_reg = floor["seconds"] - floor["import"]
    f_gc_reg = floor["gc"] - floor["gc_import"]
    rows = [
        (f"importing the {len(sdk)} SDK modules", parts["import"], floor["import"], ""),
        ("  of which garbage collection", parts["gc_import"], floor["gc_import"], ""),
        (
            "importing the program's own modules",
            parts["own_modules"],
            0.0,
            "  (config models, components, stacks; nothing of it in the floor)",
        ),
        ("  of which garbage collection", parts["gc_own_modules"], 0.0, ""),
        (
            f"registering {n} resources",
            parts["register"],
            f_reg,
            f"  ({1000 * parts['register'] / n:.2f} vs {1000 * f_reg / n:.2f} ms per resource:"
            " real inputs, typed outputs, dependencies)",
        ),
        ("  of which garbage collection", parts["gc_register"], f_gc_reg, ""),
    ]
    print(
        f"where the rest goes (the four stacks, SDK imported first: {parts['seconds']:.2f} s"
        f" vs floor {floor['seconds']:.2f} s):"
    )
    print(f"  {'':<38}{'program':>9}{'floor':>9}{'extra':>9}")
    for label, ours, theirs, note in rows:
        print(f"  {label:<38}{ours:>9.2f}{theirs:>9.2f}{ours - theirs:>9.2f}{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    print(f"{'what':<34}{'seconds':>9}{'resources':>11}{'x floor':>9}")
    all_sdk: set[str] = set()
    rows = []
    for stack in STACKS:
        res = best(SYNTH, [json.dumps(SDKS), stack], opts.repeat)
        all_sdk |= set(res["sdk"])
        rows.append((stack, float(res["seconds"]), sum(res["counts"].values()), res["sdk"]))
    together = best(SYNTH, [json.dumps(SDKS), *STACKS], opts.repeat)
    counts_all: dict[str, int] = together["counts"]
    floor_all = best(FLOOR, [json.dumps(counts_all), *sorted(all_sdk)], opts.repeat)
    for stack, seconds, count, sdk in rows:
        floor = best(FLOOR, [json.dumps({stack: count}), *sdk], opts.repeat)
        f_s, f_imp = float(floor["seconds"]), float(floor["import"])
        print(
            f"{'synthesize ' + stack:<34}{seconds:>9.2f}{count:>11}{seconds / f_s:>9.2f}"
            f"   (floor {f_s:.2f} s: {f_imp:.2f} s import of {len(sdk)} SDK modules,"
            f" {f_s - f_imp:.2f} s registering {count} trivial resources)"
        )
    t_all, c_all = float(together["seconds"]), float(together["cpu"])
    n_all = sum(counts_all.values())
    f_all, f_all_imp = float(floor_all["seconds"]), float(floor_all["import"])
    print(
        f"{'all four stacks, one process':<34}{t_all:>9.2f}{n_all:>11}{t_all / f_all:>9.2f}x"
        f"   (CPU time {c_all:.2f} s vs {floor_all['cpu']:.2f} s: {c_all / floor_all['cpu']:.2f}x;"
        f" garbage collection {together['gc']:.2f} s vs {floor_all['gc']:.2f} s)"
    )
    print(
        f"{'floor: SDK import + trivial resources':<34}{f_all:>9.2f}{n_all:>11}{1:>9.2f}"
        f"   ({f_all_imp:.2f} s import of {len(all_sdk)} modules, {f_all - f_all_imp:.2f} s"
        f" registering; {1000 * (f_all - f_all_imp) / n_all:.2f} ms per resource)"
    )
    where_the_rest_goes(counts_all, sorted(all_sdk), floor_all, opts.repeat)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark wall time {time.perf_counter() - start:.1f} s)")
