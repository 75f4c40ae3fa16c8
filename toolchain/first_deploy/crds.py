"""Where each custom kind's CRD comes from: a chart that installs it (unless skipped or gated
off by its values), a ConfigGroup applying `<group>_<plural>.yaml`, or a
CustomResourceDefinition object of the plan."""

from __future__ import annotations

from collections.abc import Mapping

from contracts.deployment import Plan
from toolchain import charts
from toolchain.first_deploy.model import CONFIG_GROUP, RELEASE
from toolchain.first_deploy.objects import k8s_objects, release_values, strings


def crd_sources(plan: Plan) -> dict[tuple[str, str], list[str]]:
    """(group, kind or '*') -> the URNs that install that CRD."""
    out: dict[tuple[str, str], list[str]] = {}
    for res in plan.of_type(RELEASE):
        chart = str(res.inputs.get("chart", ""))
        if res.inputs.get("skipCrds") is True:
            continue
        gates = charts.CRDS_INSTALLED_WHEN.get(chart)
        if gates and not any(charts.lookup(release_values(res), g) for g in gates):
            continue
        for group, sources in charts.CRD_SOURCES.items():
            if chart in sources:
                out.setdefault((group, "*"), []).append(res.urn)
    for res in plan.of_type(CONFIG_GROUP):
        for text in strings(res.inputs.get("files") or []):
            name = text.rsplit("/", 1)[-1]
            if name.endswith(".yaml") and "_" in name:
                group, plural = name[: -len(".yaml")].split("_", 1)
                out.setdefault((group, plural), []).append(res.urn)
    for res, obj in k8s_objects(plan):
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            plural = str((spec.get("names") or {}).get("plural", ""))
            out.setdefault((str(spec.get("group", "")), plural), []).append(res.urn)
    return out


def crd_for(sources: Mapping[tuple[str, str], list[str]], group: str, kind: str) -> list[str]:
    """The URNs that install the CRD of `kind` in `group`."""
    plural = kind.lower() + ("es" if kind.lower().endswith("s") else "s")
    return [*sources.get((group, "*"), []), *sources.get((group, plural), [])]
