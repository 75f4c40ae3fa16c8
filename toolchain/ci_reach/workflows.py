"""Every workflow together: each job checked for each matrix entry, then what only the
workflows as a whole show (prebuilt images pushed by a job the deploy `needs`, every stack
deployed, a prod stack only after its cloud's dev stack and behind an `environment`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolchain.ci_reach.job import Job
from toolchain.ci_reach.matrix import matrix_entries
from toolchain.ci_reach.targets import Stack, read_stacks


def _workflows(root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    folder = root / ".github" / "workflows"
    for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
        yield path.name, doc


def _events(on: Any) -> set[str]:
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return {str(e) for e in on}
    if isinstance(on, Mapping):
        return {str(e) for e in on}
    return set()


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else [str(n) for n in needs]


def _upstream(jobs: Mapping[str, Any], job_id: str) -> set[str]:
    seen: set[str] = set()
    todo = _needs(jobs.get(job_id) or {})
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += _needs(jobs.get(name) or {})
    return seen


@dataclass
class _Deploys:
    """What the jobs do to the stacks, for the checks across jobs."""

    deployed: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """stack -> the (workflow, job) that run `pulumi up` on it."""
    pushed: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """(workflow, job) -> the stacks whose images it pushes."""
    prebuilt_ups: list[tuple[str, str, str]] = field(default_factory=list)
    """(workflow, job, stack) of each `up` that deploys prebuilt images."""

    def record(self, name: str, job: Job) -> None:
        for op in job.ops:
            if op.command == "up" and isinstance(op.stack, str):
                self.deployed.setdefault(op.stack, []).append((name, job.job_id))
                if job.prebuilt_before(op.index):
                    self.prebuilt_ups.append((name, job.job_id, op.stack))
            if op.command == "images" and isinstance(op.stack, str):
                self.pushed.setdefault((name, job.job_id), set()).add(op.stack)


def _check_jobs(
    workflows: Mapping[str, dict[str, Any]], stacks: Mapping[str, Stack], deploys: _Deploys
) -> list[str]:
    """Every job for every matrix entry (recording what it deploys and pushes)."""
    findings: list[str] = []
    for name, doc in workflows.items():
        events = _events(doc.get("on"))
        jobs = doc.get("jobs") or {}
        for job_id, job in jobs.items():
            entries = matrix_entries(job)
            if entries is None:
                findings.append(
                    f"{name}: job {job_id}: its matrix is computed at run time; list the stacks"
                )
                continue
            for matrix in entries:
                checked = Job(name, job_id, job, matrix, events, doc.get("env") or {})
                findings += checked.check(stacks)
                deploys.record(name, checked)
    return findings


def _prebuilt_images_pushed(
    workflows: Mapping[str, dict[str, Any]], deploys: _Deploys
) -> list[str]:
    """A deploy of prebuilt images `needs` a job that pushes them."""
    findings: list[str] = []
    for name, job_id, stack_name in deploys.prebuilt_ups:
        jobs = workflows[name].get("jobs") or {}
        if not any(
            stack_name in deploys.pushed.get((name, j), set()) for j in _upstream(jobs, job_id)
        ):
            findings.append(
                f"{name}: job {job_id} deploys prebuilt images of {stack_name}, but no job it "
                f"`needs` pushes them (`dex images push --stack {stack_name}`)"
            )
    return findings


def _deploy_order(
    workflows: Mapping[str, dict[str, Any]], stacks: Mapping[str, Stack], deploys: _Deploys
) -> list[str]:
    """Every stack is deployed; a prod stack behind an `environment`, after its cloud's dev."""
    findings: list[str] = []
    deployed = deploys.deployed
    for stack in stacks.values():
        if stack.name not in deployed:
            findings.append(f"no workflow deploys stack {stack.name} (`pulumi up`)")
            continue
        if stack.environment != "prod":
            continue
        devs = {
            s.name for s in stacks.values() if s.cloud == stack.cloud and s.environment == "dev"
        }
        for name, job_id in deployed[stack.name]:
            jobs = workflows[name].get("jobs") or {}
            if not jobs[job_id].get("environment"):
                findings.append(
                    f"{name}: job {job_id} deploys {stack.name} with no `environment` "
                    f"(its required reviewers approve a production deployment)"
                )
            before = _upstream(jobs, job_id)
            deploys_dev = {
                dev for dev in devs for wf, j in deployed.get(dev, []) if wf == name and j in before
            }
            if devs and not deploys_dev:
                findings.append(
                    f"{name}: job {job_id} deploys {stack.name} without first deploying "
                    f"{' or '.join(sorted(devs))} (`needs`)"
                )
    return findings


def check_workflows(root: Path) -> list[str]:
    """Every problem of CI's reach to the stacks, as plain strings (empty: none)."""
    stacks = read_stacks(root)
    workflows = dict(_workflows(root))
    deploys = _Deploys()
    findings = _check_jobs(workflows, stacks, deploys)
    findings += _prebuilt_images_pushed(workflows, deploys)
    findings += _deploy_order(workflows, stacks, deploys)
    return list(dict.fromkeys(findings))
