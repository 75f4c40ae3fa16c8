"""Offline validators for what the program hands to Kubernetes.

- Kubernetes objects, strictly (misspelled fields fail), against the OpenAPI schema of one
  pinned Kubernetes version, from the kubernetes-validate package. Validators are built once
  per (version, apiVersion, kind) and reused: building one parses a 1.4 MB file.
- Custom resources against the strict CRD schemas in `toolchain/schemas/**/crds/`.
- Helm values: the chart's default `values.yaml` merged with the program's overrides (Helm's
  own merge: maps merge, everything else replaces, null deletes), against the chart's
  `values.schema.json`, for charts that ship one.

Each check reports every error it finds, not only the first. Upstream files and their
versions: `toolchain/schemas/README.md`.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

from contracts.deployment import Plan, is_secret, is_unknown

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
KUBERNETES_VERSION = "1.35"
"""The Kubernetes version manifests are validated against (the clusters' pinned default)."""


@dataclass(frozen=True)
class Finding:
    """One validation error: where (a URN or a label), what kind of check, and the message."""

    where: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.message}"


def _describe(err: jsonschema.ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
    return f"{path.lstrip('.') or '(root)'}: {err.message}"


def _errors(validator: jsonschema.protocols.Validator, obj: Any, original: Any = None) -> list[str]:
    """Every error of `obj`; with `original` (the plan value, secrets and unknowns still
    marked), errors about a value the plan cannot know yet are left out: the known parts
    are checked strictly, the rest when the engine knows them."""
    out = []
    for err in validator.iter_errors(obj):
        if original is not None and _touches_special(original, list(err.absolute_path)):
            continue
        out.append(_describe(err))
    return sorted(out)


def _touches_special(value: Any, path: list[Any]) -> bool:
    """Whether the path through `value` reaches a secret or an unknown."""
    node = value
    for step in path:
        if is_secret(node) or is_unknown(node):
            return True
        if (isinstance(node, Mapping) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and step < len(node)
        ):
            node = node[step]
        else:
            return False
    return is_secret(node) or is_unknown(node)


# -- Kubernetes objects -----------------------------------------------------------------------


class SchemaNotFound(Exception):
    """No schema for this apiVersion/kind in the pinned Kubernetes version."""


@functools.cache
def _k8s_root(version: str) -> Path:
    import kubernetes_validate  # imported late: tests of other parts need not load it

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    folder = base / f"v{version}.0-local-strict"
    if not folder.is_dir():
        known = sorted(p.name for p in base.iterdir() if p.name.endswith("-strict"))
        raise SchemaNotFound(f"Kubernetes {version} schemas are not installed; have {known}")
    return folder


@functools.cache
def _k8s_registry(version: str) -> Registry:
    root = _k8s_root(version)
    definitions = json.loads((root / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


@functools.cache
def kubernetes_validator(
    version: str, api_version: str, kind: str
) -> jsonschema.Draft202012Validator:
    """The strict validator of one kind, built once."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _k8s_root(version) / f"{kind.lower()}-{group_version}.json"
    if not path.is_file():
        raise SchemaNotFound(f"no Kubernetes {version} schema for {api_version} {kind}")
    schema = json.loads(path.read_text())
    registry = Resource.from_contents(schema) @ _k8s_registry(version)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_kubernetes(obj: Mapping[str, Any], version: str = KUBERNETES_VERSION) -> list[str]:
    """Errors of one Kubernetes object (empty when valid). Raises SchemaNotFound for kinds
    the Kubernetes schema does not define (custom resources)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return ["(root): apiVersion and kind are required strings"]
    return _errors(kubernetes_validator(version, api_version, kind), _concrete(obj), obj)


# -- custom resources -------------------------------------------------------------------------


@functools.cache
def _crd_index(schemas_dir: Path) -> dict[tuple[str, str], Path]:
    index = {}
    for path in schemas_dir.glob("*/crds/*.strict.json"):
        # KIND.GROUP.VERSION.strict.json, e.g. servicemonitor.monitoring.coreos.com.v1
        stem = path.name.removesuffix(".strict.json")
        kind, rest = stem.split(".", 1)
        group, version = rest.rsplit(".", 1)
        index[(f"{group}/{version}", kind)] = path
    return index


@functools.cache
def crd_validator(schemas_dir: Path, api_version: str, kind: str) -> jsonschema.protocols.Validator:
    path = _crd_index(schemas_dir).get((api_version, kind.lower()))
    if path is None:
        known = sorted(f"{a} {k}" for a, k in _crd_index(schemas_dir))
        raise SchemaNotFound(f"no CRD schema for {api_version} {kind}; have {known}")
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def validate_custom_resource(obj: Mapping[str, Any], schemas_dir: Path = SCHEMAS_DIR) -> list[str]:
    api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
    return _errors(crd_validator(schemas_dir, api_version, kind), _concrete(obj), obj)


def has_crd_schema(api_version: str, kind: str, schemas_dir: Path = SCHEMAS_DIR) -> bool:
    return (api_version, kind.lower()) in _crd_index(schemas_dir)


# -- Helm values ------------------------------------------------------------------------------


def helm_merge(defaults: Any, overrides: Any) -> Any:
    """Helm's coalescing of user values over chart defaults."""
    if isinstance(defaults, Mapping) and isinstance(overrides, Mapping):
        out = dict(defaults)
        for key, value in overrides.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = helm_merge(defaults.get(key), value)
        return out
    return overrides


@dataclass(frozen=True)
class Chart:
    name: str
    version: str
    defaults: Mapping[str, Any]
    schema: Mapping[str, Any] | None


@functools.cache
def load_chart(name: str, schemas_dir: Path = SCHEMAS_DIR) -> Chart:
    folder = schemas_dir / name
    if not (folder / "Chart.yaml").is_file():
        known = sorted(p.name for p in schemas_dir.iterdir() if (p / "Chart.yaml").is_file())
        raise SchemaNotFound(f"no chart '{name}' under {schemas_dir}; have {known}")
    meta = yaml.safe_load((folder / "Chart.yaml").read_text())
    defaults = yaml.safe_load((folder / "values.yaml").read_text()) or {}
    schema_file = folder / "values.schema.json"
    schema = json.loads(schema_file.read_text()) if schema_file.is_file() else None
    return Chart(name, str(meta["version"]), defaults, schema)


def validate_helm_values(
    chart: str, overrides: Mapping[str, Any], schemas_dir: Path = SCHEMAS_DIR
) -> list[str]:
    """Errors of the chart's defaults merged with `overrides` against its values schema.
    A chart without a schema checks nothing and returns no errors."""
    spec = load_chart(chart, schemas_dir)
    if spec.schema is None:
        return unknown_keys(spec.defaults, overrides, SUBCHARTS.get(chart, ()))
    merged = helm_merge(spec.defaults, _concrete(overrides))
    # airflow's `$schema` line is not one jsonschema recognises; Draft 7 is what it means.
    cls = jsonschema.validators.validator_for(spec.schema, default=jsonschema.Draft7Validator)
    if cls is jsonschema.Draft202012Validator and "draft-07" in str(spec.schema.get("$schema")):
        cls = jsonschema.Draft7Validator
    return _errors(cls(spec.schema), merged, overrides)


SUBCHARTS: dict[str, tuple[str, ...]] = {
    "kube-prometheus-stack": (
        "grafana",
        "kube-state-metrics",
        "prometheus-node-exporter",
        "prometheus-windows-exporter",
    ),
}
"""Top-level keys that configure a subchart, whose own defaults are not vendored."""

UNVENDORED_CHARTS: dict[str, str] = {
    "tempo": "2.2.4",
    "alloy": "1.11.1",
    "oci://ghcr.io/actions/actions-runner-controller-charts/gha-runner-scale-set-controller": (
        "0.15.1"
    ),
    "oci://ghcr.io/actions/actions-runner-controller-charts/gha-runner-scale-set": "0.15.1",
    "oci://public.ecr.aws/karpenter/karpenter": "1.14.1",
    "oci://docker.io/envoyproxy/gateway-helm": "v1.9.0",
}
"""Charts the program installs that ship no values schema and whose defaults are not
vendored in toolchain/schemas (grafana-community tempo, grafana alloy): only the pinned version is
checked."""

UNVENDORED_CRDS: dict[tuple[str, str], str] = {
    ("karpenter.sh/v1", "NodePool"): "1.14.1",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "1.14.1",
    ("gateway.networking.k8s.io/v1", "GatewayClass"): "v1.9.0",
    ("gateway.networking.k8s.io/v1", "Gateway"): "v1.9.0",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "v1.9.0",
    ("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy"): "v1.9.0",
    ("gateway.envoyproxy.io/v1alpha1", "ClientTrafficPolicy"): "v1.9.0",
    ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy"): "v1.9.0",
    ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy"): "v1.9.0",
}
"""Custom kinds the program declares whose CRD schema is not vendored in toolchain/schemas, with
the upstream version whose CRD their fields were reviewed against (Karpenter: the CRDs of
aws/karpenter-provider-aws v1.14.1, `pkg/apis/crds/`; the Gateway API and Envoy Gateway kinds:
the CRDs envoyproxy/gateway v1.9.0 ships in `charts/gateway-helm/charts/crds/crds/`, Gateway API
bundle v1.6.1). `validate_plan` passes them without a schema check; each has a hand check of
its fields in its component's tests instead (tests/unit/test_karpenter.py,
tests/unit/test_k8s.py). A custom kind neither vendored nor listed here is reported as
unvalidated."""


FREE_FORM_KEYS = frozenset(
    {
        "resources",
        "annotations",
        "labels",
        "nodeSelector",
        "affinity",
        "tolerations",
        "securityContext",
        "podSecurityContext",
        "containerSecurityContext",
        "extraArgs",
    }
)
"""Keys whose values are Kubernetes objects or free maps, whatever the defaults show."""


def unknown_keys(
    defaults: Mapping[str, Any], overrides: Mapping[str, Any], free: tuple[str, ...] = ()
) -> list[str]:
    """For charts without a schema: override keys the chart's values.yaml does not have
    (a misspelled key is otherwise silently ignored by Helm). Below a key whose default is
    empty or not a map, anything goes (free-form values)."""
    problems: list[str] = []

    def walk(default: Mapping[str, Any], override: Mapping[str, Any], path: str) -> None:
        for key, value in override.items():
            where = f"{path}.{key}" if path else str(key)
            if not path and key in free:
                continue
            if key not in default:
                near = difflib.get_close_matches(str(key), [str(k) for k in default], n=1)
                hint = f"; did you mean '{near[0]}'?" if near else ""
                problems.append(f"{where}: not a value of the chart{hint}")
                continue
            below = default[key]
            if key in FREE_FORM_KEYS:
                continue
            if isinstance(below, Mapping) and below and isinstance(value, Mapping):
                walk(below, value, where)

    walk(defaults, overrides, "")
    return sorted(problems)


# -- plans ------------------------------------------------------------------------------------


def _concrete(value: Any) -> Any:
    """A plan value with secrets and unknowns replaced by placeholder strings: keys stay
    present (a required field the engine will fill is not missing), and `_errors` leaves
    out what the placeholders themselves get wrong."""
    if is_secret(value):
        return "[secret]"
    if is_unknown(value):
        return "[unknown]"
    if isinstance(value, Mapping):
        return {k: _concrete(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_concrete(v) for v in value]
    return value


def kubernetes_objects(plan: Plan) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    """(urn, type, object) for every Kubernetes object a plan registers (not Helm releases,
    not providers)."""
    for res in plan:
        is_object = res.type.startswith("kubernetes:") and not res.type.startswith(
            "kubernetes:helm.sh/"
        )
        if is_object and "apiVersion" in res.inputs and "kind" in res.inputs:
            yield res.urn, res.type, res.inputs


def validate_plan(
    plan: Plan, version: str = KUBERNETES_VERSION, schemas_dir: Path = SCHEMAS_DIR
) -> list[Finding]:
    """Every Kubernetes object, custom resource and Helm release of a plan, checked."""
    findings: list[Finding] = []
    for urn, _type, obj in kubernetes_objects(plan):
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        if (api_version, kind) in UNVENDORED_CRDS and not has_crd_schema(
            api_version, kind, schemas_dir
        ):
            continue  # reviewed by hand against the listed upstream version
        try:
            if has_crd_schema(api_version, kind, schemas_dir):
                errors = validate_custom_resource(obj, schemas_dir)
                check = "crd"
            else:
                errors = validate_kubernetes(obj, version)
                check = "kubernetes"
        except SchemaNotFound as exc:
            findings.append(Finding(urn, "schema", str(exc)))
            continue
        findings += [Finding(urn, check, e) for e in errors]
    for res in plan.of_type("kubernetes:helm.sh/v3:Release"):
        chart = str(res.inputs.get("chart", ""))
        version_pin = str(res.inputs.get("version", ""))
        if chart in UNVENDORED_CHARTS:
            if version_pin != UNVENDORED_CHARTS[chart]:
                findings.append(
                    Finding(
                        res.urn,
                        "helm",
                        f"chart {chart} version {version_pin!r} differs from the reviewed "
                        f"{UNVENDORED_CHARTS[chart]!r}",
                    )
                )
            continue
        try:
            spec = load_chart(chart, schemas_dir)
        except SchemaNotFound as exc:
            findings.append(Finding(res.urn, "helm", str(exc)))
            continue
        if version_pin != spec.version:
            findings.append(
                Finding(
                    res.urn,
                    "helm",
                    f"chart {chart} version {version_pin!r} "
                    f"differs from the schema's {spec.version!r}",
                )
            )
        values = res.inputs.get("values") or {}
        findings += [
            Finding(res.urn, "helm", e) for e in validate_helm_values(chart, values, schemas_dir)
        ]
    return findings
