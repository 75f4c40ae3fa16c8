"""IAM policy documents as pure functions: built and tested without the engine."""

from __future__ import annotations

import json
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


def irsa_trust(
    oidc_provider_arn: str, issuer_url: str, namespace: str, service_account: str
) -> str:
    """Trust policy for IRSA: only one Kubernetes service account, only for STS audiences."""
    issuer = issuer_url.removeprefix("https://")
    return document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ]
    )


def bucket_access(
    grants: Sequence[BucketGrant], bucket_arns: dict[str, str], kms_key_arn: str
) -> str:
    """Least-privilege S3 access: per bucket, list limited to the granted prefixes and
    object actions limited to keys under them; KMS use of the lake key only."""
    statements: list[dict[str, Any]] = []
    for grant in grants:
        arn = bucket_arns[grant.purpose]
        sid = grant.purpose.replace("-", "").capitalize()
        listing: dict[str, Any] = {
            "Sid": f"List{sid}",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": arn,
        }
        if grant.prefixes:
            listing["Condition"] = {"StringLike": {"s3:prefix": [f"{p}*" for p in grant.prefixes]}}
        statements.append(listing)
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


def key_policy(account_id: str, partition: str, service_principals: Sequence[str] = ()) -> str:
    """KMS key policy: the account administers the key through IAM (the AWS default), and
    the named services may use it for encryption on the account's behalf."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountAdministersThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            # The key policy of a customer managed key must name kms:* for the account root,
            # or the key becomes unmanageable; access is then narrowed by IAM policies.
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if service_principals:
        statements.append(
            {
                "Sid": "ServicesEncrypt",
                "Effect": "Allow",
                "Principal": {"Service": list(service_principals)},
                "Action": [
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        )
    return document(statements)
