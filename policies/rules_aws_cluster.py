"""AWS cluster rules: EKS clusters, node groups and pod identities, and the ECR repositories
their images come from."""

from __future__ import annotations

from collections.abc import Iterator

from policies.model import (
    ADVISE,
    ALWAYS,
    PROD,
    WORLD,
    StackSubject,
    Subject,
    as_list,
    resource_rule,
    stack_rule,
)
from policies.rules_aws import _names
from policies.rules_aws_lifecycle import eks_support_ended

EKS = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ADDON = "aws:eks/addon:Addon"


# -- EKS ----------------------------------------------------------------------------------------


@resource_rule(
    "AWS-EKS-001",
    "EKS API endpoint is private or restricted",
    "critical",
    ALWAYS,
    [EKS],
    "Set endpoint_public_access false, or list only your own ranges in public_access_cidrs.",
    ["CIS-EKS-1.4.0:5.4.1", "CIS-EKS-1.4.0:5.4.2"],
)
def eks_endpoint(r: Subject) -> Iterator[str]:
    vpc = r.get("vpcConfig") or {}
    public = vpc.get("endpointPublicAccess", True)  # AWS's default is public
    cidrs = as_list(vpc.get("publicAccessCidrs")) or ["0.0.0.0/0"]
    if public and any(c in WORLD for c in cidrs):
        yield "the Kubernetes API is reachable from the whole internet"


@resource_rule(
    "AWS-EKS-002",
    "EKS encrypts secrets with KMS",
    "high",
    ALWAYS,
    [EKS],
    "Add encryption_config with a KMS key and resources ['secrets'].",
    ["CIS-EKS-1.4.0:5.3.1"],
)
def eks_secrets_encryption(r: Subject) -> Iterator[str]:
    config = r.get("encryptionConfig") or {}
    if "secrets" not in as_list(config.get("resources")):
        yield "Kubernetes secrets are not envelope-encrypted"


@resource_rule(
    "AWS-EKS-003",
    "EKS logs every control-plane component",
    "medium",
    PROD,
    [EKS],
    "Enable api, audit, authenticator, controllerManager and scheduler logs.",
    ["CIS-EKS-1.4.0:2.1.1"],
)
def eks_logging(r: Subject) -> Iterator[str]:
    missing = {"api", "audit", "authenticator", "controllerManager", "scheduler"} - set(
        as_list(r.get("enabledClusterLogTypes"))
    )
    if missing:
        yield f"control-plane logs not enabled: {', '.join(sorted(missing))}"


@resource_rule(
    "AWS-EKS-004",
    "EKS runs a Kubernetes version AWS still supports",
    "high",
    ALWAYS,
    [EKS],
    "Pin `version` and upgrade before the end of extended support (AWS-EKS-007 warns at the "
    "end of standard support).",
    ["NIST-800-53:SI-2"],
    "Past the end of EKS extended support a version gets no patches and AWS upgrades the "
    "control plane on its own schedule; an unpinned version is whatever EKS defaults to on "
    "the day of creation. Dates: `policies/rules_aws_lifecycle.py` (EKS release calendar).",
)
def eks_version(r: Subject) -> Iterator[str]:
    version = str(r.get("version") or "")
    if not version:
        yield "version is not pinned: EKS picks its default on the day of creation"
        return
    ended = eks_support_ended(version, extended=True)
    if ended:
        yield f"Kubernetes {version} left EKS extended support on {ended}: no patches"


@resource_rule(
    "AWS-EKS-005",
    "Node groups pin their AMI type and allow no SSH",
    "medium",
    PROD,
    [NODE_GROUP],
    "Set ami_type explicitly; remove remote_access (use SSM).",
)
def eks_node_groups(r: Subject) -> Iterator[str]:
    if not r.get("amiType"):
        yield "amiType is not pinned"
    if r.get("remoteAccess"):
        yield "remoteAccess (SSH) is enabled"


@stack_rule(
    "AWS-EKS-006",
    "Pods get IAM roles of their own (EKS Pod Identity or IRSA), not the node's",
    "high",
    ALWAYS,
    [EKS, ADDON, "aws:iam/openIdConnectProvider:OpenIdConnectProvider"],
    "Install the eks-pod-identity-agent add-on and give each workload a role through an "
    "aws.eks.PodIdentityAssociation (or, for IRSA, an aws.iam.OpenIdConnectProvider for the "
    "cluster's issuer); never widen the node role.",
    ["CIS-EKS-1.4.0:5.2.1"],
)
def eks_pod_roles(stack: StackSubject) -> Iterator[tuple[str, str]]:
    agents = {
        a.props.get("clusterName")
        for a in stack.of_type(ADDON)
        if a.props.get("addonName") == "eks-pod-identity-agent"
    }
    issuers = _names(stack.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider"), "url")
    for cluster in stack.of_type(EKS):
        # an agent whose cluster name is not known yet (first preview) may be this cluster's
        if cluster.props.get("name") in agents or any(not isinstance(a, str) for a in agents):
            continue
        identities = cluster.props.get("identities")
        try:
            issuer = identities[0]["oidcs"][0]["issuer"]  # type: ignore[index]
        except (TypeError, KeyError, IndexError):
            issuer = None
        if issuer is not None and issuer in issuers:
            continue
        if issuer is None and issuers:
            continue
        yield (
            cluster.urn,
            "no eks-pod-identity-agent add-on and no IAM OIDC provider for the cluster: "
            "pods can only use the node's role",
        )


# -- ECR ------------------------------------------------------------------------------------------


@resource_rule(
    "AWS-ECR-001",
    "ECR scans images on push",
    "high",
    ALWAYS,
    ["aws:ecr/repository:Repository"],
    "Set image_scanning_configuration.scan_on_push true.",
    ["CIS-EKS-1.4.0:5.1.1"],
)
def ecr_scan(r: Subject) -> Iterator[str]:
    if (r.get("imageScanningConfiguration") or {}).get("scanOnPush") is not True:
        yield "scanOnPush is not true"


@resource_rule(
    "AWS-ECR-002",
    "ECR tags are immutable",
    "medium",
    PROD,
    ["aws:ecr/repository:Repository"],
    "Set image_tag_mutability IMMUTABLE; deploy by digest.",
)
def ecr_immutable(r: Subject) -> Iterator[str]:
    if r.get("imageTagMutability", "MUTABLE") != "IMMUTABLE":
        yield "tags are mutable: a tag can be moved to another image"


@stack_rule(
    "AWS-ECR-003",
    "Every ECR repository has a lifecycle policy",
    "low",
    ADVISE,
    ["aws:ecr/repository:Repository", "aws:ecr/lifecyclePolicy:LifecyclePolicy"],
    "Add an aws.ecr.LifecyclePolicy keeping the newest images.",
)
def ecr_lifecycle(stack: StackSubject) -> Iterator[tuple[str, str]]:
    covered = _names(stack.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy"), "repository")
    for repo in stack.of_type("aws:ecr/repository:Repository"):
        if repo.props.get("name") not in covered:
            yield repo.urn, "repository has no lifecycle policy"
