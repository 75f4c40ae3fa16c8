"""Security groups that admit one port from named client groups and nothing else."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws


def clients_only(
    name: str,
    parent: pulumi.Resource,
    vpc_id: pulumi.Input[str],
    port: int,
    description: str,
    rule_description: str,
    clients: Sequence[pulumi.Input[str]],
    tags: dict[str, str],
) -> aws.ec2.SecurityGroup:
    """A security group `{name}-sg` with no egress and, per client group, one ingress rule on
    `port` (`{name}-sg-from-cluster-{i}`): never a CIDR, so never the internet."""
    child = pulumi.ResourceOptions(parent=parent)
    sg = aws.ec2.SecurityGroup(
        f"{name}-sg",
        vpc_id=vpc_id,
        description=description,
        egress=[],
        tags=tags,
        opts=child,
    )
    for i, client in enumerate(clients):
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-sg-from-cluster-{i}",
            security_group_id=sg.id,
            referenced_security_group_id=client,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=rule_description,
            tags=tags,
            opts=child,
        )
    return sg
