"""AWS network: a VPC over N availability zones with public, private and database subnets.

Private subnets reach the internet through NAT (one shared gateway, or one per AZ so an AZ
outage does not cut egress); database subnets have no route out at all. VPC flow logs go to
CloudWatch; S3 is reached through a gateway endpoint and ECR/STS through interface
endpoints, so image pulls and IRSA token exchanges stay inside the VPC.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from components.aws.kms import log_key
from components.contracts import NetworkOutputs, contract_outputs

TIERS = ("public", "private", "database")

INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "sts", "logs")
"""AWS services reached through interface endpoints (image pulls, IRSA, log shipping)."""


def plan_subnets(cidr: str, zones: int) -> dict[str, list[str]]:
    """Carve the VPC range into per-AZ subnets: private gets 1/8 of the range per AZ (nodes
    and pods need the room), public and database 1/64 each.

    >>> plan_subnets("10.0.0.0/16", 3)["private"]
    ['10.0.0.0/19', '10.0.32.0/19', '10.0.64.0/19']
    """
    net = ipaddress.IPv4Network(cidr)
    if not 1 <= zones <= 4:
        raise ValueError(f"zones must be 1 to 4, got {zones}")
    if net.prefixlen > 20:
        raise ValueError(f"cidr must be a /20 or larger to hold 3 tiers per AZ, got {cidr}")
    large = list(net.subnets(prefixlen_diff=3))  # 8 blocks: 0-3 private, 4+ the rest
    private = [str(s) for s in large[:zones]]
    small = list(large[4].subnets(prefixlen_diff=3))  # 8 blocks inside the 5th eighth
    public = [str(s) for s in small[:zones]]
    database = [str(s) for s in small[4 : 4 + zones]]
    return {"public": public, "private": private, "database": database}


@dataclass(frozen=True)
class NetworkArgs:
    cidr: str
    """The VPC range (/16 to /20)."""
    availability_zones: list[str]
    """Zone names to span, in order (the stack passes the region's first N)."""
    nat_gateways: Literal["single", "per_az"]
    """`single`: one NAT for all zones (cheap). `per_az`: one per zone (survives an AZ loss)."""
    flow_logs_retention_days: int
    """How long VPC flow logs are kept in CloudWatch."""
    cluster_name: str
    """The EKS cluster the subnets are tagged for (load balancer and Karpenter discovery)."""
    region: str
    """The region, for endpoint service names."""
    account_id: str
    """The account: the flow-log key's policy names it and the log group's ARN."""
    partition: str
    """ARN partition (`aws` in commercial regions)."""
    protect: bool = False
    """Pulumi `protect` on the flow-log key (prod)."""


class Network(pulumi.ComponentResource):
    """VPC, subnets, NAT, routes, flow logs and endpoints. Type token `dex:aws:Network`."""

    vpc_id: pulumi.Output[str]
    """The VPC id."""
    vpc_cidr: str
    """The VPC range."""
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    database_subnet_ids: pulumi.Output[list[str]]
    contract: NetworkOutputs

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:aws:Network", name, None, opts)
        tags = {"component": "network"}
        zones = args.availability_zones

        vpc, igw = self._vpc(name, args.cidr, tags)
        subnets = self._subnets(name, args, vpc, tags)
        self._public_routes(name, vpc, igw, subnets["public"], tags)
        nats = self._nat_gateways(name, args, igw, subnets["public"], tags)
        private_rts = self._private_routes(name, zones, vpc, nats, subnets["private"], tags)
        database_rt = self._database_routes(name, vpc, subnets["database"], tags)
        self._flow_logs(name, vpc, args, tags)
        self._endpoints(
            name,
            args,
            vpc,
            route_tables=[*private_rts, database_rt],
            subnets=subnets["private"],
            tags=tags,
        )

        self.vpc_id = vpc.id
        self.vpc_cidr = args.cidr
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["public"]])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["private"]])
        self.database_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["database"]])
        self.contract = NetworkOutputs(network_id=vpc.id, node_subnet_ids=self.private_subnet_ids)
        self.register_outputs(
            {
                **contract_outputs(self.contract),
                "vpc_id": self.vpc_id,
                "vpc_cidr": self.vpc_cidr,
                "public_subnet_ids": self.public_subnet_ids,
                "private_subnet_ids": self.private_subnet_ids,
                "database_subnet_ids": self.database_subnet_ids,
            }
        )

    def _vpc(
        self, name: str, cidr: str, tags: dict[str, str]
    ) -> tuple[aws.ec2.Vpc, aws.ec2.InternetGateway]:
        """The VPC, its default security group emptied, and its internet gateway."""
        child = pulumi.ResourceOptions(parent=self)
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": f"{name}-vpc"},
            opts=child,
        )
        # CIS AWS 5.4: the default security group allows nothing.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags={**tags, "Name": f"{name}-default-deny"},
            opts=child,
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags={**tags, "Name": f"{name}-igw"}, opts=child
        )
        return vpc, igw

    def _subnets(
        self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc, tags: dict[str, str]
    ) -> dict[str, list[aws.ec2.Subnet]]:
        """Per tier (`TIERS`), one subnet per zone as `plan_subnets` lays them out, tagged for
        load balancers and Karpenter."""
        layout = plan_subnets(args.cidr, len(args.availability_zones))
        elb_tags = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}
        role_tags = {
            "public": {"kubernetes.io/role/elb": "1", **elb_tags},
            "private": {
                "kubernetes.io/role/internal-elb": "1",
                # the subnets Karpenter's EC2NodeClass selects for nodes
                "karpenter.sh/discovery": args.cluster_name,
                **elb_tags,
            },
            "database": {},
        }
        subnets: dict[str, list[aws.ec2.Subnet]] = {tier: [] for tier in TIERS}
        for tier in TIERS:
            for i, (zone, block) in enumerate(
                zip(args.availability_zones, layout[tier], strict=True)
            ):
                subnets[tier].append(
                    aws.ec2.Subnet(
                        f"{name}-{tier}-{i}",
                        vpc_id=vpc.id,
                        cidr_block=block,
                        availability_zone=zone,
                        map_public_ip_on_launch=False,
                        tags={
                            **tags,
                            **role_tags[tier],
                            "Name": f"{name}-{tier}-{zone}",
                            "tier": tier,
                        },
                        opts=pulumi.ResourceOptions(parent=self),
                    )
                )
        return subnets

    def _public_routes(
        self,
        name: str,
        vpc: aws.ec2.Vpc,
        igw: aws.ec2.InternetGateway,
        public: list[aws.ec2.Subnet],
        tags: dict[str, str],
    ) -> None:
        """One route table for the public subnets: everything out through the gateway."""
        child = pulumi.ResourceOptions(parent=self)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": f"{name}-public"},
            opts=child,
        )
        for i, subnet in enumerate(public):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-rta-{i}",
                subnet_id=subnet.id,
                route_table_id=public_rt.id,
                opts=child,
            )

    def _nat_gateways(
        self,
        name: str,
        args: NetworkArgs,
        igw: aws.ec2.InternetGateway,
        public: list[aws.ec2.Subnet],
        tags: dict[str, str],
    ) -> list[aws.ec2.NatGateway]:
        """One NAT gateway (with its address) in the first public subnet, or one per zone."""
        zones = args.availability_zones
        nat_count = len(zones) if args.nat_gateways == "per_az" else 1
        nats = []
        for i in range(nat_count):
            eip = aws.ec2.Eip(
                f"{name}-nat-eip-{i}",
                domain="vpc",
                tags={**tags, "Name": f"{name}-nat-{i}"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            )
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=public[i].id,
                    tags={**tags, "Name": f"{name}-nat-{zones[i]}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )
        return nats

    def _private_routes(
        self,
        name: str,
        zones: list[str],
        vpc: aws.ec2.Vpc,
        nats: list[aws.ec2.NatGateway],
        private: list[aws.ec2.Subnet],
        tags: dict[str, str],
    ) -> list[aws.ec2.RouteTable]:
        """A route table per private subnet, out through its zone's NAT (or the one NAT)."""
        child = pulumi.ResourceOptions(parent=self)
        private_rts = []
        for i, subnet in enumerate(private):
            rt = aws.ec2.RouteTable(
                f"{name}-private-rt-{i}",
                vpc_id=vpc.id,
                routes=[
                    aws.ec2.RouteTableRouteArgs(
                        cidr_block="0.0.0.0/0", nat_gateway_id=nats[i % len(nats)].id
                    )
                ],
                tags={**tags, "Name": f"{name}-private-{zones[i]}"},
                opts=child,
            )
            private_rts.append(rt)
            aws.ec2.RouteTableAssociation(
                f"{name}-private-rta-{i}", subnet_id=subnet.id, route_table_id=rt.id, opts=child
            )
        return private_rts

    def _database_routes(
        self,
        name: str,
        vpc: aws.ec2.Vpc,
        database: list[aws.ec2.Subnet],
        tags: dict[str, str],
    ) -> aws.ec2.RouteTable:
        # Database subnets: local routes only, no path to or from the internet.
        child = pulumi.ResourceOptions(parent=self)
        database_rt = aws.ec2.RouteTable(
            f"{name}-database-rt",
            vpc_id=vpc.id,
            routes=[],
            tags={**tags, "Name": f"{name}-database"},
            opts=child,
        )
        for i, subnet in enumerate(database):
            aws.ec2.RouteTableAssociation(
                f"{name}-database-rta-{i}",
                subnet_id=subnet.id,
                route_table_id=database_rt.id,
                opts=child,
            )
        return database_rt

    def _endpoints(
        self,
        name: str,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        *,
        route_tables: list[aws.ec2.RouteTable],
        subnets: list[aws.ec2.Subnet],
        tags: dict[str, str],
    ) -> None:
        """The S3 gateway endpoint on `route_tables`, and the `INTERFACE_ENDPOINTS` in
        `subnets` behind a security group admitting HTTPS from the VPC."""
        child = pulumi.ResourceOptions(parent=self)
        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in route_tables],
            tags={**tags, "Name": f"{name}-s3"},
            opts=child,
        )
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            vpc_id=vpc.id,
            description="HTTPS from inside the VPC to AWS interface endpoints",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=443,
                    to_port=443,
                    cidr_blocks=[args.cidr],
                    description="HTTPS from the VPC",
                )
            ],
            egress=[],
            tags={**tags, "Name": f"{name}-endpoints"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[vpc]),
        )
        for service in INTERFACE_ENDPOINTS:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}-endpoint",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in subnets],
                security_group_ids=[endpoint_sg.id],
                tags={**tags, "Name": f"{name}-{service}"},
                opts=child,
            )

    def _flow_logs(
        self, name: str, vpc: aws.ec2.Vpc, args: NetworkArgs, tags: dict[str, str]
    ) -> None:
        """Every flow of the VPC to a log group under its own key (created first)."""
        child = pulumi.ResourceOptions(parent=self)
        log_group_name = f"/dex/{name}/vpc-flow-logs"
        key = log_key(
            f"{name}-flow-logs-key",
            log_groups=[log_group_name],
            region=args.region,
            account_id=args.account_id,
            partition=args.partition,
            protect=args.protect,
            tags=tags,
            parent=self,
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=log_group_name,
            retention_in_days=args.flow_logs_retention_days,
            kms_key_id=key.arn,
            tags=tags,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            role=role.id,
            policy=log_group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                    "logs:DescribeLogStreams",
                                ],
                                "Resource": [arn, f"{arn}:*"],
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=tags,
            opts=child,
        )
