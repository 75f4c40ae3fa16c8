"""What every command shares: the consoles, the input-error exit, the atomic write."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


class Env(StrEnum):
    dev = "dev"
    prod = "prod"


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary sibling and rename, so a reader never sees half a plan."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
