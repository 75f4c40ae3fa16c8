"""The engine's own rules: every custom resource and every invoke has an explicit provider of
its own package, or a default provider the stack's `pulumi:disable-default-providers` still
allows (`["*"]` denies every package but `pulumi`, `pulumi-python` included)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from contracts.deployment import Plan
from toolchain.first_deploy.model import Finding


def disabled_default_providers(stack_config: Mapping[str, Any]) -> set[str]:
    raw = stack_config.get("pulumi:disable-default-providers") or []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = [p.strip() for p in raw.split(",")]
    return {str(p) for p in raw}


def _denied(package: str, disabled: set[str]) -> bool:
    # the engine never denies its own `pulumi` package (stack, providers, root)
    return package != "pulumi" and ("*" in disabled or package in disabled)


def engine_rules(
    plan: Plan, stack_config: Mapping[str, Any], invokes: Iterable[Mapping[str, Any]] = ()
) -> list[Finding]:
    """Explicit providers where default providers are disabled; provider references that
    point at a provider of the resource's own package."""
    disabled = disabled_default_providers(stack_config)
    by_urn = plan.by_urn()
    findings: list[Finding] = []
    for res in plan:
        if not res.custom or res.type.startswith("pulumi:providers:"):
            continue
        package = res.type.split(":", 1)[0]
        if not res.provider:
            if _denied(package, disabled):
                findings.append(
                    Finding(
                        "engine", res.urn,
                        f"uses the default `{package}` provider, which "
                        f"`pulumi:disable-default-providers: {sorted(disabled)}` denies: "
                        "registration fails, even in preview",
                    )
                )  # fmt: skip
            continue
        provider_urn = res.provider.rsplit("::", 1)[0]
        provider = by_urn.get(provider_urn)
        if provider is None:
            findings.append(
                Finding("engine", res.urn, f"its provider {provider_urn} is not in the plan")
            )
        elif provider.type != f"pulumi:providers:{package}":
            findings.append(
                Finding(
                    "engine", res.urn,
                    f"a `{package}` resource with a `{provider.type}` provider",
                )
            )  # fmt: skip
    for call in invokes:
        token = str(call.get("token", ""))
        package = token.split(":", 1)[0]
        if not call.get("provider") and _denied(package, disabled):
            findings.append(
                Finding(
                    "engine", f"invoke::{token}",
                    f"invoke `{token}` uses the default `{package}` provider, which the stack "
                    "disables",
                )
            )  # fmt: skip
    return findings
