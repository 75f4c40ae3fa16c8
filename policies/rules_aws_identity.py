"""AWS identity rules: permissions attached to IAM users, and privilege-escalation actions
granted on every resource.

(Long-lived user credentials are AWS-IAM-003, full admin AWS-IAM-001, wildcards AWS-IAM-002,
trust policies AWS-IAM-004, all in `rules_aws.py`.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Any

from policies.model import ALWAYS, Subject, as_list, policy_statements, resource_rule

POLICY = "aws:iam/policy:Policy"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
USER_POLICY = "aws:iam/userPolicy:UserPolicy"
GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
USER_POLICY_ATTACHMENT = "aws:iam/userPolicyAttachment:UserPolicyAttachment"
POLICY_ATTACHMENT = "aws:iam/policyAttachment:PolicyAttachment"

ESCALATION_ACTIONS = (
    "iam:PassRole",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:AttachUserPolicy",
    "iam:AttachGroupPolicy",
    "iam:AttachRolePolicy",
    "iam:PutUserPolicy",
    "iam:PutGroupPolicy",
    "iam:PutRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:AddUserToGroup",
    "sts:AssumeRole",
)
"""Actions that, on any principal, let the caller become someone more powerful (Rhino
Security Labs' AWS privilege-escalation methods): pass or rewrite a role, attach or write a
policy, mint credentials for another user, join a group, assume any role."""

BROAD_RESOURCE = re.compile(r"^(\*|arn:[^:]+:(?:iam|sts)::[^:]*:(?:\*|[A-Za-z-]+/\*))$")
"""`*`, or every principal of a kind (`arn:aws:iam::123456789012:role/*`)."""


def _statements(r: Subject) -> Iterator[Mapping[str, Any]]:
    docs = [r.get("policy")]
    if r.type == ROLE:
        docs += [p.get("policy") for p in as_list(r.get("inlinePolicies"))]
    for doc in docs:
        yield from policy_statements(doc)


def _granted(stmt: Mapping[str, Any]) -> list[str]:
    """The escalation actions an Allow statement grants (through wildcards too, not `*`
    alone, which AWS-IAM-001/002 report)."""
    if "NotAction" in stmt:
        excluded = [str(a).lower() for a in as_list(stmt.get("NotAction"))]
        return [
            a for a in ESCALATION_ACTIONS if not any(fnmatchcase(a.lower(), x) for x in excluded)
        ]
    patterns = [str(a).lower() for a in as_list(stmt.get("Action")) if a != "*"]
    return [a for a in ESCALATION_ACTIONS if any(fnmatchcase(a.lower(), p) for p in patterns)]


@resource_rule(
    "AWS-IAM-007",
    "No privilege-escalation action on every resource",
    "high",
    ALWAYS,
    [POLICY, ROLE_POLICY, USER_POLICY, GROUP_POLICY, ROLE],
    "Scope iam:PassRole to the role ARNs the workload passes (with iam:PassedToService), and "
    "policy/role/user writes and sts:AssumeRole to named ARNs.",
    ["NIST-800-53:AC-6"],
    "iam:PassRole, iam:CreatePolicyVersion, iam:Attach*/Put*Policy, iam:CreateAccessKey, "
    "sts:AssumeRole and kin on Resource '*' (or on every role/user/policy) let whoever holds "
    "the policy make themselves administrator.",
)
def iam_privilege_escalation(r: Subject) -> Iterator[str]:
    for stmt in _statements(r):
        if stmt.get("Effect") != "Allow":
            continue
        resources = [str(x) for x in as_list(stmt.get("Resource"))]
        broad = "NotResource" in stmt or any(BROAD_RESOURCE.match(x) for x in resources)
        granted = _granted(stmt)
        if broad and granted:
            yield (
                f"statement {stmt.get('Sid', '?')} allows {', '.join(granted)} on "
                f"{', '.join(resources) or 'NotResource'}"
            )


@resource_rule(
    "AWS-IAM-008",
    "IAM users get no policies of their own",
    "medium",
    ALWAYS,
    [USER_POLICY, USER_POLICY_ATTACHMENT, POLICY_ATTACHMENT],
    "Grant through roles (or at least groups): no aws.iam.UserPolicy, UserPolicyAttachment "
    "or PolicyAttachment with users.",
    ["CIS-AWS-1.4.0:1.15"],
    "Inline and attached user policies scatter permissions over people and CI users, where "
    "nobody reviews them and they outlive the person.",
)
def iam_no_user_policies(r: Subject) -> Iterator[str]:
    if r.type == POLICY_ATTACHMENT:
        users = as_list(r.get("users"))
        if users:
            yield f"policy attached directly to users {', '.join(map(str, users))}"
        return
    kind = "inline policy" if r.type == USER_POLICY else "policy attachment"
    yield f"{kind} on user {r.get('user') or '?'}"
