"""The rules as a CrossGuard policy pack, for `pulumi preview --policy-pack policies`.

`build_policies(env)` adapts each rule to a `ResourceValidationPolicy` or
`StackValidationPolicy` with the rule's metadata (severity, framework, tags, remediation)
and the enforcement of `env`. Building the policies starts nothing; only constructing the
`PolicyPack` (in `__main__.py`) starts the gRPC server the CLI talks to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import PolicyComplianceFramework, Severity

from policies import all_rules
from policies.model import Environment, PackConfig, Rule, StackSubject, Subject, Unknowable
from policies.runner import applies

ReportViolation = Callable[[str, str | None], None]

CONFIG_SCHEMA = PolicyConfigSchema(
    properties={
        "requiredTags": {
            "type": "array",
            "items": {"type": "string"},
            "default": list(PackConfig().required_tags),
            "description": "Tag/label keys every taggable resource must carry.",
        },
        "allowedInstanceClasses": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Allowed RDS classes / Cloud SQL tiers; empty allows any.",
        },
        "trustedAccounts": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[0-9]{12}$"},
            "default": [],
            "description": "AWS accounts the stacks may grant to besides their own "
            "(AWS-IAM-006): the organisation's accounts shared with on purpose.",
        },
    }
)
CONFIGURABLE = {"TAG-001", "TAG-002", "AWS-RDS-010", "GCP-SQL-008", "AWS-IAM-006"}


class PackConfigError(ValueError):
    """A pack setting of the wrong shape; the message names the setting."""


def pack_config(raw: Mapping[str, Any] | None) -> PackConfig:
    raw = raw or {}
    default = PackConfig()
    trusted = tuple(str(a) for a in raw.get("trustedAccounts") or ())
    bad = [a for a in trusted if not re.fullmatch(r"\d{12}", a)]
    if bad:
        raise PackConfigError(f"trustedAccounts: {', '.join(bad)} is not a 12-digit AWS account id")
    return PackConfig(
        required_tags=tuple(raw.get("requiredTags") or default.required_tags),
        allowed_instance_classes=tuple(raw.get("allowedInstanceClasses") or ()),
        trusted_accounts=trusted,
    )


def _framework(rule: Rule) -> PolicyComplianceFramework | None:
    if not rule.frameworks:
        return None
    benchmark, _, control = rule.frameworks[0].partition(":")
    family, _, version = benchmark.rpartition("-")
    return PolicyComplianceFramework(
        name=family, version=version, reference=control, specification=", ".join(rule.frameworks)
    )


def _resource_validator(rule: Rule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    assert rule.check is not None
    check = rule.check

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if not applies(rule, args.resource_type):
            return
        provider_props = dict(args.provider.props) if args.provider is not None else {}
        subject = Subject(
            type=args.resource_type,
            name=args.name,
            urn=args.urn,
            props=args.props,
            provider_props=provider_props,
            config=pack_config(args.get_config()),
        )
        try:
            for message in check(subject):
                report(message, None)
        except Unknowable:
            return  # judged again at `pulumi up`, when the value is known

    return validate


def _stack_validator(rule: Rule) -> Callable[[StackValidationArgs, ReportViolation], None]:
    assert rule.stack_check is not None
    check = rule.stack_check

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        config = pack_config(args.get_config())
        subjects = [
            Subject(
                type=r.resource_type,
                name=r.name,
                urn=r.urn,
                props=r.props,
                provider_props=dict(r.provider.props) if r.provider else {},
                config=config,
            )
            for r in args.resources
        ]
        for urn, message in check(StackSubject(subjects, config)):
            report(message, urn)

    return validate


def build_policies(env: Environment) -> list[ResourceValidationPolicy | StackValidationPolicy]:
    policies: list[ResourceValidationPolicy | StackValidationPolicy] = []
    for rule in all_rules():
        common: dict[str, Any] = {
            "name": rule.name,
            "description": f"{rule.title}. {rule.description}",
            "enforcement_level": EnforcementLevel(rule.enforcement[env]),
            "display_name": rule.title,
            "severity": Severity(rule.severity),
            "framework": _framework(rule),
            "tags": [rule.id.split("-")[0].lower(), *rule.frameworks],
            "remediation_steps": rule.remediation,
            "config_schema": CONFIG_SCHEMA if rule.id in CONFIGURABLE else None,
        }
        if rule.check is not None:
            policies.append(ResourceValidationPolicy(validate=_resource_validator(rule), **common))
        else:
            policies.append(StackValidationPolicy(validate=_stack_validator(rule), **common))
    return policies


def pack_config_file(env: Environment) -> dict[str, dict[str, Any]]:
    """The `--policy-pack-config` file for `env` (`policies/config/<env>.json`): each
    policy's enforcement level, and the defaults of the configurable ones."""
    defaults = {k: v["default"] for k, v in CONFIG_SCHEMA.properties.items()}
    return {
        rule.name: {
            "enforcementLevel": rule.enforcement[env],
            **(defaults if rule.id in CONFIGURABLE else {}),
        }
        for rule in all_rules()
    }
