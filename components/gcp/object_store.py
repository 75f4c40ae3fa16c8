"""GCP object store: the lake (raw, bronze, silver, gold), MLflow artifacts and Airflow logs in
GCS. Every bucket: uniform bucket-level access, public access prevention enforced,
versioning, a lifecycle of its own, soft delete; CMEK and access logs in prod."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from components.contracts import BUCKET_PURPOSES, LAKE_LAYERS, ObjectStoreOutputs, contract_outputs

ACCESS_LOG_WRITER = "group:cloud-storage-analytics@google.com"
"""Who writes Cloud Storage usage logs into the log bucket."""


@dataclass(frozen=True)
class ObjectStoreArgs:
    project: str
    region: str
    name_prefix: str
    raw_infrequent_access_after_days: int
    raw_archive_after_days: int
    noncurrent_version_expiration_days: int
    access_logging: bool
    cmek: bool
    """Encrypt with a customer-managed Cloud KMS key (prod)."""
    storage_service_account: str
    """The project's GCS service agent, which must be allowed to use the key."""
    force_destroy: bool
    protect: bool
    log_retention_days: int = 90


def lifecycle_rules(purpose: str, args: ObjectStoreArgs) -> list[dict[str, Any]]:
    """Lifecycle rules per purpose as plain data: (action, condition) pairs."""
    rules: list[dict[str, Any]] = [
        {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 7}},
        {
            "action": {"type": "Delete"},
            "condition": {
                "days_since_noncurrent_time": args.noncurrent_version_expiration_days,
                "with_state": "ARCHIVED",
            },
        },
    ]
    if purpose == "raw":
        rules += [
            {
                "action": {"type": "SetStorageClass", "storage_class": "NEARLINE"},
                "condition": {
                    "age": args.raw_infrequent_access_after_days,
                    "matches_storage_classes": ["STANDARD"],
                },
            },
            {
                "action": {"type": "SetStorageClass", "storage_class": "ARCHIVE"},
                "condition": {
                    "age": args.raw_archive_after_days,
                    "matches_storage_classes": ["NEARLINE"],
                },
            },
        ]
    elif purpose in ("bronze", "silver"):
        rules.append(
            {
                "action": {"type": "SetStorageClass", "storage_class": "NEARLINE"},
                "condition": {
                    "age": args.raw_archive_after_days,
                    "matches_storage_classes": ["STANDARD"],
                },
            }
        )
    elif purpose in ("airflow-logs", "access-logs"):
        rules.append({"action": {"type": "Delete"}, "condition": {"age": args.log_retention_days}})
    return rules


@dataclass(frozen=True, kw_only=True)
class BucketArgs:
    """One bucket of the store and what it is wired to."""

    purpose: str
    """A `BUCKET_PURPOSES` entry, or `access-logs` for the log bucket."""
    key_name: pulumi.Output[str] | None
    """The CMEK key; None keeps Google-managed encryption."""
    log_bucket: gcp.storage.Bucket | None
    """Where usage logs go; None with access logging off (and for the log bucket)."""
    labels: dict[str, str]
    depends_on: Sequence[pulumi.Resource]
    """What must exist first: the key grant, and the log writer's grant on the log bucket."""


class ObjectStore(pulumi.ComponentResource):
    """GCS buckets per purpose. Type token `dex:gcp:ObjectStore`."""

    bucket_names: dict[str, pulumi.Output[str]]
    contract: ObjectStoreOutputs

    def __init__(
        self, name: str, args: ObjectStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:gcp:ObjectStore", name, None, opts)
        self._args = args
        labels = {"component": "object-store"}
        key_name, depends = self._cmek(name, args, labels) if args.cmek else (None, [])
        log_bucket = None
        logged = depends
        if args.access_logging:
            log_bucket, writer = self._log_bucket(name, labels, depends)
            logged = [*depends, writer]
        buckets = {
            p: self._bucket(
                name,
                BucketArgs(
                    purpose=p,
                    key_name=key_name,
                    log_bucket=log_bucket,
                    labels=labels,
                    depends_on=logged,
                ),
            )
            for p in BUCKET_PURPOSES
        }
        self.bucket_names = {p: b.name for p, b in buckets.items()}
        self.contract = ObjectStoreOutputs(
            bucket_names=self.bucket_names,
            bucket_urls={p: b.name.apply(lambda n: f"gs://{n}") for p, b in buckets.items()},
        )
        self.register_outputs(contract_outputs(self.contract))

    def _cmek(
        self, name: str, args: ObjectStoreArgs, labels: dict[str, str]
    ) -> tuple[pulumi.Output[str], list[pulumi.Resource]]:
        """A key ring and key for the buckets, usable by the GCS service agent; the key's
        name and the grant buckets must wait for. Protected like the stack's other stateful
        resources (`dex:deletion_protection`): a destroyed key ring leaves the project only
        from the state ("KeyRings cannot be deleted from Google Cloud Platform", pulumi-gcp
        kms.KeyRing), so recreating the stack needs `pulumi import` of the ring
        (docs/config.md)."""
        ring = gcp.kms.KeyRing(
            f"{name}-keyring",
            name=f"{args.name_prefix}-storage",
            location=args.region,
            project=args.project,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        key = gcp.kms.CryptoKey(
            f"{name}-key",
            name=f"{args.name_prefix}-buckets",
            key_ring=ring.id,
            rotation_period="7776000s",
            labels=labels,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        grant = gcp.kms.CryptoKeyIAMMember(
            f"{name}-key-gcs",
            crypto_key_id=key.id,
            role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=f"serviceAccount:{args.storage_service_account}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        return key.id, [grant]

    def _log_bucket(
        self, name: str, labels: dict[str, str], depends: list[pulumi.Resource]
    ) -> tuple[gcp.storage.Bucket, gcp.storage.BucketIAMMember]:
        """The access-log bucket (Google-managed encryption) and its writer's grant."""
        log_bucket = self._bucket(
            name,
            BucketArgs(
                purpose="access-logs",
                key_name=None,
                log_bucket=None,
                labels=labels,
                depends_on=depends,
            ),
        )
        # Usage logs are written by Google's analytics group, which needs to create
        # objects in the log bucket (Cloud Storage "Usage logs & storage logs",
        # delivery; the client libraries' enableLogging grants exactly this).
        writer = gcp.storage.BucketIAMMember(
            f"{name}-access-logs-writer",
            bucket=log_bucket.name,
            role="roles/storage.objectCreator",
            member=ACCESS_LOG_WRITER,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return log_bucket, writer

    def _bucket(self, name: str, spec: BucketArgs) -> gcp.storage.Bucket:
        args = self._args
        purpose, key_name, log_bucket = spec.purpose, spec.key_name, spec.log_bucket
        holds_data = purpose in (*LAKE_LAYERS, "mlflow")
        return gcp.storage.Bucket(
            f"{name}-{purpose}",
            # Bucket names are global; the project id makes them unique.
            # the stack config checks the 3-63 character rule (no silent truncation)
            name=f"{args.project}-{args.name_prefix}-{purpose}",
            project=args.project,
            location=args.region,
            storage_class="STANDARD",
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=True),
            soft_delete_policy=gcp.storage.BucketSoftDeletePolicyArgs(
                retention_duration_seconds=7 * 24 * 3600
            ),
            lifecycle_rules=[
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(**r["action"]),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(**r["condition"]),
                )
                for r in lifecycle_rules(purpose, args)
            ],
            encryption=(
                gcp.storage.BucketEncryptionArgs(default_kms_key_name=key_name)
                if key_name is not None
                else None
            ),
            logging=(
                gcp.storage.BucketLoggingArgs(
                    log_bucket=log_bucket.name, log_object_prefix=f"{purpose}/"
                )
                if log_bucket is not None
                else None
            ),
            force_destroy=args.force_destroy,
            labels={
                **spec.labels,
                "purpose": purpose,
                "data-layer": purpose if purpose in LAKE_LAYERS else "platform",
            },
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=list(spec.depends_on), protect=args.protect and holds_data
            ),
        )
