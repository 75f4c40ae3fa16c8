"""IAM policy documents as pure functions: built and tested without the engine."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from components.contracts import BucketGrant

READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
WRITE_ACTIONS = (*READ_ACTIONS, "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")


def document(statements: Sequence[dict[str, Any]]) -> str:
    """A policy document as the JSON string IAM takes."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def service_trust(service: str) -> str:
    """Trust policy letting one AWS service (`eks.amazonaws.com`, ...) assume a role."""
    return document(
        [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    )


POD_IDENTITY_SERVICE = "pods.eks.amazonaws.com"
"""The service principal EKS Pod Identity assumes workload roles as."""


def pod_identity_trust() -> str:
    """Trust policy for EKS Pod Identity: the EKS Auth service assumes the role (and tags the
    session with cluster, namespace and service account) on behalf of a pod whose service
    account has a `PodIdentityAssociation` to the role. Which pod may use the role is decided
    by the associations, which only this stack creates.

    Source: Amazon EKS User Guide, "Create IAM role with trust policy required by EKS Pod
    Identity" (pod-id-role): `sts:AssumeRole` and `sts:TagSession` for `pods.eks.amazonaws.com`.
    """
    return document(
        [
            {
                "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
                "Effect": "Allow",
                "Principal": {"Service": POD_IDENTITY_SERVICE},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ]
    )


def role_arn_of_caller(caller_arn: str) -> str:
    """The IAM principal an access entry names for the caller of `sts:GetCallerIdentity`:
    an assumed-role session (`arn:aws:sts::1:assumed-role/Name/session`) becomes its role
    (`arn:aws:iam::1:role/Name`); user and role ARNs are returned unchanged."""
    match = re.match(r"^arn:([^:]+):sts::(\d{12}):assumed-role/([^/]+)/.+$", caller_arn)
    if match:
        partition, account, role = match.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    return caller_arn


def bucket_access(
    grants: Sequence[BucketGrant], bucket_arns: dict[str, str], kms_key_arn: str
) -> str:
    """Least-privilege S3 access: per bucket, list limited to the granted prefixes and
    object actions limited to keys under them; KMS use of the lake key only."""
    statements: list[dict[str, Any]] = []
    for grant in grants:
        arn = bucket_arns[grant.purpose]
        sid = grant.purpose.replace("-", "").capitalize()
        # Bucket-level calls that take no key prefix (GetBucketLocation, which SDKs make
        # before anything else) must not sit under an `s3:prefix` condition: the key is
        # absent from such requests, so the condition never matches and they are denied.
        bucket_actions = ["s3:GetBucketLocation"]
        if not grant.prefixes:
            bucket_actions.insert(0, "s3:ListBucket")
        statements.append(
            {"Sid": f"Bucket{sid}", "Effect": "Allow", "Action": bucket_actions, "Resource": arn}
        )
        if grant.prefixes:
            statements.append(
                {
                    "Sid": f"List{sid}",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": arn,
                    "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in grant.prefixes]}},
                }
            )
        objects = [f"{arn}/{p}*" for p in grant.prefixes] or [f"{arn}/*"]
        actions = WRITE_ACTIONS if grant.access == "write" else READ_ACTIONS
        statements.append(
            {
                "Sid": f"Objects{sid}",
                "Effect": "Allow",
                "Action": list(actions),
                "Resource": objects,
            }
        )
    statements.append(
        {
            "Sid": "LakeKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": kms_key_arn,
        }
    )
    return document(statements)


def deny_insecure_transport(bucket_arn: str) -> str:
    """Bucket policy refusing every request not made over TLS 1.2 or newer."""
    both = [bucket_arn, f"{bucket_arn}/*"]
    return document(
        [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": both,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "DenyOutdatedTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": both,
                "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
            },
        ]
    )


def ebs_volume_key_access(key_arn: str) -> str:
    """What the EBS CSI driver needs on a customer managed key to create, attach and
    encrypt volumes with it: grants for AWS resources (EC2 creates them on its behalf) and
    the data-key operations. Source: Amazon EKS User Guide, "Store Kubernetes volumes with
    Amazon EBS", custom KMS key policy for the driver's role."""
    return document(
        [
            {
                "Sid": "GrantsForEbs",
                "Effect": "Allow",
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": key_arn,
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
            {
                "Sid": "UseVolumeKey",
                "Effect": "Allow",
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:DescribeKey",
                ],
                "Resource": key_arn,
            },
        ]
    )


def access_warning(caller_arn: str, admin_arns: Sequence[str], view_arns: Sequence[str]) -> str:
    """Why this run cannot reach the Kubernetes API ('' when it can): with access entries
    only, a principal that is in neither list is refused by the cluster. Roles are compared
    by name, since an assumed-role ARN drops the role's path."""
    principal = role_arn_of_caller(caller_arn)
    name = principal.rsplit("/", 1)[-1]
    if any(arn.rsplit("/", 1)[-1] == name for arn in admin_arns):
        return ""
    if any(arn.rsplit("/", 1)[-1] == name for arn in view_arns):
        return f"{principal} has read-only cluster access (dex:cluster.view_role_arns)"
    return (
        f"{principal} is not in dex:cluster.admin_role_arns: the cluster's access entries "
        "will refuse its Kubernetes requests"
    )
