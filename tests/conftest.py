"""The test harness: synthesize any stack under the mock engine and hand back its plan.

`synth(stack, **overrides)` runs the real program once, with its own `set_mocks`, and returns
the typed plan; `plans` caches the four shipped stacks for the session (plain data, so tests
that only read it can share it). Nothing calls `set_mocks` at import time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.deployment import Plan, Resource, parse_plan
from toolchain.synth import synthesize

STACKS = ("dev", "prod", "gcp-dev", "gcp-prod")
ROOT = Path(__file__).resolve().parent.parent

Synth = Callable[..., Plan]


def _flatten_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    return {f"dex:{k}": v for k, v in overrides.items()}


@pytest.fixture
def synth() -> Synth:
    """Synthesize a stack, with optional `dex:*` overrides: `synth("prod", database={...})`."""

    def run(stack: str, **overrides: Any) -> Plan:
        doc = synthesize(stack, overrides=_flatten_overrides(overrides))
        return parse_plan(json.loads(json.dumps(doc)), stack)

    return run


_CACHE: dict[str, Plan] = {}
_DOCS: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="session")
def plan_docs() -> dict[str, dict[str, Any]]:
    """The four shipped stacks' plan documents (JSON data), synthesized once per session.
    Copy before changing one (`copy.deepcopy`)."""
    for stack in STACKS:
        if stack not in _DOCS:
            _DOCS[stack] = json.loads(json.dumps(synthesize(stack)))
    return _DOCS


@pytest.fixture(scope="session")
def plans(plan_docs: dict[str, dict[str, Any]]) -> dict[str, Plan]:
    """The four shipped stacks' plans, synthesized once per session."""
    for stack in STACKS:
        if stack not in _CACHE:
            _CACHE[stack] = parse_plan(plan_docs[stack], stack)
    return _CACHE


def only(plan: Plan, type_: str, name_part: str = "") -> Resource:
    """The single resource of a type (whose name contains `name_part`)."""
    found = [r for r in plan.of_type(type_) if name_part in r.name]
    assert len(found) == 1, (
        f"expected one {type_} named *{name_part}*, got {[r.name for r in found]}"
    )
    return found[0]


def named(plan: Plan, type_: str, name_part: str = "") -> list[Resource]:
    return [r for r in plan.of_type(type_) if name_part in r.name]


@pytest.fixture
def tmp_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project folder that `dex` reads stack files from."""
    monkeypatch.setenv("DEX_PROJECT_DIR", str(tmp_path))
    return tmp_path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a `slow` test first (in their order), then the rest: under `make test`'s
    parallel workers (`--dist loadfile --no-loadscope-reorder`) the long runs start first and
    the many short files fill in around them, instead of one long file running alone at the
    end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order kept within
