"""The report: every check over one plan (`check_plan`), and what a first deploy creates,
wave by wave, with what each wave waits for (`describe_waves`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from contracts.deployment import Plan, Resource
from stacks.stackfiles import PROJECT_DIR
from toolchain.first_deploy.day0 import cold_start
from toolchain.first_deploy.graph import Graph
from toolchain.first_deploy.model import Finding
from toolchain.first_deploy.order import creation_order
from toolchain.first_deploy.plugins import plugin_paths
from toolchain.first_deploy.providers import engine_rules
from toolchain.first_deploy.reach import reachability
from toolchain.first_deploy.tls import tls_trust


def check_plan(
    plan: Plan,
    stack_config: Mapping[str, Any],
    project_dir: Path = PROJECT_DIR,
    invokes: Iterable[Mapping[str, Any]] = (),
) -> list[Finding]:
    """Every first-deploy check over `plan`, in this order: engine rules, plugin paths,
    creation order, reachability, TLS trust, day-0 readiness."""
    return [
        *engine_rules(plan, stack_config, invokes),
        *plugin_paths(plan, project_dir),
        *creation_order(plan),
        *reachability(plan),
        *tls_trust(plan),
        *cold_start(plan),
    ]


def waits_summary(graph: Graph, res: Resource, previous: set[str]) -> list[str]:
    """The direct prerequisites of `res` that the previous wave created."""
    return sorted(graph.by_urn[u].name for u in graph.prereqs.get(res.urn, ()) if u in previous)


def describe_waves(plan: Plan) -> list[dict[str, Any]]:
    """`Graph.waves` as data: each wave's resources, with what of the wave before they wait
    for (`dex plan STACK --waves`)."""
    graph = Graph(plan)
    out: list[dict[str, Any]] = []
    previous: set[str] = set()
    for i, wave in enumerate(graph.waves()):
        out.append(
            {
                "wave": i,
                "resources": [
                    {"name": r.name, "type": r.type, "waits_for": waits_summary(graph, r, previous)}
                    for r in wave
                ],
            }
        )
        previous = {r.urn for r in wave}
    return out
