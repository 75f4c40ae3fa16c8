"""One job of a workflow, for one matrix entry: where it runs, what it does against a stack,
and what is wrong with that (the runner, a pull request that mutates, images built in place,
the cloud credentials)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from toolchain.ci_reach.credentials import check_aws, check_gcp
from toolchain.ci_reach.expressions import UNKNOWN, as_text, resolve
from toolchain.ci_reach.steps import (
    PREBUILT,
    Op,
    Step,
    classify_steps,
    operations,
    runner_labels,
)
from toolchain.ci_reach.targets import (
    DEFAULT_JOB_TIMEOUT_MINUTES,
    HOSTED_PREFIXES,
    MUTATING,
    PR_EVENTS,
    PULUMI_COMMANDS,
    RUNNER_PREFIX,
    Stack,
    runner_label,
)

_MISSING_TOOLS = re.compile(r"(?:^|[\s;&|(])(make|sudo|apt-get|apt)\s")


class Job:
    def __init__(
        self,
        workflow: str,
        job_id: str,
        job: Mapping[str, Any],
        matrix: Mapping[str, Any],
        events: set[str],
        workflow_env: Mapping[str, Any],
    ) -> None:
        self.job_id = job_id
        self.job = job
        self.matrix = matrix
        self.events = events
        where = f"job {job_id}"
        if matrix.get("stack"):
            where += f" [{matrix['stack']}]"
        elif matrix:
            where += f" {json.dumps(matrix, sort_keys=True)}"
        self.where = f"{workflow}: {where}"
        self.env = {
            k: as_text(resolve(v, matrix))
            for k, v in {**workflow_env, **(job.get("env") or {})}.items()
        }
        self.steps = classify_steps(job.get("steps") or [], matrix)
        self.ops = operations(self.steps, self.env)
        self.labels = runner_labels(job.get("runs-on"), matrix)
        timeout = resolve(job.get("timeout-minutes", DEFAULT_JOB_TIMEOUT_MINUTES), matrix)
        self.timeout_s = int(timeout) * 60 if isinstance(timeout, int | float) else None

    def before(self, index: int, kind: str) -> list[Step]:
        return [s for s in self.steps if s.kind == kind and s.index < index]

    def prebuilt_before(self, index: int) -> bool:
        """Does a step before `index` set the program to deploy prebuilt images?"""
        return any(PREBUILT.search(s.script) for s in self.before(index, "run"))

    def check(self, stacks: Mapping[str, Stack]) -> list[str]:
        findings: list[str] = []
        in_network = any(isinstance(x, str) and x.startswith(RUNNER_PREFIX) for x in self.labels)
        if in_network:
            for s in self.steps:
                for tool in sorted({m.group(1) for m in _MISSING_TOOLS.finditer(s.script)}):
                    findings.append(
                        f"{self.where}: step {s.index + 1} runs `{tool}`, which the in-network "
                        f"runner (the ARC runner image, unprivileged) does not have"
                    )
        for op in self.ops:
            findings += self.check_op(op, stacks)
        return findings

    def check_op(self, op: Op, stacks: Mapping[str, Stack]) -> list[str]:
        what = f"{self.where}: `{op.command}`"
        if op.stack is UNKNOWN or not op.stack:
            return [f"{what}: cannot tell which stack it targets"]
        if op.stack not in stacks:
            return [f"{what} targets {op.stack!r}, which is no Pulumi.<stack>.yaml"]
        stack = stacks[op.stack]
        what = f"{self.where}: `{op.command}` on stack {stack.name}"
        hosted = [x for x in self.labels if isinstance(x, str) and x.startswith(HOSTED_PREFIXES)]
        out = self.check_runner(op, stack, what, hosted)
        if op.command in MUTATING and self.events & PR_EVENTS:
            out.append(f"{what}: a pull request must not change the stack (preview only)")
        if op.command in PULUMI_COMMANDS and not hosted and not self.prebuilt_before(op.index):
            out.append(
                f"{what} runs the program with the apps' images built in place (the default), "
                f"unlike the deploy and with no Docker daemon in-network: set `pulumi config "
                f"set --path dex:platform.image_source registry` before it (a deploy after a "
                f"job that runs `dex images push --stack {stack.name}`)"
            )
        want = "DEPLOY" if op.command in ("up", "destroy", "images") else "READONLY"
        if op.command in ("refresh", "kubectl", "dex"):
            want = ""
        if stack.cloud == "gcp":
            out += check_gcp(self, op, stack, what, want)
        else:
            out += check_aws(self, op, stack, what, want)
        return out

    def check_runner(self, op: Op, stack: Stack, what: str, hosted: list[Any]) -> list[str]:
        """`op` runs on the stack's in-network runner, or (a `dex images push`) on a
        GitHub-hosted one."""
        label = runner_label(stack.name)
        if op.command == "images":
            # builds with Docker, which the in-network runners lack; the registries are public
            # endpoints, so a GitHub-hosted runner pushes with the stack's deploy role
            if not hosted:
                shown = ", ".join(str(x) for x in self.labels)
                return [
                    f"{what} runs on [{shown}]: `dex images push` needs Docker, which only a "
                    f"GitHub-hosted runner has (the in-network runners run no Docker daemon)"
                ]
        elif hosted:
            return [
                f"{what} runs on the GitHub-hosted runner {hosted[0]}, which cannot reach the "
                f"private cluster endpoint: use `runs-on: {label}` (the stack's in-network runner)"
            ]
        elif "self-hosted" in self.labels:
            return [
                f"{what} asks for `self-hosted`, a label runner scale sets do not carry (they "
                f"match on their name alone): the job would never start; use `runs-on: {label}`"
            ]
        elif self.labels != [label]:
            shown = ", ".join(str(x) for x in self.labels)
            return [f"{what} runs on [{shown}], not on the in-network runner {label}"]
        return []
