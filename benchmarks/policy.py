"""Benchmark: the offline policy runner over 10,000 resources (target: under one second).

Builds a deployment of N resources by repeating the shipped prod plans (AWS and GCP) under
fresh URNs, then times, in one run: the full check with every rule, and the floor, a pass
that only builds the rules' view of each resource (what any check must at least do).

Then, per shipped stack, the pack beside Checkov on the same plan (`dex policy check STACK
--with checkov`): the pack's check, the conversion to Checkov's forms, and Checkov's own run
(one process per stack, as the CLI does; its start-up, about 3 s, is most of it).

    .venv/bin/python benchmarks/policy.py [--resources 10000] [--repeat 5] [--no-checkov]
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
    parser.add_argument("--no-checkov", action="store_true", help="skip the Checkov figures")
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
    if not opts.no_checkov:
        checkov_side_by_side()


def checkov_side_by_side() -> None:
    """Per stack: the pack, the conversion and Checkov, each timed once in this run."""
    from toolchain.checkov.convert import convert
    from toolchain.checkov.run import scan

    print()
    print("stack      resources   pack s   convert s   checkov s   checkov/pack   verdicts")
    for stack in ("dev", "prod", "gcp-dev", "gcp-prod"):
        doc = json.loads((ROOT / "tests" / "snapshots" / f"{stack}.json").read_text())
        env = "prod" if stack.endswith("prod") else "dev"
        started = time.perf_counter()
        report = check(doc, env)  # type: ignore[arg-type]
        pack = time.perf_counter() - started
        started = time.perf_counter()
        converted = convert(doc)
        conversion = time.perf_counter() - started
        result = scan({stack: converted})[stack]
        print(
            f"{stack:9} {report.resources:>10} {pack:>8.3f} {conversion:>11.3f} "
            f"{result.seconds:>11.2f} {result.seconds / pack:>13.0f}x {len(result.findings):>10}"
        )


if __name__ == "__main__":
    main()
