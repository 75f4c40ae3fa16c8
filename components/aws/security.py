"""Security groups that admit one port from named client groups and nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True, kw_only=True)
class ClientsOnlyArgs:
    """What `clients_only` builds: one port, open to the client groups only."""

    vpc_id: pulumi.Input[str]
    port: int
    description: str
    """The security group's description."""
    rule_description: str
    """Each ingress rule's description."""
    clients: Sequence[pulumi.Input[str]]
    """The security groups admitted on `port` (the cluster's)."""
    tags: dict[str, str]


def clients_only(
    name: str, args: ClientsOnlyArgs, parent: pulumi.Resource
) -> aws.ec2.SecurityGroup:
    """A security group `{name}-sg` with no egress and, per client group, one ingress rule on
    `port` (`{name}-sg-from-cluster-{i}`): never a CIDR, so never the internet."""
    child = pulumi.ResourceOptions(parent=parent)
    sg = aws.ec2.SecurityGroup(
        f"{name}-sg",
        vpc_id=args.vpc_id,
        description=args.description,
        egress=[],
        tags=args.tags,
        opts=child,
    )
    for i, client in enumerate(args.clients):
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-sg-from-cluster-{i}",
            security_group_id=sg.id,
            referenced_security_group_id=client,
            ip_protocol="tcp",
            from_port=args.port,
            to_port=args.port,
            description=args.rule_description,
            tags=args.tags,
            opts=child,
        )
    return sg
