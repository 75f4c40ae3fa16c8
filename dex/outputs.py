"""A deployed stack's outputs, read through the Pulumi CLI (`pulumi stack output --json`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any


class StackOutputError(Exception):
    """The outputs could not be read; the message says why and what to do instead."""


def stack_outputs(stack: str, without_cli: str) -> dict[str, Any]:
    """The stack's outputs, secrets shown. `without_cli`: what to do when there is no Pulumi
    CLI (the command's own flags)."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise StackOutputError(
            f"reading stack {stack!r}'s outputs needs the Pulumi CLI; without it, {without_cli}"
        )
    out = subprocess.run(  # noqa: S603 (the Pulumi CLI with fixed arguments)
        [pulumi, "stack", "output", "--json", "--show-secrets", "--stack", stack],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise StackOutputError(f"pulumi stack output --stack {stack} failed: {out.stderr.strip()}")
    outputs: dict[str, Any] = json.loads(out.stdout)
    return outputs
