"""What CI must reach: the stacks (`Pulumi.<stack>.yaml`), the runner scale set inside each
one's network, the suffix of its repository variables, and the limits a job must fit in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

FIRST_DEPLOY_SECONDS = 3 * 3600
"""How long a first `pulumi up` of a stack may take (cluster, node groups, databases, every
chart): the AWS session and the job's timeout must cover it."""
DEFAULT_AWS_SESSION_SECONDS = 3600
"""aws-actions/configure-aws-credentials' default `role-duration-seconds`."""
DEFAULT_JOB_TIMEOUT_MINUTES = 360
"""GitHub's default `timeout-minutes` of a job."""
HOSTED_PREFIXES = ("ubuntu-", "windows-", "macos-")
RUNNER_PREFIX = "dex-"
MUTATING = frozenset({"up", "destroy", "refresh"})
PULUMI_COMMANDS = ("preview", "up", "refresh", "destroy")
PR_EVENTS = frozenset({"pull_request", "pull_request_target"})


def runner_label(stack: str) -> str:
    """The runner scale set (and its only label) inside `stack`'s network."""
    return f"{RUNNER_PREFIX}{stack}"


def stack_key(stack: str) -> str:
    """The suffix of a stack's repository variables: `gcp-prod` -> `GCP_PROD`."""
    return stack.upper().replace("-", "_")


@dataclass(frozen=True)
class Stack:
    name: str
    cloud: str
    environment: str


def read_stacks(root: Path) -> dict[str, Stack]:
    """Every `Pulumi.<stack>.yaml` at the repository root: its cloud and environment."""
    out: dict[str, Stack] = {}
    for path in sorted(root.glob("Pulumi.*.yaml")):
        name = path.name[len("Pulumi.") : -len(".yaml")]
        config = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("config") or {}
        out[name] = Stack(
            name, str(config.get("dex:cloud", "aws")), str(config.get("dex:environment", "dev"))
        )
    return out
