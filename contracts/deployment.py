"""The deployment document: its one reader and its one writer.

A `dex plan` file and a real `pulumi stack export` are both deployment version 3 documents:
`{"version": 3, "deployment": {"resources": [...]}}` where each resource has `urn`, `type`,
`custom` and, as available, `id`, `parent`, `provider`, `inputs`, `outputs`, `dependencies`,
`propertyDependencies`. Everything that reads one (the diff, the policy runner, the
validators, the CLI, the tests) goes through `load_plan`/`parse_plan`; everything that writes
one (synthesis, the CLI, the tests) goes through `document` and `dump_plan`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.wire import SECRET_SIG, SIG_KEY, UNKNOWN, is_secret, is_unknown

__all__ = ["SECRET_SIG", "SIG_KEY", "UNKNOWN", "is_secret", "is_unknown"]


class PlanError(Exception):
    """A plan or export file that cannot be read, with what is wrong and where."""


def redacted_secret(unknown: bool = False) -> dict[str, str]:
    """A secret as it stands in a plan: marked as secret, its value never written."""
    return {SIG_KEY: SECRET_SIG, "ciphertext": "[unknown]" if unknown else "[withheld]"}


@dataclass(frozen=True)
class Resource:
    """One resource of a plan or export."""

    urn: str
    type: str
    custom: bool
    id: str | None
    parent: str | None
    provider: str | None
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    dependencies: tuple[str, ...]
    protect: bool
    raw: Mapping[str, Any]

    @property
    def name(self) -> str:
        """The logical name: the last segment of the URN."""
        return self.urn.rsplit("::", 1)[-1]

    @property
    def props(self) -> Mapping[str, Any]:
        """What a resource was declared with: its inputs, or its outputs for a component."""
        return self.inputs if self.custom else self.outputs


@dataclass(frozen=True)
class Plan:
    """A parsed plan: its resources in file order, and where it came from."""

    resources: tuple[Resource, ...]
    source: str
    stack: str | None

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def by_urn(self) -> dict[str, Resource]:
        return {r.urn: r for r in self.resources}

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def type_counts(self) -> Counter[str]:
        return Counter(r.type for r in self.resources)

    def document(self) -> dict[str, Any]:
        """This plan as a deployment document again (each resource as it was read)."""
        return document(dict(r.raw) for r in self.resources)


def document(
    resources: Iterable[Mapping[str, Any]],
    manifest: Mapping[str, Any] | None = None,
    dex: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A deployment version 3 document of `resources` (in the order given), with the
    checkpoint's `manifest` and DEX's own `dex` section when given."""
    deployment: dict[str, Any] = {"resources": [dict(r) for r in resources]}
    if manifest is not None:
        deployment["manifest"] = dict(manifest)
    doc: dict[str, Any] = {"version": 3, "deployment": deployment}
    if dex is not None:
        doc["dex"] = dict(dex)
    return doc


def dump_plan(plan: Mapping[str, Any]) -> str:
    """The canonical text of a plan: sorted keys, two-space indent, trailing newline."""
    return json.dumps(plan, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load_plan(path: str | Path) -> Plan:
    """Read a `dex plan` file or a `pulumi stack export` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PlanError(f"{path}: is a directory, expected a plan or export JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: cannot be read ({exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(
            f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); expected "
            "the output of `dex plan --format json` or `pulumi stack export`"
        ) from None
    return parse_plan(doc, str(path))


def parse_plan(doc: object, source: str = "<plan>") -> Plan:
    """Check the shape of a deployment document and return its typed view (errors name
    `source` first, when there is one)."""
    where = f"{source}: " if source else ""
    if not isinstance(doc, Mapping):
        raise PlanError(f"{where}expected a JSON object, got {type(doc).__name__}")
    version = doc.get("version")
    if version != 3:
        raise PlanError(
            f"{where}expected a deployment of version 3 (as `pulumi stack export` writes), "
            f"got version {version!r}"
        )
    deployment = doc.get("deployment")
    if not isinstance(deployment, Mapping):
        raise PlanError(f"{where}missing the `deployment` object")
    raw_resources = deployment.get("resources", [])
    if raw_resources is None:  # an export of a stack that has never been deployed
        raw_resources = []
    if not isinstance(raw_resources, list):
        raise PlanError(f"{where}`deployment.resources` must be a list")
    resources = []
    for i, raw in enumerate(raw_resources):
        if not isinstance(raw, Mapping):
            raise PlanError(f"{where}deployment.resources[{i}] is not an object")
        for key in ("urn", "type"):
            if not isinstance(raw.get(key), str):
                raise PlanError(f"{where}deployment.resources[{i}] has no string `{key}`")
        for key in ("inputs", "outputs"):
            if not isinstance(raw.get(key, {}), Mapping):
                raise PlanError(f"{where}deployment.resources[{i}].{key} is not an object")
        resources.append(
            Resource(
                urn=raw["urn"],
                type=raw["type"],
                custom=bool(raw.get("custom", False)),
                id=raw.get("id") or None,
                parent=raw.get("parent") or None,
                provider=raw.get("provider") or None,
                inputs=raw.get("inputs") or {},
                outputs=raw.get("outputs") or {},
                dependencies=tuple(raw.get("dependencies") or ()),
                protect=bool(raw.get("protect", False)),
                raw=raw,
            )
        )
    dex = doc.get("dex")
    stack = dex.get("stack") if isinstance(dex, Mapping) else None
    if stack is None:
        stack = next((r.urn.split("::")[0].removeprefix("urn:pulumi:") for r in resources), None)
    return Plan(tuple(resources), source, stack)
