"""AWS object store: the lake (raw, bronze, silver, gold), MLflow artifacts and Airflow logs.

Every bucket: SSE-KMS with the store's key (bucket keys on), versioning, all four public
access blocks, BucketOwnerEnforced ownership (ACLs off), a policy refusing non-TLS and
pre-TLS-1.2 requests, and a lifecycle of its own. With access logging on (prod), server
access logs go to a separate log bucket (SSE-S3, which is what S3 log delivery supports).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws import iam
from components.aws.kms import KeyArgs, customer_key
from components.contracts import BUCKET_PURPOSES, LAKE_LAYERS, ObjectStoreOutputs, contract_outputs


@dataclass(frozen=True)
class ObjectStoreArgs:
    name_prefix: str
    """Prefix of every bucket name (`dex-dev` gives `dex-dev-raw-<suffix>`)."""
    account_id: pulumi.Input[str]
    partition: str
    raw_infrequent_access_after_days: int
    raw_archive_after_days: int
    noncurrent_version_expiration_days: int
    access_logging: bool
    """Server access logs for every bucket into a dedicated log bucket."""
    force_destroy: bool
    """Allow deleting non-empty buckets. Off unless explicitly asked for."""
    protect: bool
    """Protect buckets and the key from deletion (prod)."""
    log_retention_days: int = 90
    """How long Airflow task logs and access logs are kept."""


def lifecycle_rules(purpose: str, args: ObjectStoreArgs) -> list[dict[str, Any]]:
    """Lifecycle rules per bucket purpose, as plain data (tested on its own)."""
    common: list[dict[str, Any]] = [
        {
            "id": "abort-incomplete-uploads",
            "status": "Enabled",
            "filter": {},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
        },
        {
            "id": "expire-noncurrent-versions",
            "status": "Enabled",
            "filter": {},
            "noncurrent_version_expiration": {
                "noncurrent_days": args.noncurrent_version_expiration_days
            },
        },
    ]
    if purpose == "raw":
        common.append(
            {
                "id": "tier-raw",
                "status": "Enabled",
                "filter": {},
                "transitions": [
                    {"days": args.raw_infrequent_access_after_days, "storage_class": "STANDARD_IA"},
                    {"days": args.raw_archive_after_days, "storage_class": "GLACIER_IR"},
                ],
            }
        )
    elif purpose in ("bronze", "silver"):
        common.append(
            {
                "id": f"tier-{purpose}",
                "status": "Enabled",
                "filter": {},
                "transitions": [
                    {"days": args.raw_archive_after_days, "storage_class": "STANDARD_IA"}
                ],
            }
        )
    elif purpose in ("airflow-logs", "access-logs"):
        common.append(
            {
                "id": "expire-logs",
                "status": "Enabled",
                "filter": {},
                "expiration": {"days": args.log_retention_days},
            }
        )
    return common


def _rules_args(rules: list[dict[str, Any]]) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    out = []
    for r in rules:
        out.append(
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id=r["id"],
                status=r["status"],
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                abort_incomplete_multipart_upload=(
                    aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        **r["abort_incomplete_multipart_upload"]
                    )
                    if "abort_incomplete_multipart_upload" in r
                    else None
                ),
                noncurrent_version_expiration=(
                    aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        **r["noncurrent_version_expiration"]
                    )
                    if "noncurrent_version_expiration" in r
                    else None
                ),
                transitions=[
                    aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(**t)
                    for t in r.get("transitions", [])
                ]
                or None,
                expiration=(
                    aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(**r["expiration"])
                    if "expiration" in r
                    else None
                ),
            )
        )
    return out


@dataclass(frozen=True, kw_only=True)
class BucketArgs:
    """One bucket of the store and what it is wired to."""

    purpose: str
    """A `BUCKET_PURPOSES` entry, or `access-logs` for the log bucket."""
    key: aws.kms.Key | None
    """The store's key (SSE-KMS); None for the log bucket (SSE-S3, what log delivery takes)."""
    log_bucket: aws.s3.Bucket | None
    """Where server access logs go; None with access logging off (and for the log bucket)."""
    tags: dict[str, str]


class ObjectStore(pulumi.ComponentResource):
    """S3 buckets per purpose and their KMS key. Type token `dex:aws:ObjectStore`."""

    kms_key_arn: pulumi.Output[str]
    bucket_names: dict[str, pulumi.Output[str]]
    bucket_arns: dict[str, pulumi.Output[str]]
    contract: ObjectStoreOutputs

    def __init__(
        self, name: str, args: ObjectStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:aws:ObjectStore", name, None, opts)
        tags = {"component": "object-store"}
        self._args = args
        key = customer_key(
            f"{name}-key",
            KeyArgs(
                description="DEX lake and platform buckets",
                protect=args.protect,
                tags=tags,
                account_id=args.account_id,
                partition=args.partition,
            ),
            self,
        )
        log_bucket = None
        if args.access_logging:
            log_bucket = self._bucket(
                name, BucketArgs(purpose="access-logs", key=None, log_bucket=None, tags=tags)
            )
        buckets = {
            purpose: self._bucket(
                name, BucketArgs(purpose=purpose, key=key, log_bucket=log_bucket, tags=tags)
            )
            for purpose in BUCKET_PURPOSES
        }
        self.kms_key_arn = key.arn
        self.bucket_names = {p: b.bucket for p, b in buckets.items()}
        self.bucket_arns = {p: b.arn for p, b in buckets.items()}
        self.contract = ObjectStoreOutputs(
            bucket_names=self.bucket_names,
            bucket_urls={p: b.bucket.apply(lambda n: f"s3://{n}") for p, b in buckets.items()},
        )
        self.register_outputs(
            {
                **contract_outputs(self.contract),
                "kms_key_arn": self.kms_key_arn,
                "access_log_bucket": log_bucket.bucket if log_bucket else None,
            }
        )

    def _bucket(self, name: str, spec: BucketArgs) -> aws.s3.Bucket:
        """The bucket and its settings, in this order: ownership, public access blocks,
        encryption, versioning, lifecycle, policy, access logging."""
        args = self._args
        purpose = spec.purpose
        holds_data = purpose in (*LAKE_LAYERS, "mlflow")
        bucket = aws.s3.Bucket(
            f"{name}-{purpose}",
            bucket_prefix=f"{args.name_prefix}-{purpose}-",
            force_destroy=args.force_destroy,
            tags={
                **spec.tags,
                "purpose": purpose,
                "data-layer": purpose if purpose in LAKE_LAYERS else "platform",
            },
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect and holds_data),
        )
        block = self._closed_to_the_public(f"{name}-{purpose}", bucket)
        self._encryption(f"{name}-{purpose}", bucket, spec.key)
        self._versions_and_lifecycle(f"{name}-{purpose}", bucket, purpose)
        self._policy(f"{name}-{purpose}", bucket, purpose, block)
        if spec.log_bucket is not None:
            aws.s3.BucketLogging(
                f"{name}-{purpose}-logging",
                bucket=bucket.id,
                target_bucket=spec.log_bucket.id,
                target_prefix=f"{purpose}/",
                opts=pulumi.ResourceOptions(parent=self),
            )
        return bucket

    def _closed_to_the_public(
        self, prefix: str, bucket: aws.s3.Bucket
    ) -> aws.s3.BucketPublicAccessBlock:
        """ACLs off (the bucket owner owns every object) and all four public access blocks."""
        child = pulumi.ResourceOptions(parent=self)
        aws.s3.BucketOwnershipControls(
            f"{prefix}-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        return aws.s3.BucketPublicAccessBlock(
            f"{prefix}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )

    def _encryption(self, prefix: str, bucket: aws.s3.Bucket, key: aws.kms.Key | None) -> None:
        """SSE-KMS with the store's key and bucket keys on, or SSE-S3 without a key."""
        if key is not None:
            sse = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(  # noqa: E501
                sse_algorithm="aws:kms", kms_master_key_id=key.arn
            )
        else:
            sse = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(  # noqa: E501
                sse_algorithm="AES256"
            )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{prefix}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=sse,
                    bucket_key_enabled=key is not None,
                )
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _versions_and_lifecycle(self, prefix: str, bucket: aws.s3.Bucket, purpose: str) -> None:
        """Versioning on, then the purpose's lifecycle rules (which expire old versions)."""
        versioning = aws.s3.BucketVersioning(
            f"{prefix}-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{prefix}-lifecycle",
            bucket=bucket.id,
            rules=_rules_args(lifecycle_rules(purpose, self._args)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )

    def _policy(
        self,
        prefix: str,
        bucket: aws.s3.Bucket,
        purpose: str,
        block: aws.s3.BucketPublicAccessBlock,
    ) -> None:
        """TLS (1.2+) only; the log bucket also admits S3's log delivery from this account."""
        policy = bucket.arn.apply(iam.deny_insecure_transport)
        if purpose == "access-logs":
            policy = pulumi.Output.all(bucket.arn, self._args.account_id).apply(
                lambda a: _log_bucket_policy(a[0], a[1])
            )
        aws.s3.BucketPolicy(
            f"{prefix}-policy",
            bucket=bucket.id,
            policy=policy,
            # Public-access blocks first, so the policy never lands on an open bucket.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )


def _log_bucket_policy(bucket_arn: str, account_id: str) -> str:
    doc = json.loads(iam.deny_insecure_transport(bucket_arn))
    doc["Statement"].append(
        {
            "Sid": "S3ServerAccessLogsDelivery",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }
    )
    return json.dumps(doc, sort_keys=True)
