"""`dex plan`: synthesize a stack offline and print or record its resource plan."""

from __future__ import annotations

import json
import sys
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.tree import Tree

from dex.commands.common import err, fail, out, write_atomically

if TYPE_CHECKING:
    from contracts.deployment import Plan, Resource


class PlanFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


def plan(
    stack: Annotated[str, typer.Argument(help="Stack name: dev, prod, gcp-dev, gcp-prod, ...")],
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the plan (JSON) to this file.")
    ] = None,
    fmt: Annotated[PlanFormat, typer.Option("--format", "-f", help="What to print.")] = (
        PlanFormat.table
    ),
    waves: Annotated[
        bool,
        typer.Option(
            "--waves",
            help="Print the creation waves of a first deploy (what each waits for) and the "
            "first-deploy checks; exit 1 when a check fails.",
        ),
    ] = False,
) -> None:
    """Synthesize STACK offline under Pulumi's mock engine and record its resource plan."""
    from contracts.deployment import dump_plan, parse_plan
    from stacks.config import ConfigError, load_config
    from stacks.stackfiles import StackFileError, read_stack_file
    from toolchain.synth import synthesize

    try:
        stack_file = read_stack_file(stack)
        raw = {k[4:]: v for k, v in stack_file.config.items() if str(k).startswith("dex:")}
        load_config(raw, stack=stack)  # fail on bad config before the engine starts
        doc = synthesize(stack)
    except (StackFileError, ConfigError) as exc:
        fail(str(exc))
    text = dump_plan(doc)
    if out_file is not None:
        write_atomically(out_file, text)
    if waves:
        _print_waves(doc, stack, stack_file.config, as_json=fmt is PlanFormat.json)
        return
    if fmt is PlanFormat.json:
        if out_file is None:
            sys.stdout.write(text)
        return
    parsed = parse_plan(doc, stack)
    if fmt is PlanFormat.markdown:
        sys.stdout.write(_plan_markdown(parsed))
        return
    _print_plan_table(parsed)
    if out_file is not None:
        err.print(f"plan written to {out_file}")


def _print_waves(doc: dict[str, object], stack: str, config: object, *, as_json: bool) -> None:
    """The first deploy of STACK, wave by wave, then what the first-deploy checks find."""
    from contracts.deployment import parse_plan
    from toolchain.first_deploy import check_plan, describe_waves

    parsed = parse_plan(doc, stack)
    meta = doc.get("dex") or {}
    invokes = [
        {"token": t, "provider": p}
        for t, p in (meta.get("invokes", []) if isinstance(meta, dict) else [])
    ]
    described = describe_waves(parsed)
    findings = check_plan(parsed, config, invokes=invokes)  # type: ignore[arg-type]
    if as_json:
        report = {
            "stack": stack,
            "waves": described,
            "findings": [{"check": f.check, "urn": f.urn, "message": f.message} for f in findings],
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        table = Table(title=f"first deploy of {stack}: {len(described)} waves")
        table.add_column("wave", justify="right")
        table.add_column("creates")
        table.add_column("waits for (from the wave before)")
        for wave in described:
            items = wave["resources"]
            names = [f"{r['name']} ({r['type'].split(':')[-1]})" for r in items]
            waits = sorted({w for r in items for w in r["waits_for"]})
            shown = names if len(names) <= 8 else [*names[:8], f"... {len(names) - 8} more"]
            waited = waits if len(waits) <= 6 else [*waits[:6], f"... {len(waits) - 6} more"]
            table.add_row(str(wave["wave"]), "\n".join(shown), "\n".join(waited))
        out.print(table)
        if findings:
            for finding in findings:
                err.print(f"[red]{finding}[/]", highlight=False, soft_wrap=True)
        else:
            out.print(
                "first-deploy checks: engine rules, plugin paths, creation order, "
                "reachability, TLS trust, cold start: no findings"
            )
    if findings:
        raise typer.Exit(1)


def _print_plan_table(plan: Plan) -> None:
    from toolchain.diff import component_tree

    tree_of = component_tree(plan)
    roots = tree_of.get(None, [])
    for root in roots:
        tree = Tree(f"[bold]{root.type}[/] {root.name}")
        _add_children(tree, root.urn, tree_of)
        out.print(tree)
    counts = Table("resource type", "count", title=f"{len(plan)} resources in {plan.stack}")
    for type_, n in sorted(plan.type_counts().items()):
        counts.add_row(type_, str(n))
    out.print(counts)


def _add_children(tree: Tree, urn: str, tree_of: dict[str | None, list[Resource]]) -> None:
    children = tree_of.get(urn, [])
    leaves: Counter[str] = Counter()
    for child in children:
        if child.custom and child.urn not in tree_of:
            leaves[child.type] += 1
            continue
        branch = tree.add(f"[bold]{child.type}[/] {child.name}")
        _add_children(branch, child.urn, tree_of)
    for type_, n in sorted(leaves.items()):
        tree.add(f"{type_} x{n}" if n > 1 else type_)


def _plan_markdown(plan: Plan) -> str:
    lines = [
        f"### Plan for `{plan.stack}`: {len(plan)} resources",
        "",
        "| resource type | count |",
        "| --- | ---: |",
    ]
    lines += [f"| `{t}` | {n} |" for t, n in sorted(plan.type_counts().items())]
    return "\n".join(lines) + "\n"
