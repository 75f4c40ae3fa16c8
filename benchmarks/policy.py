"""Benchmark: the offline policy runner over 10,000 resources (target: under one second).

Builds a deployment of N resources by repeating the shipped prod plans (AWS and GCP) under
fresh URNs, then times, in one run: the full check with every rule, and the floor, a pass
that only builds the rules' view of each resource (what any check must at least do).

    .venv/bin/python benchmarks/policy.py [--resources 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

from policies import all_rules
from policies.model import PackConfig
from policies.runner import check, subjects

ROOT = Path(__file__).resolve().parent.parent


def build(n: int) -> dict[str, object]:
    base = []
    for stack in ("prod", "gcp-prod"):
        doc = json.loads((ROOT / "tests" / "snapshots" / f"{stack}.json").read_text())
        base += doc["deployment"]["resources"]
    out = []
    i = 0
    while len(out) < n:
        for res in base:
            if len(out) >= n:
                break
            copy_ = copy.deepcopy(res)
            copy_["urn"] = f"{res['urn']}-{i}"
            if "provider" in res:  # point at the copy of the provider, as a real stack would
                urn, _, pid = res["provider"].rpartition("::")
                copy_["provider"] = f"{urn}-{i}::{pid}"
            out.append(copy_)
        i += 1
    return {"version": 3, "deployment": {"resources": out}}


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    doc = build(opts.resources)
    rules = all_rules()
    check(doc, "prod")  # warm up: rule modules, SDK signature look-ups for the tag rules
    full = best(lambda: check(doc, "prod"), opts.repeat)
    floor = best(lambda: subjects(doc, PackConfig()), opts.repeat)
    report = check(doc, "prod")
    print(f"resources checked          {opts.resources:>10}")
    print(f"rules                      {len(rules):>10}")
    print(f"violations found           {len(report.violations):>10}")
    print(
        f"full check (best of {opts.repeat})     {full:>9.3f} s   target < 1 s: "
        f"{'met' if full < 1 else 'NOT met'}"
    )
    print(f"floor: build the views     {floor:>9.3f} s")
    print(f"ratio full / floor         {full / floor:>9.1f} x")
    print(f"throughput                 {opts.resources / full:>9.0f} resources/s")


if __name__ == "__main__":
    main()
