"""What a job does: its steps (the actions that matter and `run:` scripts, with what the
workflow determines substituted), the operations they run against a stack (a pulumi
command, `kubectl`, `dex ... --stack`, `dex images push`), and the labels it runs on."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolchain.ci_reach.expressions import UNKNOWN, as_text, condition, resolve, run_script
from toolchain.ci_reach.targets import PULUMI_COMMANDS


@dataclass
class Step:
    """A step that matters to the checks (`index`: its place in the job's `steps`), with its
    `with:` inputs resolved or, for a `run:` step, its script."""

    index: int
    kind: str  # pulumi | aws | gcp | gcloud | run
    step: Mapping[str, Any]
    with_: dict[str, Any] = field(default_factory=dict)
    script: str = ""


@dataclass
class Op:
    """One thing a job does against a stack: a pulumi command, `kubectl` or `dex --stack`."""

    index: int
    command: str
    stack: Any


_PULUMI_RUN = re.compile(r"\bpulumi\s+(" + "|".join(PULUMI_COMMANDS) + r")\b([^\n]*)")
_STACK_FLAG = re.compile(r"(?:--stack|-s)(?:=|\s+)(\S+)")
_DEX_STACK = re.compile(r"\bdex\s+[a-z][^\n]*?--stack(?:=|\s+)(\S+)")
_DEX_IMAGES = re.compile(r"\bdex\s+images\s+push\b")
PREBUILT = re.compile(
    r"pulumi\s+config\s+set\s+--path\s+['\"]?dex:platform\.image_source['\"]?\s+registry\b"
)
"""How an in-network job tells the program to deploy the images pushed before it."""
_KUBECTL = re.compile(r"\bkubectl\b")


def _shell_value(token: str, env: Mapping[str, Any]) -> Any:
    token = token.strip("\"'")
    var = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", token)
    if var:
        return env.get(var.group(1), UNKNOWN)
    return token if "$" not in token else UNKNOWN


def classify_steps(steps: list[Any], matrix: Mapping[str, Any]) -> list[Step]:
    """The steps that may run for this matrix entry (one whose `if:` is known false is
    skipped): the pulumi, AWS, Google auth and setup-gcloud actions, and `run:` scripts."""
    out: list[Step] = []
    for index, step in enumerate(steps or []):
        if not isinstance(step, Mapping) or condition(step.get("if"), matrix) is False:
            continue
        uses = str(step.get("uses", ""))
        with_ = {k: resolve(v, matrix) for k, v in (step.get("with") or {}).items()}
        if uses.startswith("pulumi/actions@"):
            out.append(Step(index, "pulumi", step, with_))
        elif uses.startswith("aws-actions/configure-aws-credentials@"):
            out.append(Step(index, "aws", step, with_))
        elif uses.startswith("google-github-actions/auth@"):
            out.append(Step(index, "gcp", step, with_))
        elif uses.startswith("google-github-actions/setup-gcloud@"):
            out.append(Step(index, "gcloud", step, with_))
        elif "run" in step:
            out.append(Step(index, "run", step, script=run_script(step["run"], matrix)))
    return out


def operations(steps: list[Step], env: Mapping[str, Any]) -> list[Op]:
    """What the steps do against a stack, in order; the stack from `--stack`/`-s` or the
    job's `STACK` variable."""
    ops: list[Op] = []
    for s in steps:
        if s.kind == "pulumi":
            command = as_text(s.with_.get("command"))
            if command in PULUMI_COMMANDS:
                ops.append(Op(s.index, command, as_text(s.with_.get("stack-name"))))
        elif s.kind == "run":
            for match in _PULUMI_RUN.finditer(s.script):
                flag = _STACK_FLAG.search(match.group(2))
                stack = _shell_value(flag.group(1), env) if flag else env.get("STACK", UNKNOWN)
                ops.append(Op(s.index, match.group(1), stack))
            for match in _DEX_STACK.finditer(s.script):
                line = s.script[s.script.rfind("\n", 0, match.start()) + 1 : match.end()]
                command = "images" if _DEX_IMAGES.search(line) else "dex"
                ops.append(Op(s.index, command, _shell_value(match.group(1), env)))
            if _KUBECTL.search(s.script):
                ops.append(Op(s.index, "kubectl", env.get("STACK", UNKNOWN)))
    return ops


def runner_labels(runs_on: Any, matrix: Mapping[str, Any]) -> list[Any]:
    """A job's `runs-on` as a list of labels (a runner group's `labels` included)."""
    if isinstance(runs_on, Mapping):
        runs_on = runs_on.get("labels") or []
    value = resolve(runs_on, matrix) if isinstance(runs_on, str) else runs_on
    items = value if isinstance(value, list) else [value]
    return [as_text(resolve(item, matrix)) for item in items]
