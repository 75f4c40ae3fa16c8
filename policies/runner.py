"""The offline runner: the pack's rules over a plan or a `pulumi stack export`, no CLI needed.

`check(doc, env)` takes a deployment document (what `dex plan` writes, or what `pulumi stack
export` prints), evaluates every rule with the enforcement of `env`, and returns a `Report`.
Renderers give text, JSON, markdown (a PR comment) and SARIF 2.1.0 (code scanning).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from contracts.deployment import PlanError, parse_plan
from policies import all_rules
from policies.model import (
    ENVIRONMENTS,
    Environment,
    PackConfig,
    Rule,
    StackSubject,
    Subject,
    Unknowable,
    decoded,
)

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


class InputError(Exception):
    """The document is not a deployment (plan or stack export)."""


@dataclass(frozen=True)
class Violation:
    policy_id: str
    severity: str
    enforcement: str
    urn: str
    type: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Accepted:
    """A finding of another scanner (Checkov) accepted with a reason."""

    policy_id: str
    urn: str
    type: str
    message: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class ExternalScan:
    """What another scanner (Checkov) did beside the pack: its failures not accepted are
    among the report's violations (mandatory); this keeps the rest of its account."""

    tool: str
    checks: int
    """Verdicts given (passed + failed)."""
    passed: int
    accepted: tuple[Accepted, ...]
    not_scanned: tuple[tuple[str, int], ...]
    """(reason, resources) the scanner was not given: never silently skipped."""
    seconds: float

    def summary(self, violations: Sequence[Violation]) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "checks": self.checks,
            "passed": self.passed,
            "failed": sum(1 for v in violations if v.policy_id.startswith("CKV")),
            "accepted": [a.as_dict() for a in self.accepted],
            "not_scanned": dict(self.not_scanned),
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class Report:
    environment: Environment
    source: str
    resources: int
    rules: int
    violations: tuple[Violation, ...]
    unknown: tuple[tuple[str, str], ...] = field(default=())
    """(policy id, urn) pairs a rule could not judge: a value unknown until apply."""
    scan: ExternalScan | None = None
    """Checkov's account, when it ran (`dex policy check --with checkov`)."""

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "mandatory"]

    @property
    def passed(self) -> bool:
        return not self.mandatory

    def summary(self) -> dict[str, Any]:
        by_severity = Counter(v.severity for v in self.violations)
        by_enforcement = Counter(v.enforcement for v in self.violations)
        return {
            "environment": self.environment,
            "resources": self.resources,
            "rules": self.rules,
            "violations": len(self.violations),
            "mandatory": by_enforcement.get("mandatory", 0),
            "advisory": by_enforcement.get("advisory", 0),
            "by_severity": {s: by_severity.get(s, 0) for s in SEVERITY_ORDER},
            "unknown": len(self.unknown),
            "passed": self.passed,
        }


def resources_of(doc: Any) -> list[Mapping[str, Any]]:
    """The resources of a deployment document, read by its one reader."""
    try:
        return [r.raw for r in parse_plan(doc, source="").resources]
    except PlanError as exc:
        raise InputError(str(exc)) from None


def infer_environment(doc: Mapping[str, Any]) -> Environment | None:
    """The environment a plan/export belongs to: its stack outputs, else the provider tags."""
    for res in resources_of(doc):
        if res["type"] == "pulumi:pulumi:Stack":
            env = (res.get("outputs") or {}).get("environment")
            if env in ENVIRONMENTS:
                return env  # type: ignore[no-any-return]
    for res in resources_of(doc):
        if res["type"] in ("pulumi:providers:aws", "pulumi:providers:gcp"):
            inputs = res.get("inputs") or {}
            tags = decoded(inputs.get("defaultTags") or "{}") or {}
            labels = decoded(inputs.get("defaultLabels") or "{}") or {}
            env = (tags.get("tags") or {}).get("environment") or labels.get("environment")
            if env in ENVIRONMENTS:
                return env  # type: ignore[no-any-return]
    return None


def subjects(doc: Mapping[str, Any], config: PackConfig) -> list[Subject]:
    raw = resources_of(doc)
    providers = {
        f"{r['urn']}::{r.get('id', '')}": r.get("inputs") or {}
        for r in raw
        if r["type"].startswith("pulumi:providers:")
    }
    out = []
    for r in raw:
        if not r.get("custom", False) or r["type"].startswith("pulumi:providers:"):
            continue
        props = dict(r.get("inputs") or {})
        # Computed identifiers live in outputs; stack rules match sub-resources by them.
        for key in ("id", "arn", "name", "bucket"):
            value = (r.get("outputs") or {}).get(key)
            if key not in props and value is not None:
                props[key] = value
        if "id" not in props and r.get("id"):
            props["id"] = r["id"]
        out.append(
            Subject(
                type=r["type"],
                name=r["urn"].rsplit("::", 1)[-1],
                urn=r["urn"],
                props=props,
                provider_props=providers.get(r.get("provider", ""), {}),
                config=config,
            )
        )
    return out


def applies(rule: Rule, type_: str) -> bool:
    return any(t == type_ or (t.endswith("*") and type_.startswith(t[:-1])) for t in rule.types)


def _positions_by_type(subs: Sequence[Subject]) -> dict[str, list[int]]:
    """Where each resource type occurs, in document order: a rule then visits only the
    resources of its types instead of scanning all of them (10,000 resources x 167 rules)."""
    index: dict[str, list[int]] = {}
    for i, sub in enumerate(subs):
        index.setdefault(sub.type, []).append(i)
    return index


def _applicable(
    rule: Rule, subs: Sequence[Subject], by_type: Mapping[str, list[int]]
) -> list[Subject]:
    """The resources `rule` applies to, in document order."""
    positions = [i for type_, found in by_type.items() if applies(rule, type_) for i in found]
    return [subs[i] for i in sorted(positions)]


def check(
    doc: Mapping[str, Any],
    env: Environment,
    config: PackConfig | None = None,
    rules: Iterable[Rule] | None = None,
    source: str = "<plan>",
) -> Report:
    config = config or PackConfig()
    rule_list = list(rules if rules is not None else all_rules())
    subs = subjects(doc, config)
    by_type = _positions_by_type(subs)
    violations: list[Violation] = []
    unknown: list[tuple[str, str]] = []
    for rule in rule_list:
        enforcement = rule.enforcement[env]
        if enforcement == "disabled":
            continue
        if rule.check is not None:
            for sub in _applicable(rule, subs, by_type):
                try:
                    messages = list(rule.check(sub))
                except Unknowable:
                    unknown.append((rule.id, sub.urn))
                    continue
                violations += [
                    Violation(rule.id, rule.severity, enforcement, sub.urn, sub.type, m)
                    for m in messages
                ]
        elif rule.stack_check is not None:
            by_urn = {s.urn: s for s in subs}
            stack = StackSubject(subs, config)
            for urn, message in rule.stack_check(stack):
                type_ = by_urn[urn].type if urn in by_urn else ""
                violations.append(
                    Violation(rule.id, rule.severity, enforcement, urn, type_, message)
                )
    violations.sort(
        key=lambda v: (v.enforcement != "mandatory", SEVERITY_ORDER[v.severity], v.policy_id, v.urn)
    )
    return Report(env, source, len(subs), len(rule_list), tuple(violations), tuple(unknown))


# -- renderers ----------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    s = report.summary()
    lines = [
        f"dex policy check {report.source} (environment {report.environment}): "
        f"{s['resources']} resources, {s['rules']} rules",
    ]
    for v in report.violations:
        lines.append(
            f"[{v.enforcement.upper():9}] {v.severity:8} {v.policy_id:12} "
            f"{v.urn.rsplit('::', 1)[-1]} ({v.type}): {v.message}"
        )
    if report.scan is not None:
        lines += _scan_text(report)
    lines.append(
        f"{s['mandatory']} mandatory, {s['advisory']} advisory violations; "
        f"{s['unknown']} checks deferred (values known only after apply): "
        + ("PASSED" if report.passed else "FAILED")
    )
    return "\n".join(lines) + "\n"


def _scan_text(report: Report) -> list[str]:
    scan = report.scan
    assert scan is not None
    s = scan.summary(report.violations)
    lines = [
        f"{scan.tool}: {s['checks']} verdicts, {s['passed']} passed, {s['failed']} failed "
        f"(mandatory, listed above), {len(scan.accepted)} accepted ({s['seconds']} s)"
    ]
    for a in scan.accepted:
        lines.append(
            f"[ACCEPTED ] {a.policy_id:12} {a.urn.rsplit('::', 1)[-1]} ({a.type}): {a.reason}"
        )
    for reason, count in scan.not_scanned:
        lines.append(f"not scanned by {scan.tool.split()[0]}: {count} x {reason}")
    return lines


def render_json(report: Report) -> str:
    doc: dict[str, Any] = {
        "violations": [v.as_dict() for v in report.violations],
        "summary": report.summary(),
    }
    if report.scan is not None:
        doc["checkov"] = report.scan.summary(report.violations)
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def render_markdown(report: Report, title: str | None = None, limit: int = 65_000) -> str:
    s = report.summary()
    verdict = "✅ passed" if report.passed else "❌ failed"
    head = [
        f"### {title or 'Policy check'}: {verdict}",
        "",
        f"**{s['mandatory']} mandatory, {s['advisory']} advisory** violations over "
        f"{s['resources']} resources ({s['rules']} rules, environment `{report.environment}`).",
        "",
        "| severity | mandatory | advisory |",
        "| --- | ---: | ---: |",
    ]
    for sev in SEVERITY_ORDER:
        m = sum(1 for v in report.violations if v.severity == sev and v.enforcement == "mandatory")
        a = sum(1 for v in report.violations if v.severity == sev and v.enforcement == "advisory")
        head.append(f"| {sev} | {m} | {a} |")
    if report.scan is not None:
        head += ["", *_scan_markdown(report)]
    text = "\n".join(head) + "\n"
    if not report.violations:
        return text
    rows = [
        "",
        "<details><summary>Violations</summary>",
        "",
        "| enforcement | severity | policy | resource | message |",
        "| --- | --- | --- | --- | --- |",
    ]
    out = text + "\n".join(rows) + "\n"
    for i, v in enumerate(report.violations):
        row = (
            f"| {v.enforcement} | {v.severity} | `{v.policy_id}` | "
            f"`{v.urn.rsplit('::', 1)[-1]}` | {v.message.replace('|', '/')} |\n"
        )
        tail = "\n</details>\n"
        if len(out) + len(row) + len(tail) + 200 > limit:
            out += (
                f"\n> ⚠️ Trimmed: {len(report.violations) - i} more violations not shown. "
                "Run `dex policy check` locally for all of them.\n"
            )
            break
        out += row
    return out + "\n</details>\n"


def _scan_markdown(report: Report) -> list[str]:
    scan = report.scan
    assert scan is not None
    s = scan.summary(report.violations)
    lines = [
        f"**{scan.tool}**: {s['checks']} verdicts, {s['passed']} passed, **{s['failed']} "
        f"failed** (among the mandatory violations), {len(scan.accepted)} accepted "
        f"(`policies/checkov-accepted.yaml`), {s['seconds']} s.",
    ]
    if scan.not_scanned:
        counted = "; ".join(f"{count} x {reason}" for reason, count in scan.not_scanned)
        lines += ["", f"Not scanned by Checkov: {counted}."]
    if scan.accepted:
        lines += [
            "",
            "<details><summary>Accepted Checkov findings</summary>",
            "",
            "| check | resource | reason |",
            "| --- | --- | --- |",
        ]
        lines += [
            f"| `{a.policy_id}` | `{a.urn.rsplit('::', 1)[-1]}` | {a.reason.replace('|', '/')} |"
            for a in scan.accepted
        ]
        lines += ["", "</details>"]
    return lines


SARIF_LEVEL = {"mandatory": "error", "advisory": "warning"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0"}


def render_sarif(report: Report, artifact: str, rules: Iterable[Rule] | None = None) -> str:
    """SARIF 2.1.0: one run, the pack's rules as the driver's rules, a result per violation
    located at `artifact` (the stack file) and the resource URN as a logical location."""
    rule_list = list(rules if rules is not None else all_rules())
    index = {r.id: i for i, r in enumerate(rule_list)}
    scanner_rules = _scanner_rules(report, len(index))
    index.update({r["id"]: len(index) + i for i, r in enumerate(scanner_rules)})
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "dex-policy",
                        "informationUri": "https://github.com/dataenginex/dex",
                        "semanticVersion": "0.1.0",
                        "rules": [
                            {
                                "id": r.id,
                                "name": r.title.title().replace(" ", "").replace("/", ""),
                                "shortDescription": {"text": r.title},
                                "fullDescription": {"text": r.description},
                                "help": {"text": r.remediation},
                                "defaultConfiguration": {
                                    "level": SARIF_LEVEL[r.enforcement["prod"]]
                                    if r.enforcement["prod"] != "disabled"
                                    else "none"
                                },
                                "properties": {
                                    "tags": ["security", *r.frameworks],
                                    "security-severity": SECURITY_SEVERITY[r.severity],
                                },
                            }
                            for r in rule_list
                        ]
                        + scanner_rules,
                    }
                },
                "results": [
                    {
                        "ruleId": v.policy_id,
                        "ruleIndex": index.get(v.policy_id, -1),
                        "level": SARIF_LEVEL[v.enforcement],
                        "message": {"text": f"{v.urn.rsplit('::', 1)[-1]}: {v.message}"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": artifact},
                                    "region": {"startLine": 1},
                                },
                                "logicalLocations": [
                                    {"fullyQualifiedName": v.urn, "kind": "resource"}
                                ],
                            }
                        ],
                        "partialFingerprints": {"dexViolation/v1": f"{v.policy_id}:{v.urn}"},
                    }
                    for v in report.violations
                ],
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _scanner_rules(report: Report, offset: int) -> list[dict[str, Any]]:
    """SARIF rules for the other scanner's (Checkov's) checks that failed, in first-seen
    order: their id, the check's title, and the severity the report gave them."""
    seen: dict[str, dict[str, Any]] = {}
    for v in report.violations:
        if v.policy_id.startswith("CKV") and v.policy_id not in seen:
            seen[v.policy_id] = {
                "id": v.policy_id,
                "name": v.policy_id,
                "shortDescription": {"text": v.message},
                "helpUri": "https://www.checkov.io/5.Policy%20Index/all.html",
                "defaultConfiguration": {"level": "error"},
                "properties": {
                    "tags": ["security", "checkov"],
                    "security-severity": SECURITY_SEVERITY[v.severity],
                },
            }
    return list(seen.values())


CHECKOV_EQUIVALENTS = Path(__file__).with_name("checkov-equivalents.json")


def checkov_equivalents() -> dict[str, list[str]]:
    """DEX rule id -> the Checkov checks that flag the same flaw, as observed on the rule's
    own fixtures (`python -m toolchain.checkov.equivalents` writes the file)."""
    if not CHECKOV_EQUIVALENTS.exists():
        return {}
    doc = json.loads(CHECKOV_EQUIVALENTS.read_text(encoding="utf-8"))
    return {k: list(v) for k, v in doc["equivalents"].items()}


def rules_markdown(rules: Iterable[Rule] | None = None) -> str:
    """docs/policies.md's table of rules: id, title, severity, enforcement per environment, CIS,
    and the equivalent Checkov checks."""
    equivalents = checkov_equivalents()
    lines = [
        "| id | title | severity | dev | prod | benchmarks | Checkov |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rules if rules is not None else all_rules():
        cis = ", ".join(r.frameworks) or "-"
        ckv = ", ".join(f"`{c}`" for c in equivalents.get(r.id, [])) or "-"
        lines.append(
            f"| `{r.id}` | {r.title} | {r.severity} | {r.enforcement['dev']} | "
            f"{r.enforcement['prod']} | {cis} | {ckv} |"
        )
    return "\n".join(lines) + "\n"
