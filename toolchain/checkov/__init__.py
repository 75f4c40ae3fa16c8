"""Checkov on Pulumi plans: convert (`convert.py`), run (`run.py`), accept (`accepted.py`) and
merge its verdicts into the pack's report (`merged` here).

A Checkov failure that `policies/checkov-accepted.yaml` does not accept for the stack becomes
a mandatory violation of the report, with its `CKV_*` id and the resource's URN. Checkov's
open-source run carries no severities (they come from Prisma Cloud), so a finding takes the
highest severity of the DEX rules that check the same thing (`policies/checkov-equivalents.json`)
and `medium` when none does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from policies import all_rules
from policies.runner import (
    SEVERITY_ORDER,
    Accepted,
    ExternalScan,
    Report,
    Violation,
    checkov_equivalents,
)
from toolchain.checkov.accepted import Acceptance, AcceptedError, load, reason_for
from toolchain.checkov.convert import ConversionError, Converted, convert
from toolchain.checkov.run import VERSION, CheckovError, Scan, scan

CheckovFailure = (AcceptedError, ConversionError, CheckovError)
"""What `with_checkov` raises: a bad accepted-findings file, a type without a table, or
Checkov missing or failing. Each message says what to do."""

DEFAULT_SEVERITY = "medium"


def severities(
    equivalents: Mapping[str, Sequence[str]], rule_severity: Mapping[str, str]
) -> dict[str, str]:
    """CKV id -> the highest severity among the DEX rules equivalent to it."""
    out: dict[str, str] = {}
    for rule_id, checks in equivalents.items():
        severity = rule_severity.get(rule_id)
        if severity is None:
            continue
        for check in checks:
            if check not in out or SEVERITY_ORDER[severity] < SEVERITY_ORDER[out[check]]:
                out[check] = severity
    return out


def merged(
    report: Report,
    converted: Converted,
    scan: Scan,
    stack: str | None,
    accepted: Sequence[Acceptance],
    severity: Mapping[str, str],
) -> Report:
    """`report` with Checkov's verdicts on the same plan: unaccepted failures as mandatory
    violations, the rest as the report's `scan` account."""
    violations = list(report.violations)
    kept: list[Accepted] = []
    for f in scan.failed:
        reason = reason_for(accepted, f.check_id, stack, f.urn)
        if reason is not None:
            kept.append(Accepted(f.check_id, f.urn, f.type, f.title, reason))
            continue
        violations.append(
            Violation(f.check_id, severity.get(f.check_id, DEFAULT_SEVERITY), "mandatory",
                      f.urn, f.type, f"{f.title} (Checkov, {f.framework})")
        )  # fmt: skip
    violations.sort(
        key=lambda v: (v.enforcement != "mandatory", SEVERITY_ORDER[v.severity], v.policy_id, v.urn)
    )
    not_scanned = tuple(sorted((r, len(u)) for r, u in converted.not_scanned.items()))
    external = ExternalScan(
        tool=f"checkov {VERSION}",
        checks=len(scan.findings),
        passed=len(scan.passed),
        accepted=tuple(sorted(kept, key=lambda a: (a.policy_id, a.urn))),
        not_scanned=not_scanned,
        seconds=scan.seconds,
    )
    return dataclasses.replace(report, violations=tuple(violations), scan=external)


def stack_of(doc: Mapping[str, Any]) -> str | None:
    """The stack a plan or export belongs to, from its URNs (`urn:pulumi:<stack>::...`)."""
    resources = (doc.get("deployment") or {}).get("resources") or []
    for res in resources:
        urn = res.get("urn", "") if isinstance(res, Mapping) else ""
        if urn.startswith("urn:pulumi:"):
            return str(urn.split(":")[2])
    return None


def with_checkov(report: Report, doc: Mapping[str, Any], source: str) -> Report:
    """`report` (the pack's, on `doc`) with Checkov's verdicts on the same plan merged in."""
    from stacks.stackfiles import list_stacks

    accepted = load(stacks=list_stacks())
    converted = convert(doc, source)
    result = scan({"plan": converted})["plan"]
    severity = severities(checkov_equivalents(), {r.id: r.severity for r in all_rules()})
    return merged(report, converted, result, stack_of(doc), accepted, severity)
