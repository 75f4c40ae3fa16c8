"""Derive the conversion tables (`metadata/<provider>.json`) from a bridged provider's own
metadata: `provider/cmd/pulumi-resource-<provider>/bridge-metadata.json` in the pulumi-aws and
pulumi-gcp repositories, which the bridge writes when it builds the provider.

From it the conversion takes, per Pulumi resource token:
- the Terraform resource type (`auto-aliasing.resources.<tf type>.current` is the token; where
  the file has `renames.resources` (token -> tf type), that too);
- the Terraform fields that are blocks or lists (`fields`), each with `maxItemsOne`: true means
  Pulumi flattened a one-element Terraform list into an object, false means Pulumi pluralised
  the field's name (`lifecycle_rule` -> `lifecycleRules`); nested blocks under `elem.fields`.

Only the tokens asked for are kept (the files are megabytes). The table records which file and
commit it came from. Run, for example:

    python -m toolchain.checkov.derive gcp bridge-metadata.json --commit <sha> \\
        --tokens tokens.txt > toolchain/checkov/metadata/gcp.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any


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


def derive(
    metadata: Mapping[str, Any], tokens: Iterable[str], source: Mapping[str, str]
) -> dict[str, Any]:
    """The conversion table for `tokens` out of one provider's bridge metadata."""
    aliasing = (metadata.get("auto-aliasing") or {}).get("resources") or {}
    by_token: dict[str, str] = {
        meta["current"]: tf for tf, meta in aliasing.items() if "current" in meta
    }
    by_token.update((metadata.get("renames") or {}).get("resources") or {})
    resources: dict[str, Any] = {}
    missing: list[str] = []
    for token in sorted(set(tokens)):
        tf = by_token.get(token)
        if tf is None:
            missing.append(token)
            continue
        resources[token] = {
            "terraform": tf,
            "fields": _fields((aliasing.get(tf) or {}).get("fields") or {}),
        }
    return {"source": dict(source), "resources": resources, "missing": missing}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
