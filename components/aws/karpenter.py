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


def controller_policy(
    partition: str,
    region: str,
    account_id: str,
    cluster_name: str,
    node_role_arn: str,
    queue_arn: str,
    instance_profile_arn: str,
) -> str:
    """The controller's permissions: Karpenter v1.14's reference policy (node lifecycle,
    EKS integration, interruption queue, resource discovery), minus the instance-profile
    management it does not need when the profile is given, minus zonal shift (off)."""
    ec2 = f"arn:{partition}:ec2:{region}"
    owned = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"}
    requested = {
        f"aws:RequestTag/kubernetes.io/cluster/{cluster_name}": "owned",
        "aws:RequestTag/eks:eks-cluster-name": cluster_name,
    }
    launched = [
        f"{ec2}:*:{kind}/*"
        for kind in (
            "fleet",
            "instance",
            "volume",
            "network-interface",
            "launch-template",
            "spot-instances-request",
        )
    ]
    statements: list[dict[str, Any]] = [
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
                "StringEquals": owned,
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedEC2InstanceActionsWithTags",
            "Effect": "Allow",
            "Resource": launched,
            "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
            "Condition": {
                "StringEquals": requested,
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedResourceCreationTagging",
            "Effect": "Allow",
            "Resource": launched,
            "Action": "ec2:CreateTags",
            "Condition": {
                "StringEquals": {
                    **requested,
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
                "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster_name},
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
        {
            "Sid": "AllowPassingInstanceRole",
            "Effect": "Allow",
            "Resource": node_role_arn,
            "Action": "iam:PassRole",
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        },
        {
            "Sid": "AllowInstanceProfileReadActions",
            "Effect": "Allow",
            "Resource": instance_profile_arn,
            "Action": "iam:GetInstanceProfile",
        },
        {
            "Sid": "AllowAPIServerEndpointDiscovery",
            "Effect": "Allow",
            "Resource": f"arn:{partition}:eks:{region}:{account_id}:cluster/{cluster_name}",
            "Action": "eks:DescribeCluster",
        },
        {
            "Sid": "AllowInterruptionQueueActions",
            "Effect": "Allow",
            "Resource": queue_arn,
            "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
        },
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
            "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
        },
        {
            "Sid": "AllowSSMReadActions",
            "Effect": "Allow",
            "Resource": f"arn:{partition}:ssm:{region}::parameter/aws/service/*",
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
    return iam.document(statements)


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


def provision(
    name: str,
    parent: pulumi.Resource,
    *,
    cluster: aws.eks.Cluster,
    cluster_name: str,
    partition: str,
    region: str,
    account_id: str,
    system: NodePoolArgs,
    batch: NodePoolArgs,
    depends_on: Sequence[pulumi.Resource],
    tags: dict[str, str],
) -> KarpenterSpec:
    """Create Karpenter's AWS resources under `parent`; `depends_on` is what the Pod
    Identity association needs first (the Pod Identity agent add-on)."""
    child = pulumi.ResourceOptions(parent=parent)
    managed = f"arn:{partition}:iam::aws:policy/{{}}"

    node_role = aws.iam.Role(
        f"{name}-karpenter-node-role",
        description=f"Nodes Karpenter launches for {cluster_name}",
        assume_role_policy=iam.service_trust("ec2.amazonaws.com"),
        tags=tags,
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
        f"{name}-karpenter-node-profile", role=node_role.name, tags=tags, opts=child
    )
    node_access = aws.eks.AccessEntry(
        f"{name}-karpenter-node-access",
        cluster_name=cluster.name,
        principal_arn=node_role.arn,
        type="EC2_LINUX",
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=node_attachments),
    )

    queue = aws.sqs.Queue(
        f"{name}-karpenter-interruptions",
        name=f"{cluster_name}-karpenter",
        message_retention_seconds=300,
        sqs_managed_sse_enabled=True,
        tags=tags,
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
            description=f"Karpenter interruption handling for {cluster_name}: {detail_type}",
            event_pattern=json.dumps({"source": [source], "detail-type": [detail_type]}),
            tags=tags,
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-karpenter-{rule_name}-target",
            rule=rule.name,
            target_id="KarpenterInterruptionQueueTarget",
            arn=queue.arn,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[queue_access]),
        )

    controller_role = aws.iam.Role(
        f"{name}-karpenter-controller",
        description=f"Karpenter controller of {cluster_name}: {NAMESPACE}/{SERVICE_ACCOUNT}",
        assume_role_policy=iam.pod_identity_trust(),
        max_session_duration=3600,
        tags=tags,
        opts=child,
    )
    policy = aws.iam.RolePolicy(
        f"{name}-karpenter-controller-policy",
        role=controller_role.id,
        policy=pulumi.Output.all(node_role.arn, queue.arn, profile.arn).apply(
            lambda a: controller_policy(
                partition, region, account_id, cluster_name, a[0], a[1], a[2]
            )
        ),
        opts=child,
    )
    association = aws.eks.PodIdentityAssociation(
        f"{name}-karpenter-controller-identity",
        cluster_name=cluster.name,
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        role_arn=controller_role.arn,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy, *depends_on]),
    )
    discovery = aws.ec2.Tag(
        f"{name}-karpenter-discovery-sg",
        resource_id=cluster.vpc_config.cluster_security_group_id,
        key=DISCOVERY_TAG,
        value=cluster_name,
        opts=child,
    )
    return KarpenterSpec(
        chart=CHART,
        chart_version=CHART_VERSION,
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        region=region,
        cluster_name=cluster.name,
        cluster_endpoint=cluster.endpoint,
        interruption_queue=queue.name,
        instance_profile=profile.name,
        node_role_name=node_role.name,
        discovery_tag=(DISCOVERY_TAG, cluster_name),
        pools=pools(system, batch),
        controller_role_arn=controller_role.arn,
        ready=(association, node_access, queue_access, discovery),
    )
