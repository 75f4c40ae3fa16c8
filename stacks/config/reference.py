"""Reference documentation, generated from each cloud's model and the profiles
(docs/config.md embeds it and a test keeps the two equal)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from stacks.config.load import load_config
from stacks.config.sections import NodeGroupConfig
from stacks.config.stack import STACK_MODELS, Cloud


def _leaf_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel) and ann is not NodeGroupConfig:
            rows += _leaf_fields(ann, f"{key}.")
        else:
            text = " ".join(line.strip() for line in (info.description or "").splitlines())
            rows.append((key, text))
    return rows


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, (dict, list)):
        return "`" + json.dumps(value, separators=(", ", ": ")) + "`"
    return f"`{value}`"


def reference_markdown(cloud: Cloud) -> str:
    """The table of every `dex:*` key of one cloud with its dev and prod defaults."""
    region = "eu-west-1" if cloud == "aws" else "europe-west1"
    base: dict[str, Any] = {"cloud": cloud, "region": region}
    if cloud == "gcp":
        base["gcp_project"] = "example-project"
    configs = {env: load_config({**base, "environment": env}) for env in ("dev", "prod")}
    lines = ["| key | dev | prod | meaning |", "| --- | --- | --- | --- |"]
    for key, doc in _leaf_fields(STACK_MODELS[cloud]):
        values = []
        for env in ("dev", "prod"):
            value: Any = configs[env]
            for part in key.split("."):
                value = getattr(value, part)
            values.append(value)
        if key in ("cloud", "region", "gcp_project"):
            shown = ["(required)", "(required)"]
        elif key == "environment":
            shown = ["`dev`", "`prod`"]
        else:
            shown = [_shown(v) for v in values]
        lines.append(f"| `dex:{key}` | {shown[0]} | {shown[1]} | {doc.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
