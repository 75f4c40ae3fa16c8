"""AWS rules on who a resource lets in: key, bucket, repository and registry policies that grant
to everyone or to foreign accounts, ACL grants to AWS's global groups, and public snapshots.

Each flaw is judged on the resource it lives on: a key's own `policy` and a standalone
`aws.kms.KeyPolicy`, a `BucketPolicy` and a bucket's inline `policy`, an ECR
`RepositoryPolicy` and `RegistryPolicy`, an RDS snapshot's `sharedAccounts`.

Which account is "ours": a plan says nothing about it directly, so AWS-IAM-006 derives the
stack's own accounts from the plan itself: the account field of every resource ARN the stack
owns (`arn`, an output the runner merges into the properties) and the AWS provider's
`allowedAccountIds` when set. Any 12-digit account a policy names outside that set is
foreign. Deriving needs no configuration and stays right when dev and prod live in different
accounts (one pack config serves both); with no ARN known yet (a first preview) the rule
cannot tell and says nothing. Organisations that share resources across their own accounts
on purpose list those in the pack config's `trustedAccounts`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from policies.model import (
    ALWAYS,
    StackSubject,
    Subject,
    as_list,
    decoded,
    policy_statements,
    resource_rule,
    stack_rule,
)

KEY = "aws:kms/key:Key"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_LEGACY = "aws:s3/bucketV2:BucketV2"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
REPOSITORY_POLICY = "aws:ecr/repositoryPolicy:RepositoryPolicy"
REGISTRY_POLICY = "aws:ecr/registryPolicy:RegistryPolicy"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
SECRET_POLICY = "aws:secretsmanager/secretPolicy:SecretPolicy"  # noqa: S105 - a type token
ROLE = "aws:iam/role:Role"
SNAPSHOTS = (
    "aws:rds/snapshot:Snapshot",
    "aws:rds/snapshotCopy:SnapshotCopy",
    "aws:rds/clusterSnapshot:ClusterSnapshot",
    "aws:rds/clusterSnapshotCopy:ClusterSnapshotCopy",
)

RESOURCE_POLICIES: dict[str, str] = {
    KEY: "policy",
    KEY_POLICY: "policy",
    BUCKET: "policy",
    BUCKET_LEGACY: "policy",
    BUCKET_POLICY: "policy",
    REPOSITORY_POLICY: "policy",
    REGISTRY_POLICY: "policy",
    QUEUE_POLICY: "policy",
    TOPIC_POLICY: "policy",
    SECRET_POLICY: "policy",
    ROLE: "assumeRolePolicy",
}
"""Resource type -> the property holding its resource (or trust) policy."""

ACCOUNT_ARN = re.compile(r"^arn:[^:]+:[^:]*:[^:]*:(\d{12}):")
PRINCIPAL_ACCOUNT = re.compile(r"^(?:(\d{12})|arn:[^:]+:(?:iam|sts)::(\d{12}):.*)$")

RESTRICTING_KEYS = frozenset(
    k.lower()
    for k in (
        "aws:SourceAccount",
        "aws:SourceOwner",
        "aws:SourceArn",
        "aws:SourceOrgID",
        "aws:SourceOrgPaths",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:userid",
        "aws:username",
        "aws:SourceVpc",
        "aws:SourceVpce",
        "kms:CallerAccount",
    )
)
"""Condition keys that pin who (or from which network/resource) a `*` principal may be. A
`Bool aws:SecureTransport` or `aws:SourceIp` does not: anonymous requests still pass."""

ACCOUNT_KEYS = frozenset(
    k.lower()
    for k in ("aws:SourceAccount", "aws:SourceOwner", "aws:PrincipalAccount", "kms:CallerAccount")
)
"""Condition keys whose values are account ids (checked for foreign accounts)."""

GLOBAL_GROUPS = {
    "http://acs.amazonaws.com/groups/global/AllUsers": "everyone (AllUsers)",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers": (
        "every AWS account (AuthenticatedUsers)"
    ),
}


# -- policy reading, shared by the AWS rule modules ---------------------------------------------


def principals(stmt: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(kind, value) for each principal of a statement: `"*"` is ("AWS", "*")."""
    principal = stmt.get("Principal")
    if isinstance(principal, str):
        return [("AWS", principal)]
    if isinstance(principal, Mapping):
        return [(str(k), str(v)) for k, values in principal.items() for v in as_list(values)]
    return []


def _conditions(stmt: Mapping[str, Any]) -> Iterator[tuple[str, str, list[str]]]:
    """(operator, lowercase key, values) for each condition of a statement."""
    for operator, block in (stmt.get("Condition") or {}).items():
        if isinstance(block, Mapping):
            for key, values in block.items():
                yield str(operator), str(key).lower(), [str(v) for v in as_list(values)]


def restricted(stmt: Mapping[str, Any]) -> bool:
    """A condition pins the caller: a restricting key, a positive operator, no bare `*`."""
    for operator, key, values in _conditions(stmt):
        positive = "Not" not in operator and not operator.endswith("IfExists")
        if key in RESTRICTING_KEYS and positive and values and "*" not in values:
            return True
    return False


def open_to_everyone(stmt: Mapping[str, Any]) -> bool:
    """An Allow statement whose principal is anyone (`*`, or `NotPrincipal`) and whose
    conditions do not pin the caller."""
    if stmt.get("Effect") != "Allow":
        return False
    everyone = "NotPrincipal" in stmt or any(
        value == "*" and kind != "Service" for kind, value in principals(stmt)
    )
    return everyone and not restricted(stmt)


def named_accounts(stmt: Mapping[str, Any]) -> set[str]:
    """The 12-digit accounts an Allow statement grants to: in its principals and in the
    account conditions that choose the caller."""
    if stmt.get("Effect") != "Allow":
        return set()
    found = set()
    for kind, value in principals(stmt):
        match = PRINCIPAL_ACCOUNT.match(value)
        if kind in ("AWS", "Federated") and match:
            found.add(match.group(1) or match.group(2))
    for operator, key, values in _conditions(stmt):
        if key in ACCOUNT_KEYS and "Not" not in operator:
            found |= {v for v in values if re.fullmatch(r"\d{12}", v)}
    return found


def own_accounts(stack: StackSubject) -> set[str]:
    """The accounts this stack deploys into: the account field of every ARN it owns, and
    the AWS providers' `allowedAccountIds`."""
    accounts = set()
    for r in stack.resources:
        match = ACCOUNT_ARN.match(str(r.props.get("arn") or ""))
        if match:
            accounts.add(match.group(1))
        allowed = decoded(r.provider_props.get("allowedAccountIds"))
        accounts |= {str(a) for a in as_list(allowed) if re.fullmatch(r"\d{12}", str(a))}
    return accounts


def _everyone(r: Subject) -> Iterator[str]:
    prop = RESOURCE_POLICIES.get(r.type, "policy")
    for stmt in policy_statements(r.get(prop)):
        if open_to_everyone(stmt):
            yield (
                f"statement {stmt.get('Sid', '?')} allows "
                f"{', '.join(map(str, as_list(stmt.get('Action')))) or 'actions'} "
                "to any principal, with no condition pinning the caller"
            )


# -- rules ----------------------------------------------------------------------------------------


@resource_rule(
    "AWS-KMS-002",
    "KMS key policies grant nothing to everyone",
    "critical",
    ALWAYS,
    [KEY, KEY_POLICY],
    "Name the principals (the account root, the roles and the service principals that use "
    "the key); a `*` principal needs a condition that pins the caller (kms:CallerAccount, "
    "aws:PrincipalOrgID, aws:SourceArn...).",
    ["CIS-AWS-1.4.0:3.8", "NIST-800-53:AC-3"],
    "A key policy that lets any principal use or manage a key lets anyone with an AWS account "
    "decrypt what it protects.",
)
def kms_key_not_public(r: Subject) -> Iterator[str]:
    yield from _everyone(r)


@resource_rule(
    "AWS-ECR-004",
    "ECR repository and registry policies grant nothing to everyone",
    "critical",
    ALWAYS,
    [REPOSITORY_POLICY, REGISTRY_POLICY],
    "Grant pulls to named accounts or roles, or to `*` only with aws:PrincipalOrgID.",
    ["NIST-800-53:AC-3"],
    "A `*` principal on a repository policy makes its images (and what is baked into them) "
    "public to every AWS account.",
)
def ecr_policy_not_public(r: Subject) -> Iterator[str]:
    yield from _everyone(r)


def public_acl_grants(r: Subject) -> Iterator[str]:
    """ACL grants (a BucketAcl's `accessControlPolicy.grants`, a bucket's inline `grants`) to
    AWS's AllUsers / AuthenticatedUsers groups; AWS-S3-007 reports them."""
    grants = [
        *as_list((r.get("accessControlPolicy") or {}).get("grants")),
        *as_list(r.get("grants")),  # the bucket's inline (legacy) grants
    ]
    for grant in grants:
        if not isinstance(grant, Mapping):
            continue
        grantee = grant.get("grantee") or grant  # inline grants carry type/uri themselves
        who = GLOBAL_GROUPS.get(str(grantee.get("uri") or ""))
        if who:
            permission = grant.get("permission") or ", ".join(
                map(str, as_list(grant.get("permissions")))
            )
            yield f"grants {permission or 'access'} to {who}"


@resource_rule(
    "AWS-RDS-011",
    "RDS snapshots are not shared publicly",
    "critical",
    ALWAYS,
    list(SNAPSHOTS),
    "Remove `all` from shared_accounts; share with named accounts only.",
    ["NIST-800-53:AC-3"],
    "`sharedAccounts: [all]` lets every AWS account restore the snapshot: the whole database.",
)
def rds_snapshot_private(r: Subject) -> Iterator[str]:
    if "all" in [str(a).lower() for a in as_list(r.get("sharedAccounts"))]:
        yield "sharedAccounts includes all: every AWS account can restore this snapshot"


@stack_rule(
    "AWS-IAM-006",
    "Resource and trust policies grant nothing to foreign accounts",
    "high",
    ALWAYS,
    [*RESOURCE_POLICIES, *SNAPSHOTS],
    "Grant only to this stack's own account(s); share cross-account deliberately, through the "
    "pack config's trustedAccounts, never an account id pasted into a policy.",
    ["NIST-800-53:AC-3", "NIST-800-53:AC-6"],
    "Key, bucket, repository, registry, queue, topic and secret policies, role trust policies "
    "and RDS snapshot sharing may name only the accounts the stack deploys into (derived from "
    "the ARNs the plan owns; see the module docstring).",
)
def no_foreign_accounts(stack: StackSubject) -> Iterator[tuple[str, str]]:
    own = own_accounts(stack)
    if not own:
        return  # nothing in the plan says which account is ours (a first preview)
    own |= set(stack.config.trusted_accounts)
    for r in stack.of_type(*RESOURCE_POLICIES, *SNAPSHOTS):
        if r.type in SNAPSHOTS:
            named = {str(a) for a in as_list(r.props.get("sharedAccounts"))}
            for account in sorted(a for a in named - own if re.fullmatch(r"\d{12}", a)):
                yield r.urn, f"snapshot shared with foreign account {account}"
            continue
        for stmt in policy_statements(r.props.get(RESOURCE_POLICIES[r.type])):
            for account in sorted(named_accounts(stmt) - own):
                yield (
                    r.urn,
                    f"statement {stmt.get('Sid', '?')} grants to foreign account {account}",
                )
