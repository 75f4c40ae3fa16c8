"""`dex policy`: run the policy pack over plans, stack exports and stacks, offline."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from dex.commands.common import Env, fail


class Scanner(StrEnum):
    checkov = "checkov"


class PolicyFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    sarif = "sarif"


policy_app = typer.Typer(
    help="The policy pack: check plans, exports and stacks offline.", no_args_is_help=True
)


@policy_app.command("check")
def policy_check(
    target: Annotated[
        str, typer.Argument(help="A `dex plan` file, a `pulumi stack export` file, or a stack.")
    ],
    env: Annotated[
        Env | None,
        typer.Option("--env", help="Enforcement profile; default: the plan's own environment."),
    ] = None,
    fmt: Annotated[PolicyFormat, typer.Option("--format", "-f")] = PolicyFormat.text,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A pack config JSON (as for --policy-pack-config)."),
    ] = None,
    title: Annotated[str | None, typer.Option(help="Heading of the markdown report.")] = None,
    with_: Annotated[
        list[Scanner] | None,
        typer.Option(
            "--with",
            help="Also run this scanner over the plan and merge its findings (checkov: the "
            "plan as a Terraform plan and Kubernetes manifests; policies/checkov-accepted.yaml "
            "lists the accepted findings).",
        ),
    ] = None,
) -> None:
    """Run every rule over TARGET. Exit 1 when a mandatory rule (or, with --with checkov, an
    unaccepted Checkov check) is violated, 2 on bad input."""
    from policies.runner import (
        InputError,
        check,
        infer_environment,
        render_json,
        render_markdown,
        render_sarif,
        render_text,
    )

    doc, artifact = _load_target(target)
    try:
        environment = env.value if env else infer_environment(doc)
    except InputError as exc:
        fail(f"{target}: {exc}")
    if environment is None:
        fail(f"{target}: cannot tell dev from prod; pass --env dev or --env prod")
    try:
        report = check(doc, environment, _pack_config(config), source=target)  # type: ignore[arg-type]
    except InputError as exc:
        fail(f"{target}: {exc}")
    if with_ and Scanner.checkov in with_:
        report = _with_checkov(report, doc, target)
    if fmt is PolicyFormat.json:
        sys.stdout.write(render_json(report))
    elif fmt is PolicyFormat.markdown:
        sys.stdout.write(render_markdown(report, title))
    elif fmt is PolicyFormat.sarif:
        sys.stdout.write(render_sarif(report, artifact))
    else:
        sys.stdout.write(render_text(report))
    raise typer.Exit(0 if report.passed else 1)


def _with_checkov(report: Any, doc: dict[str, object], target: str) -> Any:
    from toolchain.checkov import CheckovFailure, with_checkov

    try:
        return with_checkov(report, doc, target)
    except CheckovFailure as exc:
        fail(f"{target}: {exc}")


@policy_app.command("rules")
def policy_rules() -> None:
    """Print the table of rules (markdown), as in docs/policies.md."""
    from policies.runner import rules_markdown

    sys.stdout.write(rules_markdown())


def _load_target(target: str) -> tuple[dict[str, object], str]:
    """(deployment document, artifact path for SARIF) from a file or a stack name."""
    from stacks.stackfiles import StackFileError, list_stacks

    path = Path(target)
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{target}: cannot be read ({exc})")
        except json.JSONDecodeError as exc:
            fail(f"{target}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})")
        if not isinstance(doc, dict):
            fail(f"{target}: expected a JSON object (a plan or a stack export)")
        return doc, target
    if target in list_stacks():
        from stacks.config import ConfigError
        from toolchain.synth import synthesize

        try:
            return synthesize(target), f"Pulumi.{target}.yaml"
        except (StackFileError, ConfigError) as exc:
            fail(str(exc))
    fail(
        f"{target}: no such file, and no stack of that name (known stacks: "
        f"{', '.join(list_stacks())})"
    )


def _pack_config(path: Path | None) -> object:
    from policies.crossguard import PackConfigError, pack_config

    if path is None:
        return pack_config(None)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"{path}: not a readable JSON pack config ({exc})")
    settings: dict[str, object] = {}
    for entry in raw.values() if isinstance(raw, dict) else []:
        if isinstance(entry, dict):
            for key in ("requiredTags", "allowedInstanceClasses", "trustedAccounts"):
                if key in entry:
                    settings[key] = entry[key]
    try:
        return pack_config(settings)
    except PackConfigError as exc:
        fail(f"{path}: {exc}")
