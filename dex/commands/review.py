"""`dex diff` and `dex review`: what a change does to a plan, and the PR comment about it."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from dex.commands.common import Env, fail


class DiffFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


def diff(
    old: Annotated[Path, typer.Argument(help="The base plan or `pulumi stack export` file.")],
    new: Annotated[Path, typer.Argument(help="The head plan or `pulumi stack export` file.")],
    fmt: Annotated[DiffFormat, typer.Option("--format", "-f")] = DiffFormat.text,
    title: Annotated[str | None, typer.Option(help="Heading of the markdown comment.")] = None,
) -> None:
    """Compare two plans: resources added, removed, updated or replaced, property by property."""
    from contracts.deployment import PlanError, load_plan
    from toolchain.diff import diff_plans, render_markdown, render_text, to_json

    try:
        before, after = load_plan(old), load_plan(new)
    except PlanError as exc:
        fail(str(exc))
    result = diff_plans(before, after)
    if fmt is DiffFormat.json:
        sys.stdout.write(json.dumps(to_json(result), indent=2, sort_keys=True) + "\n")
    elif fmt is DiffFormat.markdown:
        sys.stdout.write(render_markdown(result, title))
    else:
        sys.stdout.write(render_text(result))


def review(
    stack: Annotated[str, typer.Argument(help="The stack the two plans belong to.")],
    base: Annotated[Path, typer.Argument(help="The base branch's plan (or export).")],
    head: Annotated[Path, typer.Argument(help="The pull request's plan.")],
    env: Annotated[Env | None, typer.Option("--env")] = None,
    sha: Annotated[str | None, typer.Option(help="The head commit, shown in the title.")] = None,
    checkov: Annotated[
        bool,
        typer.Option(
            "--with-checkov",
            help="Also run Checkov over the head plan and show its findings in the comment.",
        ),
    ] = False,
) -> None:
    """Print the PR comment for STACK: plan diff and policy results, one comment."""
    from contracts.deployment import PlanError, load_plan
    from dex.review import build_comment
    from policies.runner import InputError, check, infer_environment
    from toolchain.diff import diff_plans

    try:
        before, after = load_plan(base), load_plan(head)
    except PlanError as exc:
        fail(str(exc))
    doc = after.document()
    try:
        environment = env.value if env else infer_environment(doc)
        if environment is None:
            fail(f"{head}: cannot tell dev from prod; pass --env")
        report = check(doc, environment, source=str(head))
    except InputError as exc:
        fail(f"{head}: {exc}")
    if checkov:
        from toolchain.checkov import CheckovFailure, with_checkov

        try:
            report = with_checkov(report, doc, str(head))
        except CheckovFailure as exc:
            fail(f"{head}: {exc}")
    diff = diff_plans(before, after)
    sys.stdout.write(build_comment(stack, diff, report, head_sha=sha))
