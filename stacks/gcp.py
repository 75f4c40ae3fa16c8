"""The GCP composition. The GCP components (issue: GCP foundation) plug in here; until they
land, a GCP stack registers its provider with the platform's labels and nothing else."""

from __future__ import annotations

from typing import Any

import pulumi_gcp as gcp

from stacks.config import StackConfig


def build_gcp(cfg: StackConfig) -> dict[str, Any]:
    gcp.Provider(
        "gcp",
        project=cfg.gcp_project,
        region=cfg.region,
        default_labels=cfg.base_tags(),
    )
    return {
        "cloud": "gcp",
        "environment": cfg.environment,
        "region": cfg.region,
        "project": cfg.gcp_project,
    }
