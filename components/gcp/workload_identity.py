"""GCP workload identity: one Google service account per workload, impersonable only by its
Kubernetes service account, with bucket-level (never project-wide) storage roles, narrowed
to key prefixes by IAM conditions where the grant names prefixes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.contracts import (
    BucketGrant,
    WorkloadIdentityOutputs,
    WorkloadSpec,
    contract_outputs,
)

SA_ANNOTATION = "iam.gke.io/gcp-service-account"
ROLES = {"read": "roles/storage.objectViewer", "write": "roles/storage.objectUser"}


def _condition_for(grant: BucketGrant) -> Callable[[str], gcp.storage.BucketIAMMemberConditionArgs]:
    def condition(bucket: str) -> gcp.storage.BucketIAMMemberConditionArgs:
        found = prefix_condition(bucket, grant)
        assert found is not None
        return gcp.storage.BucketIAMMemberConditionArgs(**found)

    return condition


def prefix_condition(bucket: str, grant: BucketGrant) -> dict[str, str] | None:
    """The IAM condition limiting a grant to its prefixes (listing the bucket stays allowed,
    since a list request names the bucket, not an object)."""
    if not grant.prefixes:
        return None
    objects = " || ".join(
        f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{p}")'
        for p in grant.prefixes
    )
    return {
        "title": f"{grant.purpose}-prefixes",
        "description": f"Only {', '.join(grant.prefixes)} in {grant.purpose}",
        "expression": f'resource.type == "storage.googleapis.com/Bucket" || {objects}',
    }


def _member_of(ksa: str) -> Callable[[str], str]:
    """The IAM member of a Kubernetes service account (`namespace/name`) in a pool."""

    def member(pool: str) -> str:
        return f"serviceAccount:{pool}[{ksa}]"

    return member


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    project: str
    name_prefix: str
    workload_pool: pulumi.Input[str]
    """The cluster's `workload_identity_config.workload_pool` output, not a string built from
    the project: the pool exists only once the cluster does, and the IAM API refuses a member
    of a pool that does not exist ("Identity Pool does not exist"), so each binding must
    depend on the cluster."""
    workloads: tuple[WorkloadSpec, ...]
    bucket_names: dict[str, pulumi.Output[str]]


class WorkloadIdentity(pulumi.ComponentResource):
    """Service accounts and bindings. Type token `dex:gcp:WorkloadIdentity`."""

    contract: WorkloadIdentityOutputs

    def __init__(
        self, name: str, args: WorkloadIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:gcp:WorkloadIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        annotations: dict[str, pulumi.Output[dict[str, str]]] = {}
        identities: dict[str, pulumi.Output[str]] = {}
        bindings: list[pulumi.Resource] = []
        pool = pulumi.Output.from_input(args.workload_pool)
        for spec in args.workloads:
            sa = gcp.serviceaccount.Account(
                f"{name}-{spec.name}",
                account_id=f"{args.name_prefix}-{spec.name}",  # 6-30: checked by the config
                display_name=f"DEX {spec.name} ({spec.namespace}/{spec.service_account})",
                project=args.project,
                opts=child,
            )
            ksa = f"{spec.namespace}/{spec.service_account}"
            bindings.append(
                gcp.serviceaccount.IAMMember(
                    f"{name}-{spec.name}-wi",
                    service_account_id=sa.name,
                    role="roles/iam.workloadIdentityUser",
                    member=pool.apply(_member_of(ksa)),
                    opts=child,
                )
            )
            for grant in spec.grants:
                bucket = args.bucket_names[grant.purpose]
                gcp.storage.BucketIAMMember(
                    f"{name}-{spec.name}-{grant.purpose}",
                    bucket=bucket,
                    role=ROLES[grant.access],
                    member=sa.member,
                    condition=bucket.apply(_condition_for(grant)) if grant.prefixes else None,
                    opts=child,
                )
            identities[spec.name] = sa.email
            annotations[spec.name] = sa.email.apply(lambda e: {SA_ANNOTATION: e})
        self.contract = WorkloadIdentityOutputs(
            service_account_annotations=annotations,
            identities=identities,
            bindings=tuple(bindings),
        )
        self.register_outputs(contract_outputs(self.contract))
