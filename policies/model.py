"""The shape of a DEX policy: plain rules over (resource type, properties), with metadata.

A rule never imports program code: it reads a resource's type and its input properties
(camelCase, as the engine and `pulumi stack export` carry them) and yields one message per
problem. The same rule objects feed the CrossGuard pack (`policies/__main__.py`) and the
offline runner (`policies/runner.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from contracts.wire import SECRET_SIG, SIG_KEY, UNKNOWN, is_secret

Severity = Literal["low", "medium", "high", "critical"]
Enforcement = Literal["mandatory", "advisory", "disabled"]
Environment = Literal["dev", "prod"]
ENVIRONMENTS: tuple[Environment, ...] = ("dev", "prod")

__all__ = ["SECRET_SIG", "SIG_KEY", "UNKNOWN", "is_secret"]

ALWAYS: Mapping[Environment, Enforcement] = {"dev": "mandatory", "prod": "mandatory"}
"""Security rules that hold everywhere: public exposure, encryption, authentication."""
PROD: Mapping[Environment, Enforcement] = {"dev": "advisory", "prod": "mandatory"}
"""Resilience and hardening that prod must have and dev may skip to stay cheap."""
ADVISE: Mapping[Environment, Enforcement] = {"dev": "advisory", "prod": "advisory"}
"""Good practice reported everywhere, blocking nowhere."""


class Unknowable(Exception):
    """A property a rule needs is not known yet (a preview before the resource exists)."""


@dataclass(frozen=True)
class PackConfig:
    """Pack-level settings (CrossGuard: `--policy-pack-config`)."""

    required_tags: tuple[str, ...] = ("project", "environment", "owner")
    """Tag (AWS) / label (GCP) keys every taggable resource must carry."""
    allowed_instance_classes: tuple[str, ...] = ()
    """RDS classes / Cloud SQL tiers allowed; empty allows any."""
    trusted_accounts: tuple[str, ...] = ()
    """AWS accounts (12 digits) the stack may grant to besides its own (AWS-IAM-006): the
    organisation's other accounts it shares with on purpose."""


@dataclass(frozen=True)
class Subject:
    """One resource as a rule sees it."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    provider_props: Mapping[str, Any] = field(default_factory=dict)
    config: PackConfig = field(default_factory=PackConfig)

    def get(self, path: str, default: Any = None) -> Any:
        """The property at a dotted path (`vpcConfig.endpointPublicAccess`); `default` when
        absent; raises Unknowable when the value is not known yet."""
        value: Any = self.props
        for part in path.split("."):
            if value == UNKNOWN:
                raise Unknowable(path)
            if not isinstance(value, Mapping) or part not in value:
                return default
            value = value[part]
        if value == UNKNOWN:
            raise Unknowable(path)
        return value


@dataclass(frozen=True)
class StackSubject:
    """Every resource of a stack, for rules that look across resources."""

    resources: Sequence[Subject]
    config: PackConfig = field(default_factory=PackConfig)

    def of_type(self, *types: str) -> list[Subject]:
        return [r for r in self.resources if r.type in types]


ResourceCheck = Callable[[Subject], Iterable[str]]
StackCheck = Callable[[StackSubject], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    description: str
    severity: Severity
    enforcement: Mapping[Environment, Enforcement]
    frameworks: tuple[str, ...]
    """Benchmark controls the rule implements, e.g. `CIS-AWS-1.4.0:2.1.2`."""
    remediation: str
    types: tuple[str, ...]
    """Resource types the rule reads (for a stack rule: the types it looks across)."""
    check: ResourceCheck | None = None
    stack_check: StackCheck | None = None

    @property
    def scope(self) -> Literal["resource", "stack"]:
        return "stack" if self.stack_check is not None else "resource"

    @property
    def name(self) -> str:
        """The CrossGuard policy name: lowercase id."""
        return self.id.lower()


RULES: list[Rule] = []


def _register(
    id: str,
    title: str,
    severity: Severity,
    enforcement: Mapping[Environment, Enforcement],
    types: Sequence[str],
    remediation: str,
    frameworks: Sequence[str],
    description: str,
    fn: Callable[..., Any],
    stack: bool,
) -> None:
    RULES.append(
        Rule(
            id,
            title,
            description or (fn.__doc__ or title).strip(),
            severity,
            enforcement,
            tuple(frameworks),
            remediation,
            tuple(types),
            check=None if stack else fn,
            stack_check=fn if stack else None,
        )
    )


def resource_rule(
    id: str,
    title: str,
    severity: Severity,
    enforcement: Mapping[Environment, Enforcement],
    types: Sequence[str],
    remediation: str,
    frameworks: Sequence[str] = (),
    description: str = "",
) -> Callable[[ResourceCheck], ResourceCheck]:
    """Register a per-resource rule; the decorated function yields one message per problem."""

    def register(fn: ResourceCheck) -> ResourceCheck:
        _register(
            id,
            title,
            severity,
            enforcement,
            types,
            remediation,
            frameworks,
            description,
            fn,
            stack=False,
        )
        return fn

    return register


def stack_rule(
    id: str,
    title: str,
    severity: Severity,
    enforcement: Mapping[Environment, Enforcement],
    types: Sequence[str],
    remediation: str,
    frameworks: Sequence[str] = (),
    description: str = "",
) -> Callable[[StackCheck], StackCheck]:
    """Register a stack rule; the decorated function yields (urn, message) per problem."""

    def register(fn: StackCheck) -> StackCheck:
        _register(
            id,
            title,
            severity,
            enforcement,
            types,
            remediation,
            frameworks,
            description,
            fn,
            stack=True,
        )
        return fn

    return register


# -- helpers the rules share --------------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def decoded(value: Any) -> Any:
    """Provider config arrives JSON-encoded in state; decode it when it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def policy_statements(document: Any) -> Iterator[Mapping[str, Any]]:
    """The statements of an IAM policy document (a JSON string or a mapping)."""
    doc = decoded(document)
    if not isinstance(doc, Mapping):
        return
    for stmt in as_list(doc.get("Statement")):
        if isinstance(stmt, Mapping):
            yield stmt


WORLD = ("0.0.0.0/0", "::/0")
