"""Diffs between two plans (or two `pulumi stack export` files), rendered for people.

Resources are matched by URN (a resource whose `aliases` name an old URN is the same
resource, renamed). Properties are compared leaf by leaf on their declared inputs (the
outputs for components and the stack). Secrets cannot be compared (their ciphertext is
withheld or randomized), so two secrets count as equal; a value the new plan does not know
yet shows as "(known after apply)".

A change to a property that the provider cannot update in place is flagged as a
replacement. Providers do not ship that knowledge in their SDKs, so `REPLACE_ON` is a
curated table for the resource types DEX uses, plus two general rules: a Kubernetes object's
name or namespace, and any input of a `random:` resource.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from contracts.deployment import Plan, Resource, is_secret, is_unknown

Kind = Literal["add", "delete", "update", "replace"]

COMMENT_LIMIT = 65_000
"""GitHub refuses comments over 65,536 characters; stay clear of it."""

REPLACE_ON: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("cidrBlock", "instanceTenancy"),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone", "vpcId"),
    "aws:ec2/securityGroup:SecurityGroup": ("name", "namePrefix", "vpcId", "description"),
    "aws:ec2/natGateway:NatGateway": ("subnetId", "allocationId", "connectivityType"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcId", "vpcEndpointType"),
    "aws:ec2/eip:Eip": ("domain",),
    "aws:ec2/flowLog:FlowLog": ("vpcId", "logDestination", "trafficType", "iamRoleArn"),
    "aws:eks/cluster:Cluster": (
        "name",
        "roleArn",
        "encryptionConfig",
        "kubernetesNetworkConfig",
        "accessConfig.bootstrapClusterCreatorAdminPermissions",
    ),
    "aws:eks/nodeGroup:NodeGroup": (
        "clusterName",
        "nodeGroupName",
        "nodeGroupNamePrefix",
        "amiType",
        "capacityType",
        "instanceTypes",
        "subnetIds",
        "nodeRoleArn",
        "diskSize",
    ),
    "aws:eks/addon:Addon": ("addonName", "clusterName"),
    "aws:iam/role:Role": ("name", "namePrefix"),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": ("url",),
    "aws:kms/key:Key": ("keySpec", "keyUsage", "customerMasterKeySpec"),
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix", "objectLockEnabled"),
    "aws:rds/instance:Instance": (
        "identifier",
        "engine",
        "kmsKeyId",
        "storageEncrypted",
        "username",
        "availabilityZone",
        "characterSetName",
    ),
    "aws:rds/parameterGroup:ParameterGroup": ("name", "namePrefix", "family"),
    "aws:rds/subnetGroup:SubnetGroup": ("name", "namePrefix"),
    "aws:elasticache/replicationGroup:ReplicationGroup": (
        "replicationGroupId",
        "atRestEncryptionEnabled",
        "kmsKeyId",
        "subnetGroupName",
    ),
    "aws:elasticache/subnetGroup:SubnetGroup": ("name",),
    "aws:ecr/repository:Repository": ("name",),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "namePrefix"),
    "gcp:compute/network:Network": ("name", "autoCreateSubnetworks"),
    "gcp:compute/subnetwork:Subnetwork": ("name", "network", "region"),
    "gcp:compute/router:Router": ("name", "network", "region"),
    "gcp:container/cluster:Cluster": (
        "name",
        "location",
        "network",
        "subnetwork",
        "privateClusterConfig",
        "ipAllocationPolicy",
    ),
    "gcp:container/nodePool:NodePool": (
        "name",
        "cluster",
        "location",
        "nodeConfig.machineType",
        "nodeConfig.diskSizeGb",
        "nodeConfig.spot",
    ),
    "gcp:sql/databaseInstance:DatabaseInstance": ("name", "region"),
    "gcp:storage/bucket:Bucket": ("name", "location"),
    "gcp:redis/instance:Instance": (
        "name",
        "region",
        "tier",
        "authorizedNetwork",
        "transitEncryptionMode",
        "connectMode",
    ),
    "gcp:serviceaccount/account:Account": ("accountId",),
    "gcp:kms/cryptoKey:CryptoKey": ("name", "keyRing"),
    "gcp:artifactregistry/repository:Repository": ("repositoryId", "location", "format"),
    "kubernetes:apps/v1:Deployment": ("spec.selector",),
    "kubernetes:apps/v1:StatefulSet": ("spec.selector", "spec.volumeClaimTemplates"),
    "kubernetes:apps/v1:DaemonSet": ("spec.selector",),
    "kubernetes:batch/v1:Job": ("spec.template", "spec.selector"),
    "kubernetes:helm.sh/v3:Release": ("name", "namespace"),
}


@dataclass(frozen=True)
class PropertyChange:
    path: str
    old: Any
    new: Any
    replaces: bool

    @property
    def kind(self) -> Literal["added", "removed", "changed"]:
        if self.old is _ABSENT:
            return "added"
        if self.new is _ABSENT:
            return "removed"
        return "changed"


@dataclass(frozen=True)
class ResourceChange:
    kind: Kind
    urn: str
    type: str
    changes: tuple[PropertyChange, ...] = ()
    renamed_from: str | None = None

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


@dataclass(frozen=True)
class PlanDiff:
    old_source: str
    new_source: str
    stack: str | None
    resources: tuple[ResourceChange, ...]
    output_changes: tuple[PropertyChange, ...] = field(default=())

    def counts(self) -> Counter[str]:
        return Counter(r.kind for r in self.resources)

    @property
    def empty(self) -> bool:
        return not self.resources and not self.output_changes


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT: Any = _Absent()


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf paths of a property value: `a.b[0].c` -> leaf. Secrets and empty containers are
    leaves; keys starting with `__` (engine bookkeeping) are skipped."""
    if is_secret(value) or not isinstance(value, (Mapping, list)) or not value:
        return {prefix: value} if prefix else {}
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        for key, sub in value.items():
            if str(key).startswith("__"):
                continue
            out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
    else:
        for i, sub in enumerate(value):
            out.update(flatten(sub, f"{prefix}[{i}]"))
    return out


def _same(old: Any, new: Any) -> bool:
    if is_secret(old) and is_secret(new):
        return True
    return bool(old == new)


def _replaces(type_: str, path: str) -> bool:
    if type_.startswith("random:"):
        return True
    is_object = type_.startswith("kubernetes:") and not type_.startswith("kubernetes:helm.sh/")
    if is_object and path.split("[", maxsplit=1)[0] in ("metadata.name", "metadata.namespace"):
        return True
    for prop in REPLACE_ON.get(type_, ()):
        if path == prop or path.startswith((prop + ".", prop + "[")):
            return True
    return False


def diff_properties(
    type_: str, old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[PropertyChange]:
    old_flat, new_flat = flatten(old), flatten(new)
    changes = []
    for path in sorted(old_flat.keys() | new_flat.keys()):
        a = old_flat.get(path, _ABSENT)
        b = new_flat.get(path, _ABSENT)
        if a is not _ABSENT and b is not _ABSENT and _same(a, b):
            continue
        changes.append(PropertyChange(path, a, b, _replaces(type_, path)))
    return changes


def _aliases(res: Resource) -> list[str]:
    return [a for a in res.raw.get("aliases", []) if isinstance(a, str)]


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    old_by = old.by_urn()
    new_by = new.by_urn()
    renamed: dict[str, str] = {}  # new urn -> old urn
    for urn, res in new_by.items():
        if urn in old_by:
            continue
        for alias in _aliases(res):
            if alias in old_by and alias not in new_by:
                renamed[urn] = alias
                break
    changes: list[ResourceChange] = []
    output_changes: tuple[PropertyChange, ...] = ()
    for urn, res in new_by.items():
        before_urn = urn if urn in old_by else renamed.get(urn)
        if before_urn is None:
            changes.append(ResourceChange("add", urn, res.type))
            continue
        before = old_by[before_urn]
        if res.type == "pulumi:pulumi:Stack":
            output_changes = tuple(diff_properties(res.type, before.outputs, res.outputs))
            continue
        if not res.custom:
            if before_urn != urn:
                changes.append(ResourceChange("update", urn, res.type, (), before_urn))
            continue
        props = diff_properties(res.type, before.inputs, res.inputs)
        if before.type != res.type:
            kind: Kind = "replace"
        elif not props and before_urn == urn:
            continue
        else:
            kind = "replace" if any(p.replaces for p in props) else "update"
        changes.append(
            ResourceChange(
                kind, urn, res.type, tuple(props), before_urn if before_urn != urn else None
            )
        )
    gone = set(old_by) - set(new_by) - set(renamed.values())
    for urn in gone:
        changes.append(ResourceChange("delete", urn, old_by[urn].type))
    order = {"replace": 0, "delete": 1, "update": 2, "add": 3}
    changes.sort(key=lambda c: (order[c.kind], c.type, c.urn))
    return PlanDiff(old.source, new.source, new.stack or old.stack, tuple(changes), output_changes)


# -- rendering --------------------------------------------------------------------------------

SYMBOL = {"add": "+", "delete": "-", "update": "~", "replace": "+-"}
EMOJI = {"add": "🟢 add", "delete": "🔴 delete", "update": "🟡 update", "replace": "🟣 replace"}


def show(value: Any, limit: int = 120) -> str:
    if value is _ABSENT:
        return "(absent)"
    if is_secret(value):
        return "[secret]"
    if is_unknown(value):
        return "(known after apply)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary_line(d: PlanDiff) -> str:
    c = d.counts()
    return (
        f"{c['add']} to add, {c['update']} to update, {c['replace']} to replace, "
        f"{c['delete']} to delete"
    )


def render_text(d: PlanDiff) -> str:
    lines = [f"dex diff {d.old_source} -> {d.new_source}", summary_line(d)]
    if d.empty:
        lines.append("No changes.")
    for rc in d.resources:
        note = f" (renamed from {rc.renamed_from.rsplit('::', 1)[-1]})" if rc.renamed_from else ""
        lines.append(f"{SYMBOL[rc.kind]:>2} {rc.type} {rc.name}{note}")
        for p in rc.changes:
            flag = "  [forces replacement]" if p.replaces else ""
            lines.append(f"      {p.path}: {show(p.old)} => {show(p.new)}{flag}")
    if d.output_changes:
        lines.append("Stack outputs:")
        for p in d.output_changes:
            lines.append(f"      {p.path}: {show(p.old)} => {show(p.new)}")
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(d: PlanDiff, title: str | None = None, limit: int = COMMENT_LIMIT) -> str:
    """A PR comment: a summary table first, each resource's details collapsed, trimmed with a
    visible note so the whole stays under `limit` characters."""
    c = d.counts()
    head = [f"### {title or ('Plan diff' + (f' for `{d.stack}`' if d.stack else ''))}", ""]
    head.append(f"**{summary_line(d)}**")
    head.append("")
    if d.empty:
        head.append("No changes.")
        return "\n".join(head) + "\n"
    head += ["| change | count |", "| --- | ---: |"]
    head += [f"| {EMOJI[k]} | {c[k]} |" for k in ("add", "update", "replace", "delete") if c[k]]
    head.append("")
    by_type = Counter((rc.kind, rc.type) for rc in d.resources)
    types = ["| change | resource type | count |", "| --- | --- | ---: |"]
    types += [f"| {EMOJI[k]} | `{t}` | {n} |" for (k, t), n in sorted(by_type.items())]
    blocks: list[str] = ["\n".join(types) + "\n\n"]
    for rc in d.resources:
        note = f" (renamed from `{rc.renamed_from.rsplit('::', 1)[-1]}`)" if rc.renamed_from else ""
        body = [
            f"<details><summary>{EMOJI[rc.kind]} <code>{rc.type}</code> "
            f"<b>{rc.name}</b>{note}</summary>",
            "",
        ]
        if rc.changes:
            body += ["| property | before | after | |", "| --- | --- | --- | --- |"]
            for p in rc.changes:
                flag = "forces replacement" if p.replaces else ""
                body.append(
                    f"| `{_md_cell(p.path)}` | `{_md_cell(show(p.old, 80))}` | "
                    f"`{_md_cell(show(p.new, 80))}` | {flag} |"
                )
        else:
            body.append(f"`{rc.urn}`")
        body += ["", "</details>", ""]
        blocks.append("\n".join(body))
    if d.output_changes:
        body = [
            "<details><summary>Stack outputs</summary>",
            "",
            "| output | before | after |",
            "| --- | --- | --- |",
        ]
        body += [
            f"| `{_md_cell(p.path)}` | `{_md_cell(show(p.old, 80))}` | "
            f"`{_md_cell(show(p.new, 80))}` |"
            for p in d.output_changes
        ]
        body += ["", "</details>", ""]
        blocks.append("\n".join(body))
    return _fit("\n".join(head) + "\n", blocks, limit)


def _fit(head: str, blocks: list[str], limit: int) -> str:
    out = head
    for i, block in enumerate(blocks):
        rest = len(blocks) - i
        note = (
            f"\n> ⚠️ Trimmed: {rest} more section(s) not shown to stay under GitHub's "
            f"comment limit. Run `dex diff` locally for the full diff.\n"
        )
        if len(out) + len(block) + len(note) > limit:
            return out + note
        out += block
    return out


def to_json(d: PlanDiff) -> dict[str, Any]:
    def value(v: Any) -> Any:
        if v is _ABSENT:
            return None
        return "[secret]" if is_secret(v) else v

    def prop(p: PropertyChange) -> dict[str, Any]:
        return {
            "path": p.path,
            "kind": p.kind,
            "before": value(p.old),
            "after": value(p.new),
            "replaces": p.replaces,
        }

    return {
        "old": d.old_source,
        "new": d.new_source,
        "stack": d.stack,
        "summary": {k: d.counts()[k] for k in ("add", "update", "replace", "delete")},
        "resources": [
            {
                "kind": rc.kind,
                "urn": rc.urn,
                "type": rc.type,
                "renamed_from": rc.renamed_from,
                "changes": [prop(p) for p in rc.changes],
            }
            for rc in d.resources
        ],
        "outputs": [prop(p) for p in d.output_changes],
    }


def component_tree(plan: Plan) -> dict[str | None, list[Resource]]:
    """Children per parent URN (None for roots), in plan order."""
    tree: dict[str | None, list[Resource]] = {}
    for res in plan:
        tree.setdefault(res.parent, []).append(res)
    return tree
