"""The project's stacks: which `Pulumi.<stack>.yaml` files exist and what config they hold."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT = "dex"
PROJECT_DIR = Path(__file__).resolve().parent.parent


def default_project_dir() -> Path:
    """Where the stack files live: `$DEX_PROJECT_DIR`, else this checkout."""
    env = os.environ.get("DEX_PROJECT_DIR")
    return Path(env) if env else PROJECT_DIR


class StackFileError(Exception):
    """A stack that does not exist, or a stack file that cannot be read."""


@dataclass(frozen=True)
class StackFile:
    name: str
    path: Path
    config: Mapping[str, Any]
    """Every config key as written, namespaced (`dex:cloud`, `pulumi:...`)."""


def list_stacks(project_dir: Path | None = None) -> list[str]:
    root = project_dir or default_project_dir()
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def read_stack_file(name: str, project_dir: Path | None = None) -> StackFile:
    root = project_dir or default_project_dir()
    path = root / f"Pulumi.{name}.yaml"
    if not path.is_file():
        known = list_stacks(root)
        raise StackFileError(
            f"unknown stack '{name}': no {path.name} in {root}; "
            f"known stacks: {', '.join(known) if known else '(none)'}"
        )
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, Mapping):
        raise StackFileError(f"{path}: expected a mapping with a `config:` section")
    config = doc.get("config") or {}
    if not isinstance(config, Mapping):
        raise StackFileError(f"{path}: `config:` must be a mapping of keys to values")
    for key, value in config.items():
        if ":" not in str(key):
            raise StackFileError(
                f"{path}: config key '{key}' has no namespace; DEX keys are written `dex:{key}`"
            )
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            raise StackFileError(
                f"{path}: {key} is an encrypted (secure) value, which offline synthesis cannot "
                "decrypt; DEX reads no secrets from stack config (it generates them)"
            )
    return StackFile(name=name, path=path, config=dict(config))


def plugin_dir(project_dir: Path | None = None) -> Path:
    """The folder the engine starts the program and its plugins in: `main` of Pulumi.yaml,
    relative to the project (the project itself when `main` is unset). Relative paths a
    plugin receives (a docker-build context, a Dockerfile) resolve from here, not from the
    project root (pulumi/pulumi#7061)."""
    root = project_dir or PROJECT_DIR
    path = root / "Pulumi.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise StackFileError(f"{path}: cannot be read ({exc})") from None
    main = doc.get("main") if isinstance(doc, Mapping) else None
    return (root / str(main)).resolve() if main else root.resolve()


def build_context(project_dir: Path | None = None) -> str:
    """The project root as a path relative to `plugin_dir`: what the program hands
    docker-build as its context (`..` with `main: stacks/`), the same on every machine."""
    root = (project_dir or PROJECT_DIR).resolve()
    return os.path.relpath(root, plugin_dir(project_dir)).replace(os.sep, "/")
