"""Customer-managed KMS keys: rotation on, a 30-day deletion window, an alias per key, and an
explicit key policy.

Every key's policy starts with the statement of KMS's default policy, "Enable IAM User
Permissions" (the account root, `kms:*`): the IAM policies of the account then decide who
uses the key, as they did with the default policy (the deployer creating grants for RDS,
EBS, ElastiCache and EKS; the workload and EBS CSI roles). Services that call KMS as
themselves rather than through a caller's grant get a statement of their own: CloudWatch
Logs (`logs_statement`) needs one before a log group can name the key ("Encrypt log data in
CloudWatch Logs using AWS KMS", step 2: the `logs.<region>.amazonaws.com` principal, limited
by the `kms:EncryptionContext:aws:logs:arn` condition to the log groups named). The provider
waits for a key policy to propagate before it reports the key created, so a log group that
depends on the key finds the policy in place.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True, kw_only=True)
class KeyArgs:
    """A customer-managed key's settings."""

    description: str
    protect: bool
    """Pulumi `protect` on the key (prod)."""
    tags: dict[str, str]
    account_id: pulumi.Input[str]
    """The account the key lives in: its root administers the key and enables IAM policies."""
    partition: str
    """ARN partition (`aws` in commercial regions)."""
    service_statements: Sequence[dict[str, Any]] = field(default_factory=tuple)
    """Statements for services that use the key as themselves (`logs_statement`); none by
    default (every other use goes through IAM and grants)."""


def key_policy(
    account_id: str, partition: str, service_statements: Sequence[dict[str, Any]] = ()
) -> str:
    """The key policy: the account root (IAM policies apply), then `service_statements`."""
    root = {
        "Sid": "EnableIamUserPermissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [root, *service_statements]}, sort_keys=True
    )


def log_group_arn(partition: str, region: str, account_id: str, name: str) -> str:
    """A CloudWatch log group's ARN (the value of its `aws:logs:arn` encryption context)."""
    return f"arn:{partition}:logs:{region}:{account_id}:log-group:{name}"


def logs_statement(
    *, partition: str, region: str, account_id: str, log_groups: Sequence[str]
) -> dict[str, Any]:
    """Lets CloudWatch Logs in `region` use the key for the named log groups only."""
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return {
        "Sid": "CloudWatchLogsForTheseLogGroups",
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{region}.{suffix}"},
        "Action": [
            "kms:Encrypt*",
            "kms:Decrypt*",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:Describe*",
        ],
        "Resource": "*",
        "Condition": {
            "ArnEquals": {
                "kms:EncryptionContext:aws:logs:arn": [
                    log_group_arn(partition, region, account_id, n) for n in log_groups
                ]
            }
        },
    }


def customer_key(name: str, args: KeyArgs, parent: pulumi.Resource) -> aws.kms.Key:
    """A symmetric key with yearly rotation, named `alias/<name>`."""
    return customer_key_and_alias(name, args, parent)[0]


def customer_key_and_alias(
    name: str, args: KeyArgs, parent: pulumi.Resource
) -> tuple[aws.kms.Key, aws.kms.Alias]:
    """`customer_key`, and its alias `alias/<name>` (for what refers to the key by alias)."""
    key = aws.kms.Key(
        name,
        description=args.description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=pulumi.Output.from_input(args.account_id).apply(
            lambda account: key_policy(account, args.partition, args.service_statements)
        ),
        tags=args.tags,
        opts=pulumi.ResourceOptions(parent=parent, protect=args.protect),
    )
    alias = aws.kms.Alias(
        f"{name}-alias",
        name=f"alias/{name}",
        target_key_id=key.key_id,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return key, alias


def log_key(
    name: str,
    *,
    log_groups: Sequence[str],
    region: str,
    account_id: str,
    partition: str,
    protect: bool,
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> aws.kms.Key:
    """A key for CloudWatch log groups `log_groups` (names): the root, and CloudWatch Logs
    for exactly those groups. Create each log group with `kms_key_id=key.arn`."""
    return customer_key(
        name,
        KeyArgs(
            description=f"CloudWatch Logs: {', '.join(log_groups)}",
            protect=protect,
            tags=tags,
            account_id=account_id,
            partition=partition,
            service_statements=[
                logs_statement(
                    partition=partition,
                    region=region,
                    account_id=account_id,
                    log_groups=log_groups,
                )
            ],
        ),
        parent,
    )
