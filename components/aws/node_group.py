"""EKS managed node groups: a launch template and the group that runs from it.

Nodes run from launch templates that require IMDSv2 (hop limit 1, so pods cannot borrow the
node's role) and encrypt their root volumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.contracts import NodePoolArgs

AMI_TYPE = "AL2023_x86_64_STANDARD"
"""Pinned AMI family for every node group (never the provider's default)."""


@dataclass(frozen=True, kw_only=True)
class NodeGroupArgs:
    """A managed node group and its launch template."""

    pool: str
    """`system`: the value of the `dex.io/pool` node label and part of every name."""
    spec: NodePoolArgs
    cluster_name: pulumi.Input[str]
    node_role_arn: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    depends_on: Sequence[pulumi.Resource]
    """What the first node needs at boot: its role's policies and the DaemonSet add-ons."""
    tags: dict[str, str]


def node_group(name: str, args: NodeGroupArgs, parent: pulumi.Resource) -> aws.eks.NodeGroup:
    """A launch template requiring IMDSv2 (hop limit 1, so pods cannot borrow the node's role)
    with an encrypted gp3 root volume, and the managed node group `{name}-{pool}-nodes`
    running from it at the size the program sets."""
    pool, spec, tags = args.pool, args.spec, args.tags
    template = aws.ec2.LaunchTemplate(
        f"{name}-{pool}-lt",
        description=f"DEX {pool} nodes: IMDSv2 only, encrypted gp3 root volume",
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled",
            http_tokens="required",
            http_put_response_hop_limit=1,
        ),
        block_device_mappings=[
            aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=spec.disk_size_gib,
                    volume_type="gp3",
                    encrypted="true",
                    delete_on_termination="true",
                ),
            )
        ],
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type="instance", tags={**tags, "Name": f"{name}-{pool}"}
            )
        ],
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return aws.eks.NodeGroup(
        f"{name}-{pool}-nodes",
        cluster_name=args.cluster_name,
        node_group_name_prefix=f"{pool}-",
        node_role_arn=args.node_role_arn,
        subnet_ids=args.subnet_ids,
        ami_type=AMI_TYPE,
        capacity_type="SPOT" if spec.spot else "ON_DEMAND",
        instance_types=spec.instance_types,
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            min_size=spec.min_size, desired_size=spec.desired_size, max_size=spec.max_size
        ),
        update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
        launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
            id=template.id, version=template.latest_version.apply(str)
        ),
        labels={"dex.io/pool": pool},
        tags=tags,
        # No autoscaler resizes this group (Karpenter adds nodes of its own): the program
        # owns its size, so `desired_size` is what runs.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(args.depends_on)),
    )
