"""AWS workload identity: one IAM role per workload, with least-privilege access to exactly
the buckets and prefixes it needs, handed to its Kubernetes service account by EKS Pod
Identity.

Each role trusts only the EKS Pod Identity service (`pods.eks.amazonaws.com`, with
`sts:AssumeRole` and `sts:TagSession`); a `PodIdentityAssociation` names the one
namespace/service account that gets it. The service account needs no annotation: the Pod
Identity agent on the node serves the credentials (Amazon EKS User Guide, "Learn how EKS
Pod Identity grants pods access to AWS services")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws import iam
from components.contracts import WorkloadIdentityOutputs, WorkloadSpec, contract_outputs


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    name_prefix: str
    workloads: tuple[WorkloadSpec, ...]
    cluster_name: pulumi.Input[str]
    """The EKS cluster whose service accounts get the roles."""
    bucket_arns: dict[str, pulumi.Output[str]]
    kms_key_arn: pulumi.Input[str]


class WorkloadIdentity(pulumi.ComponentResource):
    """IAM roles for workloads via EKS Pod Identity. Type token `dex:aws:WorkloadIdentity`."""

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
        bindings: list[pulumi.Resource] = []
        for spec in args.workloads:
            role = aws.iam.Role(
                f"{name}-{spec.name}",
                name=f"{args.name_prefix}-{spec.name}",
                description=(
                    f"DEX {spec.name}: {spec.namespace}/{spec.service_account} via EKS Pod Identity"
                ),
                assume_role_policy=iam.pod_identity_trust(),
                max_session_duration=3600,
                tags={**tags, "workload": spec.name},
                opts=child,
            )
            policies: list[pulumi.Resource] = []
            if spec.grants:
                policy = pulumi.Output.all(
                    args.kms_key_arn, *[args.bucket_arns[p] for p in purposes]
                ).apply(_access_for(spec, purposes))
                policies.append(
                    aws.iam.RolePolicy(
                        f"{name}-{spec.name}-buckets", role=role.id, policy=policy, opts=child
                    )
                )
            bindings.append(
                aws.eks.PodIdentityAssociation(
                    f"{name}-{spec.name}-association",
                    cluster_name=args.cluster_name,
                    namespace=spec.namespace,
                    service_account=spec.service_account,
                    role_arn=role.arn,
                    tags={**tags, "workload": spec.name},
                    # an association is an API object: it needs the cluster, not its agent
                    opts=pulumi.ResourceOptions(parent=self, depends_on=policies),
                )
            )
            identities[spec.name] = role.arn
            # Pod Identity needs no service account annotation.
            annotations[spec.name] = pulumi.Output.from_input({})
        self.contract = WorkloadIdentityOutputs(
            service_account_annotations=annotations,
            identities=identities,
            bindings=tuple(bindings),
        )
        self.register_outputs(contract_outputs(self.contract))


def _access_for(spec: WorkloadSpec, purposes: list[str]) -> Callable[[list[Any]], str]:
    def access(values: list[Any]) -> str:
        arns = dict(zip(purposes, values[1:], strict=True))
        return iam.bucket_access(spec.grants, arns, values[0])

    return access
