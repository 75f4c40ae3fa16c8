"""GCP cache: Memorystore for Redis over private service access, AUTH on, TLS in transit;
STANDARD_HA (a replica in another zone, automatic failover) in prod."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.contracts import CacheOutputs, contract_outputs

REDIS_VERSIONS = {"7.0": "REDIS_7_0", "7.1": "REDIS_7_2"}
"""Memorystore offers 7.0 and 7.2; 7.1 (ElastiCache's name) maps to 7.2."""


@dataclass(frozen=True)
class CacheArgs:
    project: str
    region: str
    instance_name: str
    engine_version: str
    memory_size_gib: int
    high_availability: bool
    authorized_network: pulumi.Input[str]
    depends_on: list[pulumi.Resource]
    protect: bool


class Cache(pulumi.ComponentResource):
    """Memorystore instance. Type token `dex:gcp:Cache`."""

    contract: CacheOutputs

    def __init__(
        self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:gcp:Cache", name, None, opts)
        instance = gcp.redis.Instance(
            f"{name}-redis",
            name=args.instance_name,
            project=args.project,
            region=args.region,
            tier="STANDARD_HA" if args.high_availability else "BASIC",
            memory_size_gb=args.memory_size_gib,
            redis_version=REDIS_VERSIONS[args.engine_version],
            authorized_network=args.authorized_network,
            connect_mode="PRIVATE_SERVICE_ACCESS",
            auth_enabled=True,
            transit_encryption_mode="SERVER_AUTHENTICATION",
            persistence_config=gcp.redis.InstancePersistenceConfigArgs(
                persistence_mode="RDB", rdb_snapshot_period="TWELVE_HOURS"
            )
            if args.high_availability
            else None,
            maintenance_policy=gcp.redis.InstanceMaintenancePolicyArgs(
                weekly_maintenance_windows=[
                    gcp.redis.InstanceMaintenancePolicyWeeklyMaintenanceWindowArgs(
                        day="SUNDAY",
                        start_time=gcp.redis.InstanceMaintenancePolicyWeeklyMaintenanceWindowStartTimeArgs(
                            hours=4, minutes=30
                        ),
                    )
                ]
            ),
            labels={"component": "cache"},
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=args.depends_on, protect=args.protect
            ),
        )
        token: pulumi.Output[str] = pulumi.Output.secret(instance.auth_string)
        self.contract = CacheOutputs(
            host=instance.host,
            port=instance.port.apply(lambda p: int(p or 6378)),
            auth_token=token,
            url=pulumi.Output.secret(
                pulumi.Output.all(token, instance.host, instance.port).apply(
                    lambda a: f"rediss://:{a[0]}@{a[1]}:{a[2]}/0"
                )
            ),
        )
        self.register_outputs(contract_outputs(self.contract))
