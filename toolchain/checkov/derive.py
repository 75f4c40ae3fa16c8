"""Derive the conversion tables (`metadata/<provider>.json`) from the providers' own metadata.

The bridge writes `provider/cmd/pulumi-resource-<provider>/bridge-metadata.json` into the
pulumi-aws and pulumi-gcp repositories when it builds a provider. From it, per Pulumi token:
- the **Terraform resource type**: `renames.resources` (token -> type) in the older layout
  (the newest pulumi-aws copy stored), `auto-aliasing.resources.<type>.current` in the newer
  (pulumi-gcp);
- the **renamed properties**: `renames.renamedProperties` (older layout) maps, per resource
  and per nested type, a Pulumi property to its Terraform field where the two differ (a list
  Pulumi pluralised: `lifecycleRules` -> `lifecycle_rule`). A nested type belongs to the
  resource of its module whose name is its longest prefix (`ClusterVpcConfig` -> `Cluster`);
- the **blocks** (newer layout): `fields`, each with `maxItemsOne` and nested `elem.fields`, from
  which the conversion knows the pluralised names and the one-element lists.
From the installed Python SDK (`pulumi_aws`, `pulumi_gcp`), the properties whose type is a
map (`Mapping[str, ...]`, as tags and labels): their keys are data, never renamed.

What the metadata does not hold is in `TABLE`, each entry with its reason. Run:

    python -m toolchain.checkov.derive aws bridge-metadata.json --commit <sha> \\
        --tokens tokens.txt > toolchain/checkov/metadata/aws.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import warnings
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

TABLE: dict[str, dict[str, str]] = {
    # pulumi-aws v7 gave the S3 resources' V2 tokens back their plain names; the stored
    # metadata predates it, so the renames come from the V2 token serving the same resource
    **{
        f"aws:s3/{name[0].lower()}{name[1:]}:{name}": {
            "renames_of": f"aws:s3/{name[0].lower()}{name[1:]}V2:{name}V2",
            "why": "pulumi-aws v7 renamed the S3 V2 resources to these tokens",
        }
        for name in (
            "Bucket",
            "BucketAcl",
            "BucketLifecycleConfiguration",
            "BucketLogging",
            "BucketServerSideEncryptionConfiguration",
            "BucketVersioning",
        )
    },
    # added to pulumi-aws after the stored metadata: the Terraform type from the resource's
    # documentation (registry.terraform.io/providers/hashicorp/aws)
    **{
        token: {"terraform": tf, "why": "added after the stored metadata; type from its docs"}
        for token, tf in (
            ("aws:eks/accessEntry:AccessEntry", "aws_eks_access_entry"),
            (
                "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
                "aws_eks_access_policy_association",
            ),
            (
                "aws:eks/podIdentityAssociation:PodIdentityAssociation",
                "aws_eks_pod_identity_association",
            ),
            ("aws:guardduty/detectorFeature:DetectorFeature", "aws_guardduty_detector_feature"),
            ("aws:rds/clusterSnapshotCopy:ClusterSnapshotCopy", "aws_rds_cluster_snapshot_copy"),
        )
    },
}
"""Tokens the stored metadata does not map, and where their entry comes from instead."""


def _fields(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The `fields` tree reduced to what the conversion reads: maxItemsOne and nested fields."""
    out: dict[str, Any] = {}
    for name, meta in sorted(tree.items()):
        entry: dict[str, Any] = {"maxItemsOne": bool(meta.get("maxItemsOne", False))}
        nested = (meta.get("elem") or {}).get("fields")
        if nested:
            entry["fields"] = _fields(nested)
        out[name] = entry
    return out


def _module_and_name(token: str) -> tuple[str, str]:
    _, middle, name = token.split(":")
    return middle.split("/")[0], name


def renamed_by_resource(
    renamed: Mapping[str, Mapping[str, str]], resources: Iterable[str]
) -> dict[str, dict[str, str]]:
    """`renames.renamedProperties` flattened per resource: a nested type's renames go to the
    resource of its module whose name is the longest prefix of the type's name."""
    owners: dict[str, list[tuple[str, str]]] = {}
    for token in resources:
        module, name = _module_and_name(token)
        owners.setdefault(module, []).append((name, token))
    out: dict[str, dict[str, str]] = {}
    for key, pairs in sorted(renamed.items()):
        module, name = _module_and_name(key)
        candidates = [(n, t) for n, t in owners.get(module, []) if name.startswith(n)]
        if key in resources:
            owner = key
        elif candidates:
            owner = max(candidates, key=lambda c: len(c[0]))[1]
        else:
            continue
        for prop, field in pairs.items():
            out.setdefault(owner, {}).setdefault(prop, field)
    return out


def _inputs_of(module: ModuleType) -> ModuleType | None:
    try:
        return importlib.import_module(module.__name__ + "._inputs")
    except ImportError:
        return None


def sdk_maps(token: str) -> list[str]:
    """The Pulumi properties of `token` (at any depth) whose SDK type is a map."""
    provider, middle, name = token.split(":")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = importlib.import_module(f"pulumi_{provider}.{middle.split('/')[0]}")
    inputs = _inputs_of(module)
    found: set[str] = set()
    seen: set[type] = set()
    pending = [getattr(module, f"{name}Args", None)]
    while pending:
        cls = pending.pop()
        if cls is None or cls in seen:
            continue
        seen.add(cls)
        for attr, prop in vars(cls).items():
            if not isinstance(prop, property):
                continue
            annotation = str(prop.fget.__annotations__.get("return"))
            if annotation.startswith("typing.Union[typing.Mapping["):
                found.add(getattr(prop.fget, "_pulumi_name", attr))
            pending += [
                getattr(inputs, ref, None)
                for ref in re.findall(r"ForwardRef\('(\w+Args)'\)", annotation)
            ]
    return sorted(found)


def derive(
    metadata: Mapping[str, Any], tokens: Iterable[str], source: Mapping[str, str]
) -> dict[str, Any]:
    """The conversion table for `tokens` out of one provider's bridge metadata."""
    aliasing = (metadata.get("auto-aliasing") or {}).get("resources") or {}
    renames = metadata.get("renames") or {}
    by_token: dict[str, str] = {m["current"]: tf for tf, m in aliasing.items() if "current" in m}
    by_token.update(renames.get("resources") or {})
    renamed = renamed_by_resource(renames.get("renamedProperties") or {}, by_token)
    resources: dict[str, Any] = {}
    missing: list[str] = []
    table: dict[str, Any] = {}
    for token in sorted(set(tokens)):
        extra = TABLE.get(token, {})
        origin = extra.get("renames_of", token)
        tf = by_token.get(origin) or extra.get("terraform")
        if tf is None:
            missing.append(token)
            continue
        if extra:
            table[token] = dict(extra)
        resources[token] = {
            "terraform": tf,
            "fields": _fields((aliasing.get(tf) or {}).get("fields") or {}),
            "renamed": renamed.get(origin, {}),
            "maps": sdk_maps(token),
        }
    return {"source": dict(source), "resources": resources, "table": table, "missing": missing}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("provider", help="aws or gcp")
    parser.add_argument("metadata", help="a bridge-metadata.json file")
    parser.add_argument("--commit", required=True, help="the commit the file was read at")
    parser.add_argument("--tokens", required=True, help="a file of Pulumi tokens, one a line")
    args = parser.parse_args(argv)
    with open(args.metadata, encoding="utf-8") as f:
        metadata = json.load(f)
    with open(args.tokens, encoding="utf-8") as f:
        tokens = [line.strip() for line in f if line.strip()]
    source = {
        "repository": f"pulumi/pulumi-{args.provider}",
        "path": f"provider/cmd/pulumi-resource-{args.provider}/bridge-metadata.json",
        "commit": args.commit,
    }
    json.dump(derive(metadata, tokens, source), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
