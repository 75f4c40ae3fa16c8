"""GCP cache: Memorystore for Redis over private service access, AUTH on, TLS in transit;
STANDARD_HA (a replica in another zone, automatic failover) and a customer-managed key of
its own in prod.

With TLS (`SERVER_AUTHENTICATION`) Memorystore for Redis serves on 6378, not 6379, and signs
its certificate with a per-instance Google-managed CA that no system trust store holds: the
contract carries the port the instance reports and the instance's `serverCaCerts` PEM.

Why not Memorystore for Valkey yet (DESIGN.md lists it): its static-password mode
(`authorization_mode = "TOKEN_AUTH"`, "basic token-based authentication" in Google's docs)
is documented in pulumi-gcp 10.2 as an enum value only, with no resource that creates or
returns the token; the other modes are IAM auth (clients mint short-lived IAM tokens, which
the apps' `rediss://:token@` URL cannot do) or no auth. It also needs Private Service Connect
(a service connection policy) instead of private service access.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.contracts import CacheOutputs, contract_outputs
from components.gcp.kms import ServiceKeyArgs, optional_key, validate_cmek
from components.options import take_depends_on

REDIS_VERSION = "REDIS_7_2"
"""The newest Memorystore for Redis version (`dex:cache.engine_version` names the Valkey
version ElastiCache runs; Memorystore for Redis has no Valkey)."""
TLS_PORT = 6378
"""Memorystore for Redis's port with in-transit encryption on."""


@dataclass(frozen=True)
class CacheArgs:
    project: str
    region: str
    instance_name: str
    memory_size_gib: int
    high_availability: bool
    authorized_network: pulumi.Input[str]
    protect: bool
    cmek: bool = False
    """Encrypt with a customer-managed Cloud KMS key of the instance's own (prod); off keeps
    Google-managed encryption. Only at creation: changing it replaces the instance."""
    project_number: str = ""
    """The project's number, for the Memorystore service agent's key grant (with `cmek`)."""
    command_provider: pulumi.ProviderResource | None = None
    """The explicit `command` provider for the key's IAM propagation waits (with `cmek`)."""


class Cache(pulumi.ComponentResource):
    """Memorystore instance. Type token `dex:gcp:Cache`."""

    contract: CacheOutputs

    def __init__(
        self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        validate_cmek(args.cmek, args.project_number, args.command_provider)
        own, depends_on = take_depends_on(opts)
        super().__init__("dex:gcp:Cache", name, None, own)
        key_id, key_waits = optional_key(
            args.cmek,
            name,
            ServiceKeyArgs(
                project=args.project,
                project_number=args.project_number,
                region=args.region,
                service="redis.googleapis.com",
                ring_name=f"{args.instance_name}-keyring",
                key_name=args.instance_name,
                labels={"component": "cache"},
                protect=args.protect,
                command_provider=args.command_provider,
            ),
            self,
        )
        instance = gcp.redis.Instance(
            f"{name}-redis",
            name=args.instance_name,
            project=args.project,
            region=args.region,
            tier="STANDARD_HA" if args.high_availability else "BASIC",
            memory_size_gb=args.memory_size_gib,
            redis_version=REDIS_VERSION,
            authorized_network=args.authorized_network,
            connect_mode="PRIVATE_SERVICE_ACCESS",
            auth_enabled=True,
            transit_encryption_mode="SERVER_AUTHENTICATION",
            customer_managed_key=key_id,
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
                parent=self, depends_on=[*depends_on, *key_waits], protect=args.protect
            ),
        )
        token: pulumi.Output[str] = pulumi.Output.secret(instance.auth_string)
        port = instance.port.apply(lambda p: int(p or TLS_PORT))
        self.contract = CacheOutputs(
            host=instance.host,
            port=port,
            auth_token=token,
            url=pulumi.Output.secret(
                pulumi.Output.all(token, instance.host, port).apply(
                    lambda a: f"rediss://:{a[0]}@{a[1]}:{a[2]}/0"
                )
            ),
            ca_certificate=pulumi.Output.unsecret(
                instance.server_ca_certs.apply(
                    lambda certs: "".join(c.cert for c in certs or [] if c.cert)
                )
            ),
        )
        self.register_outputs(contract_outputs(self.contract))
