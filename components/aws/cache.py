"""AWS cache: ElastiCache for Valkey, TLS in transit, encrypted at rest, an auth token.

Valkey replaces Redis OSS (its open-source successor; ElastiCache runs both with the same
AUTH token and TLS options). The parameter group is the engine's default one, named after
its family, which must match the engine's major version (`valkey8` for 8.x).

Prod runs a primary and replicas across AZs with automatic failover. Only the cluster's
security group may connect.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.aws.kms import KeyArgs, customer_key, log_key
from components.aws.security import ClientsOnlyArgs, clients_only
from components.contracts import CacheOutputs, contract_outputs

PORT = 6379
"""ElastiCache's port, TLS or not."""
ENGINE = "valkey"


@dataclass(frozen=True)
class CacheArgs:
    replication_group_id: str
    engine_version: str
    """The Valkey major.minor version (`8.1`)."""
    parameter_group_family: str
    """Its parameter group family (`valkey8`), from the config's table."""
    node_type: str
    replicas: int
    """Read replicas (the primary is extra)."""
    high_availability: bool
    """Multi-AZ with automatic failover."""
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    client_security_group_ids: list[pulumi.Input[str]]
    snapshot_retention_days: int
    protect: bool
    region: str
    """The region: the slow-log key's policy names CloudWatch Logs there."""
    account_id: str
    """The account the keys live in (their policies name its root)."""
    partition: str
    """ARN partition (`aws` in commercial regions)."""


class Cache(pulumi.ComponentResource):
    """ElastiCache replication group. Type token `dex:aws:Cache`."""

    contract: CacheOutputs

    def __init__(
        self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:aws:Cache", name, None, opts)
        tags = {"component": "cache"}
        if args.high_availability and args.replicas < 1:
            raise ValueError(f"high_availability needs replicas >= 1, got {args.replicas}")
        key = customer_key(
            f"{name}-key",
            KeyArgs(
                description=f"ElastiCache {args.replication_group_id}",
                protect=args.protect,
                tags=tags,
                account_id=args.account_id,
                partition=args.partition,
            ),
            self,
        )
        subnets, sg = self._placement(name, args, tags)
        token = random.RandomPassword(
            # ElastiCache tokens: 16-128 printable characters, none of @ " /
            f"{name}-auth-token",
            length=64,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        slow_log_name = f"/dex/{args.replication_group_id}/slow-log"
        slow_log_key = log_key(
            f"{name}-slow-log-key",
            log_groups=[slow_log_name],
            region=args.region,
            account_id=args.account_id,
            partition=args.partition,
            protect=args.protect,
            tags=tags,
            parent=self,
        )
        slow_log = aws.cloudwatch.LogGroup(
            f"{name}-slow-log",
            name=slow_log_name,
            retention_in_days=30,
            kms_key_id=slow_log_key.arn,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        group = self._replication_group(
            name,
            args,
            key=key,
            subnets=subnets,
            security_group=sg,
            token=token,
            slow_log=slow_log,
            tags=tags,
        )
        self.contract = _contract(group, token)
        self.register_outputs({**contract_outputs(self.contract), "security_group_id": sg.id})

    def _placement(
        self, name: str, args: CacheArgs, tags: dict[str, str]
    ) -> tuple[aws.elasticache.SubnetGroup, aws.ec2.SecurityGroup]:
        """Where the nodes run (the private subnets) and who may reach them (the cluster)."""
        subnets = aws.elasticache.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=args.subnet_ids,
            description="DEX cache subnets",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        sg = clients_only(
            name,
            ClientsOnlyArgs(
                vpc_id=args.vpc_id,
                port=PORT,
                description="Valkey from the cluster only",
                rule_description="Valkey (TLS) from cluster workloads",
                clients=args.client_security_group_ids,
                tags=tags,
            ),
            self,
        )
        return subnets, sg

    def _replication_group(
        self,
        name: str,
        args: CacheArgs,
        *,
        key: aws.kms.Key,
        subnets: aws.elasticache.SubnetGroup,
        security_group: aws.ec2.SecurityGroup,
        token: random.RandomPassword,
        slow_log: aws.cloudwatch.LogGroup,
        tags: dict[str, str],
    ) -> aws.elasticache.ReplicationGroup:
        return aws.elasticache.ReplicationGroup(
            f"{name}-valkey",
            replication_group_id=args.replication_group_id,
            description="DEX cache and rate limits",
            engine=ENGINE,
            engine_version=args.engine_version,
            # the engine's default group, which exists in every account and region
            parameter_group_name=f"default.{args.parameter_group_family}",
            node_type=args.node_type,
            num_cache_clusters=1 + args.replicas,
            automatic_failover_enabled=args.high_availability,
            multi_az_enabled=args.high_availability,
            port=PORT,
            subnet_group_name=subnets.name,
            security_group_ids=[security_group.id],
            at_rest_encryption_enabled=True,
            kms_key_id=key.arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=token.result,
            auth_token_update_strategy="ROTATE",  # noqa: S106 - a strategy name
            snapshot_retention_limit=args.snapshot_retention_days,
            snapshot_window="03:00-04:00",
            maintenance_window="sun:04:30-sun:05:30",
            auto_minor_version_upgrade=True,
            apply_immediately=not args.protect,
            log_delivery_configurations=[
                aws.elasticache.ReplicationGroupLogDeliveryConfigurationArgs(
                    destination=slow_log.name,
                    destination_type="cloudwatch-logs",
                    log_format="json",
                    log_type="slow-log",
                )
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )


def _contract(
    group: aws.elasticache.ReplicationGroup, token: random.RandomPassword
) -> CacheOutputs:
    """The primary endpoint, and the token (a secret) alone and inside a `rediss://` URL."""
    secret_token: pulumi.Output[str] = pulumi.Output.secret(token.result)
    return CacheOutputs(
        host=group.primary_endpoint_address,
        port=group.port.apply(lambda p: int(p or PORT)),
        auth_token=secret_token,
        url=pulumi.Output.secret(
            pulumi.Output.all(secret_token, group.primary_endpoint_address).apply(
                lambda a: f"rediss://:{a[0]}@{a[1]}:{PORT}/0"
            )
        ),
    )
