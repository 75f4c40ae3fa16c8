"""A Pulumi plan (or `pulumi stack export`) in the forms Checkov reads.

pulumi-aws and pulumi-gcp are bridged from the Terraform providers, so each of their resources
is a Terraform resource under another name and shape. `convert(doc)` writes:

- a **Terraform plan JSON** (`terraform show -json` format 1.2) of the bridged resources, for
  Checkov's `terraform_plan` framework. The type names and the shape of every block come from
  the providers' own bridge metadata (`metadata/*.json`, see `derive.py`): a field Pulumi
  flattened (Terraform `MaxItems: 1`) becomes a one-element list again, a field Pulumi
  pluralised gets its Terraform name back, map-typed properties (tags, labels) keep their keys.
  References between resources come from the plan's `propertyDependencies`, written as the
  configuration's `references`, so Checkov's graph checks see connected resources (a bucket and
  its public access block, a key and what it encrypts);
- **Kubernetes manifests** of the plain Kubernetes objects, for the `kubernetes` framework;
- the **address of each converted resource** (Terraform address, or manifest file), so a
  finding names the URN it is about;
- what was **not converted**, counted by reason: Helm releases (rendered by Helm at deploy
  time, opaque to Checkov as to the pack), custom resources (Checkov checks none), resources of
  providers Checkov has no checks for, components.

Values the engine only knows after apply are left out of the plan's values and listed under
`after_unknown`, as Terraform does; secrets stand as the placeholder `(secret)`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.deployment import is_secret, is_unknown, parse_plan

METADATA = Path(__file__).with_name("metadata")
PROVIDERS = {
    "aws": "registry.terraform.io/hashicorp/aws",
    "gcp": "registry.terraform.io/hashicorp/google",
}
SECRET = "(secret)"  # noqa: S105 - the placeholder written in place of a secret

KUBERNETES_GROUPS = frozenset(
    {
        "core", "apps", "batch", "autoscaling", "policy", "networking.k8s.io",
        "rbac.authorization.k8s.io", "storage.k8s.io", "scheduling.k8s.io", "node.k8s.io",
        "admissionregistration.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
        "certificates.k8s.io", "apiextensions.k8s.io", "flowcontrol.apiserver.k8s.io",
    }
)  # fmt: skip
"""API groups of Kubernetes itself: everything else is a custom resource."""

NOT_SCANNED_HELM = "Helm release: rendered by Helm at deploy time, opaque to Checkov"
NOT_SCANNED_CRD = "custom resource: Checkov has no checks for custom resources"
NOT_SCANNED_GROUP = "manifest group applied from files at deploy time (the operators' CRDs)"
NOT_SCANNED_PROVIDER = "provider with no Terraform checks in Checkov"


class ConversionError(Exception):
    """A bridged resource type the conversion tables do not know."""


@dataclass
class Converted:
    """A plan in Checkov's forms, and the way back to URNs."""

    terraform: dict[str, Any]
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    """File name -> one Kubernetes object."""
    urns: dict[str, str] = field(default_factory=dict)
    """Terraform address or manifest file name -> URN."""
    types: dict[str, str] = field(default_factory=dict)
    """URN -> Pulumi type."""
    not_scanned: dict[str, list[str]] = field(default_factory=dict)
    """Reason -> URNs not handed to Checkov."""

    @property
    def scanned(self) -> int:
        return len(self.urns)


@functools.cache
def tables() -> dict[str, dict[str, Any]]:
    """Pulumi token -> {terraform, fields}, both providers."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(METADATA.glob("*.json")):
        out.update(json.loads(path.read_text(encoding="utf-8"))["resources"])
    return out


# -- names ----------------------------------------------------------------------------------


def snake(name: str) -> str:
    """The Terraform spelling of a Pulumi property name (`enableDnsHostnames` ->
    `enable_dns_hostnames`, `ipv6CidrBlock` -> `ipv6_cidr_block`)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z])(?=[a-z])", r"_\1\2", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def plural(name: str) -> str:
    """The bridge's pluralisation of a list field's name (an English plural of its last
    word; a name already plural stays as it is)."""
    if name.endswith("s"):
        return name
    if re.search(r"[^aeiou]y$", name):
        return name[:-1] + "ies"
    if re.search(r"(sh|ch|x|z)$", name):
        return name + "es"
    return name + "s"


def _lookup(fields: Mapping[str, Any]) -> dict[str, str]:
    """Pulumi property name -> Terraform field name, for the blocks and lists of one level."""
    out: dict[str, str] = {}
    for tf, meta in fields.items():
        out[camel(tf)] = tf
        if not meta.get("maxItemsOne"):
            out.setdefault(camel(plural(tf)), tf)
    return out


# -- values ---------------------------------------------------------------------------------

_DROP = object()


def _plain(value: Any) -> Any:
    """A map's or a scalar list's value: unknowns become null, secrets the placeholder."""
    if is_secret(value):
        return SECRET
    if is_unknown(value):
        return None
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Shape:
    """What the tables know of one resource type: its Terraform fields that are blocks or
    lists (GCP: with maxItemsOne), its Pulumi properties renamed from Terraform's (AWS:
    `renamedProperties`), and which of its properties are maps, whose keys are data."""

    fields: Mapping[str, Any]
    renamed: Mapping[str, str]
    maps: frozenset[str]

    @staticmethod
    def of(meta: Mapping[str, Any]) -> Shape:
        return Shape(meta.get("fields") or {}, meta.get("renamed") or {}, frozenset(meta["maps"]))


def _value(key: str, value: Any, meta: Mapping[str, Any] | None, shape: Shape) -> Any:
    if is_unknown(value):
        return _DROP
    if is_secret(value):
        return SECRET
    if key in shape.maps or not (
        isinstance(value, Mapping)
        or (isinstance(value, list) and any(isinstance(v, Mapping) for v in value))
    ):
        return _plain(value)  # a scalar, a list of scalars or a map (tags, labels): keys kept
    nested = (meta or {}).get("fields") or {}
    items = value if isinstance(value, list) else [value]
    return [
        block(item, nested, shape) if isinstance(item, Mapping) else _plain(item)
        for item in items
        if not is_unknown(item)
    ]


def _tf_name(key: str, lookup: Mapping[str, str], shape: Shape) -> str:
    return shape.renamed.get(key) or lookup.get(key) or snake(key)


def block(props: Mapping[str, Any], fields: Mapping[str, Any], shape: Shape) -> dict[str, Any]:
    """One Pulumi object as a Terraform block: names by the tables, blocks as lists."""
    lookup = _lookup(fields)
    out: dict[str, Any] = {}
    for key, value in props.items():
        tf = _tf_name(key, lookup, shape)
        converted = _value(key, value, fields.get(tf), shape)
        if converted is not _DROP:
            out[tf] = converted
    return out


def unknown_keys(props: Mapping[str, Any], shape: Shape) -> dict[str, bool]:
    lookup = _lookup(shape.fields)
    return {_tf_name(k, lookup, shape): True for k, v in props.items() if is_unknown(v)}


# -- the plan -------------------------------------------------------------------------------


def _address_name(name: str, taken: set[str]) -> str:
    """A Terraform resource name for a Pulumi name: letters, digits, `_` and `-`, not
    starting with a digit, unique within its type."""
    base = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if not re.match(r"[A-Za-z_]", base):
        base = "r_" + base
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate


def _manifest(type_: str, props: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The object as `kubectl` would get it; without a `metadata.name` (Pulumi auto-names
    it at apply) it gets the Pulumi name, as Checkov needs one to report on it."""
    _, api, kind = type_.split(":", 2)
    group, version = api.split("/")
    body = {k: _plain(v) for k, v in props.items() if k not in ("apiVersion", "kind")}
    metadata = dict(body.get("metadata") or {})
    if not isinstance(metadata.get("name"), str) or not metadata["name"]:
        metadata["name"] = name
    body["metadata"] = metadata
    return {"apiVersion": version if group == "core" else api, "kind": kind, **body}


def _not_scanned_reason(type_: str, custom: bool) -> str | None:
    """Why a resource is not handed to Checkov; None when it is."""
    if type_ in {"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"}:
        return NOT_SCANNED_HELM
    if type_.startswith("kubernetes:yaml/"):
        return NOT_SCANNED_GROUP
    if type_.startswith("kubernetes:"):
        group = type_.split(":")[1].split("/", maxsplit=1)[0]
        return None if group in KUBERNETES_GROUPS else NOT_SCANNED_CRD
    if not custom or type_.startswith("pulumi:"):
        return ""  # components, providers and the stack: not resources of their own
    if type_.split(":", maxsplit=1)[0] in PROVIDERS:
        return None
    return f"{NOT_SCANNED_PROVIDER} ({type_.split(':', maxsplit=1)[0]})"


def _state(inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
    """What the resource is: its outputs (a stack export's refreshed state, drift included),
    and its inputs where the outputs say nothing or do not know yet (a plan), object by
    object. Pulumi's own bookkeeping keys (`__defaults`, `__meta`) are not the resource's."""
    state = {k: v for k, v in inputs.items() if not k.startswith("__")}
    for key, value in outputs.items():
        if key.startswith("__") or (is_unknown(value) and key in state):
            continue
        known = state.get(key)
        both_objects = isinstance(value, Mapping) and isinstance(known, Mapping)
        state[key] = _state(known, value) if both_objects else value  # type: ignore[arg-type]
    return state


def convert(doc: Mapping[str, Any], source: str = "<plan>") -> Converted:
    """`doc` (a plan or a stack export) in Checkov's forms. Raises ConversionError for a
    bridged type the tables do not know (a new resource type: derive its table)."""
    plan = parse_plan(doc, source)
    known = tables()
    addresses: dict[str, str] = {}
    planned: list[dict[str, Any]] = []
    configured: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    out = Converted(terraform={})
    taken: dict[str, set[str]] = {}
    bridged = []
    for res in plan:
        reason = _not_scanned_reason(res.type, res.custom)
        if reason is not None:
            if reason:  # "" is a component, a provider or the stack: nothing to count
                out.not_scanned.setdefault(reason, []).append(res.urn)
            continue
        out.types[res.urn] = res.type
        if res.type.startswith("kubernetes:"):
            name = f"{len(out.manifests):04d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', res.name)}.json"
            out.manifests[name] = _manifest(res.type, res.inputs, res.name)
            out.urns[name] = res.urn
            continue
        meta = known.get(res.type)
        if meta is None:
            raise ConversionError(
                f"{res.type} ({res.urn}): no Terraform table for this type; derive it with "
                "`python -m toolchain.checkov.derive` (docs/policies.md, Checkov)"
            )
        tf_type = meta["terraform"]
        address = f"{tf_type}.{_address_name(res.name, taken.setdefault(tf_type, set()))}"
        addresses[res.urn] = address
        out.urns[address] = res.urn
        bridged.append((res, meta, address))
    for res, meta, address in bridged:
        props = _state(res.inputs, res.outputs)
        shape = Shape.of(meta)
        tf_type, name = address.split(".", 1)
        provider = PROVIDERS[res.type.split(":")[0]]
        values = block(props, shape.fields, shape)
        planned.append(
            {"address": address, "mode": "managed", "type": tf_type, "name": name,
             "provider_name": provider, "schema_version": 0, "values": values}
        )  # fmt: skip
        lookup = _lookup(shape.fields)
        expressions = {}
        for prop, deps in sorted((res.raw.get("propertyDependencies") or {}).items()):
            refs = [r for urn in deps if (a := addresses.get(urn)) for r in (f"{a}.id", a)]
            if refs:
                expressions[_tf_name(prop, lookup, shape)] = {"references": refs}
        configured.append(
            {"address": address, "mode": "managed", "type": tf_type, "name": name,
             "provider_config_key": tf_type.split("_")[0], "expressions": expressions}
        )  # fmt: skip
        changes.append(
            {"address": address, "mode": "managed", "type": tf_type, "name": name,
             "provider_name": provider,
             "change": {"actions": ["create"], "before": None, "after": values,
                        "after_unknown": unknown_keys(props, shape)}}
        )  # fmt: skip
    out.terraform = {
        "format_version": "1.2",
        "terraform_version": "1.9.8",
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {"root_module": {"resources": configured}},
    }
    return out
