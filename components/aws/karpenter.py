"""Karpenter's AWS side: what the node autoscaler needs from the account before its Helm
release (components/k8s) can launch nodes.

- the controller's IAM role, assumed through EKS Pod Identity by `kube-system/karpenter`,
  with the permissions of Karpenter's own reference policy (v1.14, `cloudformation.yaml` of
  aws/karpenter-provider-aws), scoped to this cluster;
- the role its nodes run as, with an instance profile made here (the EC2NodeClass names it
  with `spec.instanceProfile`, so the controller needs no right to create profiles) and an
  EKS access entry of type EC2_LINUX so those nodes may join the cluster;
- the interruption queue (SQS) fed by EventBridge rules (spot interruption, rebalance,
  instance state change, scheduled health events, capacity reservation interruption), so
  Karpenter drains a node before AWS takes it away;
- discovery tags (`karpenter.sh/discovery: <cluster>`) on the cluster security group; the
  private subnets carry the same tag (components/aws/network.py).

What the Kubernetes side needs is `KarpenterSpec`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws import iam
from components.contracts import NOT_AN_OUTPUT, NodePoolArgs

CHART = "oci://public.ecr.aws/karpenter/karpenter"
"""Karpenter's Helm chart (an OCI artifact on the public ECR gallery)."""
CHART_VERSION = "1.14.1"
"""The newest release found upstream (aws/karpenter-provider-aws tag v1.14.1, chart 1.14.1);
the IAM policy below follows that version's reference CloudFormation template."""
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
DISCOVERY_TAG = "karpenter.sh/discovery"
"""Subnets and security groups tagged `karpenter.sh/discovery: <cluster>` are the ones the
EC2NodeClass selects."""

NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
)
"""Managed policies of the Karpenter node role (the reference template's list)."""

INTERRUPTION_EVENTS = {
    "health": ("aws.health", "AWS Health Event"),
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "capacity-reservation": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}
"""EventBridge rules feeding the interruption queue: (source, detail-type)."""


@dataclass(frozen=True)
class KarpenterPool:
    """One NodePool the Kubernetes side creates (with the EC2NodeClass it references)."""

    name: str
    """`system` or `batch`: also the value of the `dex.io/pool` node label."""
    instance_types: tuple[str, ...]
    """Allowed EC2 instance types (`node.kubernetes.io/instance-type` requirement)."""
    capacity_types: tuple[str, ...]
    """`karpenter.sh/capacity-type` values: `on-demand`, or `spot` then `on-demand`."""
    max_nodes: int
    """How many nodes this pool may add (turn it into the NodePool's `limits`)."""
    disk_size_gib: int
    """Root volume per node (EC2NodeClass blockDeviceMappings, gp3, encrypted)."""
    labels: dict[str, str]
    taints: tuple[tuple[str, str, str], ...]
    """(key, value, effect) with Kubernetes effect names (`NoSchedule`)."""


@dataclass(frozen=True)
class KarpenterSpec:
    """What components/k8s needs to install Karpenter and its NodePools on EKS."""

    chart: str
    chart_version: str
    namespace: str
    service_account: str
    """The controller's service account (Helm `serviceAccount.name`); its Pod Identity
    association exists (`ready`)."""
    region: str
    """Set as the controller's `AWS_REGION` (Helm `controller.env`): without it Karpenter
    asks IMDS for the region, which pods cannot reach on nodes with hop limit 1."""
    cluster_name: pulumi.Output[str]
    """Helm value `settings.clusterName`."""
    cluster_endpoint: pulumi.Output[str]
    """Helm value `settings.clusterEndpoint`."""
    interruption_queue: pulumi.Output[str]
    """Helm value `settings.interruptionQueue` (the SQS queue name)."""
    instance_profile: pulumi.Output[str]
    """EC2NodeClass `spec.instanceProfile` (do not also set `spec.role`)."""
    node_role_name: pulumi.Output[str]
    discovery_tag: tuple[str, str]
    """EC2NodeClass subnet and security group selector: tag key and value."""
    pools: tuple[KarpenterPool, ...]
    controller_role_arn: pulumi.Output[str]
    ready: tuple[pulumi.Resource, ...] = field(default=(), metadata=NOT_AN_OUTPUT)
    """What must exist before the Helm release: the controller's Pod Identity association,
    the node role's access entry, the queue and its policy, the security group's discovery
    tag."""


def pools(system: NodePoolArgs, batch: NodePoolArgs) -> tuple[KarpenterPool, ...]:
    """The NodePools: `system` adds on-demand capacity beyond the managed node group's fixed
    base (which runs Karpenter itself); `batch` is spot in prod, tainted `dex.io/pool=batch`
    so only workloads that tolerate it land there, and scales from zero."""
    return (
        KarpenterPool(
            name="system",
            instance_types=tuple(system.instance_types),
            capacity_types=("on-demand",),
            max_nodes=max(system.max_size - system.desired_size, 0),
            disk_size_gib=system.disk_size_gib,
            labels={"dex.io/pool": "system"},
            taints=(),
        ),
        KarpenterPool(
            name="batch",
            instance_types=tuple(batch.instance_types),
            capacity_types=("spot", "on-demand") if batch.spot else ("on-demand",),
            max_nodes=batch.max_size,
            disk_size_gib=batch.disk_size_gib,
            labels={"dex.io/pool": "batch"},
            taints=(("dex.io/pool", "batch", "NoSchedule"),),
        ),
    )


@dataclass(frozen=True, kw_only=True)
class ControllerPolicyArgs:
    """What the controller's policy is scoped to: this cluster, its node role, instance
    profile and interruption queue."""

    partition: str
    region: str
    account_id: str
    cluster_name: str
    node_role_arn: str
    queue_arn: str
    instance_profile_arn: str


def controller_policy(args: ControllerPolicyArgs) -> str:
    """The controller's permissions: Karpenter v1.14's reference policy (node lifecycle,
    EKS integration, interruption queue, resource discovery), minus the instance-profile
    management it does not need when the profile is given, minus zonal shift (off)."""
    return iam.document(
        [
            *_launch_statements(args),
            *_tag_and_delete_statements(args),
            *_node_role_statements(args),
            {
                "Sid": "AllowAPIServerEndpointDiscovery",
                "Effect": "Allow",
                "Resource": (
                    f"arn:{args.partition}:eks:{args.region}:{args.account_id}"
                    f":cluster/{args.cluster_name}"
                ),
                "Action": "eks:DescribeCluster",
            },
            {
                "Sid": "AllowInterruptionQueueActions",
                "Effect": "Allow",
                "Resource": args.queue_arn,
                "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            },
            *_discovery_statements(args),
        ]
    )


def _ec2(args: ControllerPolicyArgs) -> str:
    """The prefix of EC2 resource ARNs in the cluster's region."""
    return f"arn:{args.partition}:ec2:{args.region}"


def _owned(cluster_name: str) -> dict[str, str]:
    """Condition: the resource carries the cluster's ownership tag."""
    return {f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"}


def _requested(cluster_name: str) -> dict[str, str]:
    """Condition: the request tags what it creates as the cluster's."""
    return {
        f"aws:RequestTag/kubernetes.io/cluster/{cluster_name}": "owned",
        "aws:RequestTag/eks:eks-cluster-name": cluster_name,
    }


def _launched(args: ControllerPolicyArgs) -> list[str]:
    """What a launch creates: fleets, instances, volumes, ENIs, launch templates, spot
    requests."""
    return [
        f"{_ec2(args)}:*:{kind}/*"
        for kind in (
            "fleet",
            "instance",
            "volume",
            "network-interface",
            "launch-template",
            "spot-instances-request",
        )
    ]


def _launch_statements(args: ControllerPolicyArgs) -> list[dict[str, Any]]:
    """Node lifecycle, launching: from any image, subnet or security group, with launch
    templates Karpenter made, creating only resources tagged for this cluster."""
    ec2 = _ec2(args)
    return [
        {
            "Sid": "AllowScopedEC2InstanceAccessActions",
            "Effect": "Allow",
            "Resource": [
                f"{ec2}::image/*",
                f"{ec2}::snapshot/*",
                f"{ec2}:*:security-group/*",
                f"{ec2}:*:subnet/*",
                f"{ec2}:*:capacity-reservation/*",
                f"{ec2}:*:placement-group/*",
            ],
            "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
        },
        {
            "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
            "Effect": "Allow",
            "Resource": f"{ec2}:*:launch-template/*",
            "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            "Condition": {
                "StringEquals": _owned(args.cluster_name),
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedEC2InstanceActionsWithTags",
            "Effect": "Allow",
            "Resource": _launched(args),
            "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
            "Condition": {
                "StringEquals": _requested(args.cluster_name),
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        },
    ]


def _tag_and_delete_statements(args: ControllerPolicyArgs) -> list[dict[str, Any]]:
    """Node lifecycle, tagging and deletion: only of what Karpenter launched for this
    cluster."""
    ec2 = _ec2(args)
    owned = _owned(args.cluster_name)
    return [
        {
            "Sid": "AllowScopedResourceCreationTagging",
            "Effect": "Allow",
            "Resource": _launched(args),
            "Action": "ec2:CreateTags",
            "Condition": {
                "StringEquals": {
                    **_requested(args.cluster_name),
                    "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                },
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedResourceTagging",
            "Effect": "Allow",
            "Resource": f"{ec2}:*:instance/*",
            "Action": "ec2:CreateTags",
            "Condition": {
                "StringEquals": owned,
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": args.cluster_name},
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                },
            },
        },
        {
            "Sid": "AllowScopedDeletion",
            "Effect": "Allow",
            "Resource": [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
            "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
            "Condition": {
                "StringEquals": owned,
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
            },
        },
    ]


def _node_role_statements(args: ControllerPolicyArgs) -> list[dict[str, Any]]:
    """The node role passed to EC2 only, and a read of the instance profile made here."""
    return [
        {
            "Sid": "AllowPassingInstanceRole",
            "Effect": "Allow",
            "Resource": args.node_role_arn,
            "Action": "iam:PassRole",
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        },
        {
            "Sid": "AllowInstanceProfileReadActions",
            "Effect": "Allow",
            "Resource": args.instance_profile_arn,
            "Action": "iam:GetInstanceProfile",
        },
    ]


def _discovery_statements(args: ControllerPolicyArgs) -> list[dict[str, Any]]:
    """Resource discovery: what exists in the region, the AMI parameters, prices."""
    return [
        {
            # EC2 Describe* and pricing:GetProducts support no resource-level permissions:
            # IAM accepts only Resource "*" for them; the region condition narrows it.
            "Sid": "AllowRegionalReadActions",
            "Effect": "Allow",
            "Resource": "*",
            "Action": [
                "ec2:DescribeCapacityReservations",
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceStatus",
                "ec2:DescribeInstanceTypeOfferings",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplates",
                "ec2:DescribePlacementGroups",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSpotPriceHistory",
                "ec2:DescribeSubnets",
            ],
            "Condition": {"StringEquals": {"aws:RequestedRegion": args.region}},
        },
        {
            "Sid": "AllowSSMReadActions",
            "Effect": "Allow",
            "Resource": f"arn:{args.partition}:ssm:{args.region}::parameter/aws/service/*",
            "Action": "ssm:GetParameter",
        },
        {
            # Karpenter lists instance profiles when it garbage-collects the ones it made.
            "Sid": "AllowUnscopedInstanceProfileListAction",
            "Effect": "Allow",
            "Resource": "*",
            "Action": "iam:ListInstanceProfiles",
        },
        {
            "Sid": "AllowPricingReadActions",
            "Effect": "Allow",
            "Resource": "*",
            "Action": "pricing:GetProducts",
        },
    ]


def queue_policy(queue_arn: str) -> str:
    """Only EventBridge (and SQS itself) may send to the interruption queue; TLS only."""
    return iam.document(
        [
            {
                "Sid": "EventBridgeSends",
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "DenyHTTP",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ]
    )


@dataclass(frozen=True, kw_only=True)
class KarpenterArgs:
    """What Karpenter's AWS side is made for."""

    cluster: aws.eks.Cluster
    cluster_name: str
    partition: str
    region: str
    account_id: str
    system: NodePoolArgs
    batch: NodePoolArgs
    depends_on: Sequence[pulumi.Resource]
    """What the Pod Identity association needs first (the Pod Identity agent add-on)."""
    tags: dict[str, str]


@dataclass(frozen=True)
class _NodeIdentity:
    """The role Karpenter's nodes run as, its instance profile and its access entry."""

    role: aws.iam.Role
    profile: aws.iam.InstanceProfile
    access: aws.eks.AccessEntry


@dataclass(frozen=True)
class _InterruptionQueue:
    queue: aws.sqs.Queue
    policy: aws.sqs.QueuePolicy


def provision(name: str, args: KarpenterArgs, parent: pulumi.Resource) -> KarpenterSpec:
    """Create Karpenter's AWS resources under `parent`: the node identity, the interruption
    queue, the controller's role and Pod Identity association, the discovery tag."""
    nodes = _node_identity(name, args, parent)
    interruptions = _interruption_queue(name, args, parent)
    controller_role, association = _controller(name, args, parent, nodes, interruptions.queue)
    discovery = aws.ec2.Tag(
        f"{name}-karpenter-discovery-sg",
        resource_id=args.cluster.vpc_config.cluster_security_group_id,
        key=DISCOVERY_TAG,
        value=args.cluster_name,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return KarpenterSpec(
        chart=CHART,
        chart_version=CHART_VERSION,
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        region=args.region,
        cluster_name=args.cluster.name,
        cluster_endpoint=args.cluster.endpoint,
        interruption_queue=interruptions.queue.name,
        instance_profile=nodes.profile.name,
        node_role_name=nodes.role.name,
        discovery_tag=(DISCOVERY_TAG, args.cluster_name),
        pools=pools(args.system, args.batch),
        controller_role_arn=controller_role.arn,
        ready=(association, nodes.access, interruptions.policy, discovery),
    )


def _node_identity(name: str, args: KarpenterArgs, parent: pulumi.Resource) -> _NodeIdentity:
    """The node role with `NODE_POLICIES`, its instance profile, and an EC2_LINUX access
    entry so its nodes may join the cluster."""
    child = pulumi.ResourceOptions(parent=parent)
    managed = f"arn:{args.partition}:iam::aws:policy/{{}}"
    node_role = aws.iam.Role(
        f"{name}-karpenter-node-role",
        description=f"Nodes Karpenter launches for {args.cluster_name}",
        assume_role_policy=iam.service_trust("ec2.amazonaws.com"),
        tags=args.tags,
        opts=child,
    )
    node_attachments = [
        aws.iam.RolePolicyAttachment(
            f"{name}-karpenter-node-{policy}",
            role=node_role.name,
            policy_arn=managed.format(policy),
            opts=child,
        )
        for policy in NODE_POLICIES
    ]
    profile = aws.iam.InstanceProfile(
        f"{name}-karpenter-node-profile", role=node_role.name, tags=args.tags, opts=child
    )
    node_access = aws.eks.AccessEntry(
        f"{name}-karpenter-node-access",
        cluster_name=args.cluster.name,
        principal_arn=node_role.arn,
        type="EC2_LINUX",
        tags=args.tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=node_attachments),
    )
    return _NodeIdentity(role=node_role, profile=profile, access=node_access)


def _interruption_queue(
    name: str, args: KarpenterArgs, parent: pulumi.Resource
) -> _InterruptionQueue:
    """The SQS queue, its policy, and an EventBridge rule per `INTERRUPTION_EVENTS` entry
    targeting it."""
    child = pulumi.ResourceOptions(parent=parent)
    queue = aws.sqs.Queue(
        f"{name}-karpenter-interruptions",
        name=f"{args.cluster_name}-karpenter",
        message_retention_seconds=300,
        sqs_managed_sse_enabled=True,
        tags=args.tags,
        opts=child,
    )
    queue_access = aws.sqs.QueuePolicy(
        f"{name}-karpenter-interruptions-policy",
        queue_url=queue.url,
        policy=queue.arn.apply(queue_policy),
        opts=child,
    )
    for rule_name, (source, detail_type) in INTERRUPTION_EVENTS.items():
        rule = aws.cloudwatch.EventRule(
            f"{name}-karpenter-{rule_name}",
            description=f"Karpenter interruption handling for {args.cluster_name}: {detail_type}",
            event_pattern=json.dumps({"source": [source], "detail-type": [detail_type]}),
            tags=args.tags,
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-karpenter-{rule_name}-target",
            rule=rule.name,
            target_id="KarpenterInterruptionQueueTarget",
            arn=queue.arn,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[queue_access]),
        )
    return _InterruptionQueue(queue=queue, policy=queue_access)


def _controller(
    name: str,
    args: KarpenterArgs,
    parent: pulumi.Resource,
    nodes: _NodeIdentity,
    queue: aws.sqs.Queue,
) -> tuple[aws.iam.Role, aws.eks.PodIdentityAssociation]:
    """The controller's role, its policy (`controller_policy`), and the Pod Identity
    association that hands it to `kube-system/karpenter`."""
    child = pulumi.ResourceOptions(parent=parent)
    controller_role = aws.iam.Role(
        f"{name}-karpenter-controller",
        description=f"Karpenter controller of {args.cluster_name}: {NAMESPACE}/{SERVICE_ACCOUNT}",
        assume_role_policy=iam.pod_identity_trust(),
        max_session_duration=3600,
        tags=args.tags,
        opts=child,
    )
    policy = aws.iam.RolePolicy(
        f"{name}-karpenter-controller-policy",
        role=controller_role.id,
        policy=pulumi.Output.all(nodes.role.arn, queue.arn, nodes.profile.arn).apply(
            lambda a: controller_policy(
                ControllerPolicyArgs(
                    partition=args.partition,
                    region=args.region,
                    account_id=args.account_id,
                    cluster_name=args.cluster_name,
                    node_role_arn=a[0],
                    queue_arn=a[1],
                    instance_profile_arn=a[2],
                )
            )
        ),
        opts=child,
    )
    association = aws.eks.PodIdentityAssociation(
        f"{name}-karpenter-controller-identity",
        cluster_name=args.cluster.name,
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        role_arn=controller_role.arn,
        tags=args.tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy, *args.depends_on]),
    )
    return controller_role, association
