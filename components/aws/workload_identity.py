"""AWS workload identity: one IAM role per workload, assumable only by its Kubernetes
service account (IRSA), with least-privilege access to exactly the buckets and prefixes it
needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws import iam
from components.contracts import WorkloadIdentityOutputs, WorkloadSpec, contract_outputs

ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    name_prefix: str
    workloads: tuple[WorkloadSpec, ...]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    bucket_arns: dict[str, pulumi.Output[str]]
    kms_key_arn: pulumi.Input[str]


class WorkloadIdentity(pulumi.ComponentResource):
    """IAM roles for service accounts. Type token `dex:aws:WorkloadIdentity`."""

    contract: WorkloadIdentityOutputs

    def __init__(
        self, name: str, args: WorkloadIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:aws:WorkloadIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"component": "workload-identity"}
        purposes = sorted(args.bucket_arns)
        annotations: dict[str, pulumi.Output[dict[str, str]]] = {}
        identities: dict[str, pulumi.Output[str]] = {}
        for spec in args.workloads:
            trust = pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer_url).apply(
                _trust_for(spec)
            )
            role = aws.iam.Role(
                f"{name}-{spec.name}",
                name=f"{args.name_prefix}-{spec.name}",
                description=f"DEX {spec.name}: {spec.namespace}/{spec.service_account} via IRSA",
                assume_role_policy=trust,
                max_session_duration=3600,
                tags={**tags, "workload": spec.name},
                opts=child,
            )
            if spec.grants:
                policy = pulumi.Output.all(
                    args.kms_key_arn, *[args.bucket_arns[p] for p in purposes]
                ).apply(_access_for(spec, purposes))
                aws.iam.RolePolicy(
                    f"{name}-{spec.name}-buckets", role=role.id, policy=policy, opts=child
                )
            identities[spec.name] = role.arn
            annotations[spec.name] = role.arn.apply(lambda arn: {ROLE_ANNOTATION: arn})
        self.contract = WorkloadIdentityOutputs(
            service_account_annotations=annotations, identities=identities
        )
        self.register_outputs(contract_outputs(self.contract))


def _trust_for(spec: WorkloadSpec) -> Callable[[list[Any]], str]:
    def trust(values: list[Any]) -> str:
        return iam.irsa_trust(values[0], values[1], spec.namespace, spec.service_account)

    return trust


def _access_for(spec: WorkloadSpec, purposes: list[str]) -> Callable[[list[Any]], str]:
    def access(values: list[Any]) -> str:
        arns = dict(zip(purposes, values[1:], strict=True))
        return iam.bucket_access(spec.grants, arns, values[0])

    return access
