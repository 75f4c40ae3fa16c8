"""Helpers over what a plan declares: Kubernetes objects and their pods, Helm releases with
their chart's defaults, and the outputs of DEX's own components."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from contracts.deployment import Plan, Resource
from toolchain import charts
from toolchain.first_deploy.model import POD_KINDS
from toolchain.validate import SCHEMAS_DIR, helm_merge, load_chart


def api_group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else "core"


def k8s_objects(plan: Plan) -> Iterator[tuple[Resource, Mapping[str, Any]]]:
    for res in plan:
        if (
            res.type.startswith("kubernetes:")
            and "kind" in res.inputs
            and "apiVersion" in res.inputs
        ):
            yield res, res.inputs


def meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    """An object's (namespace, name)."""
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    elif kind not in POD_KINDS:
        return None
    return ((spec.get("template") or {}).get("spec")) or None


def containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def release_values(res: Resource) -> dict[str, Any]:
    """A release's values merged over its chart's defaults (vendored, or charts.DEFAULTS)."""
    chart = str(res.inputs.get("chart", ""))
    defaults: Any = charts.DEFAULTS.get(chart, {})
    if (SCHEMAS_DIR / chart / "Chart.yaml").is_file():
        defaults = load_chart(chart).defaults  # parsed once per process
    merged = helm_merge(defaults, res.inputs.get("values") or {})
    return merged if isinstance(merged, dict) else {}


def strings(value: Any) -> Iterator[str]:
    """Every string inside `value` (nested mappings and lists included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def component_output(plan: Plan, suffix: str, key: str) -> Any:
    """Output `key` of the first DEX component whose type ends with `suffix` (None if none)."""
    for res in plan:
        if not res.custom and res.type.startswith("dex:") and res.type.endswith(suffix):
            return res.outputs.get(key)
    return None
