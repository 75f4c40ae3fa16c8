"""`dex stacks` and `dex config-reference`: the project's stacks and the `dex:*` keys they set."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from dex.commands.common import fail, out


def config_reference(
    cloud: Annotated[str, typer.Argument(help="aws or gcp")],
) -> None:
    """Print the table of `dex:*` keys with their dev and prod defaults (as in docs/config.md)."""
    from stacks.config import reference_markdown

    if cloud not in ("aws", "gcp"):
        fail(f"cloud must be 'aws' or 'gcp', got {cloud!r}")
    sys.stdout.write(reference_markdown(cloud))  # type: ignore[arg-type]


def list_stacks_cmd() -> None:
    """List the project's stacks and what each targets."""
    from stacks.stackfiles import list_stacks, read_stack_file

    table = Table("stack", "cloud", "environment", "region")
    for name in list_stacks():
        cfg = read_stack_file(name).config
        table.add_row(
            name,
            str(cfg.get("dex:cloud", "?")),
            str(cfg.get("dex:environment", "?")),
            str(cfg.get("dex:region", "?")),
        )
    out.print(table)
