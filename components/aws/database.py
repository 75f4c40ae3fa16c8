"""AWS database: RDS for PostgreSQL in the isolated database subnets.

Encrypted with its own KMS key, never publicly accessible, TLS forced by the parameter
group, IAM authentication on, Performance Insights and log exports as configured. Prod:
Multi-AZ, deletion protection and a final snapshot. Passwords are generated (pulumi-random)
and only ever leave as secrets. The per-application databases and users (MLflow, Airflow)
are created inside the cluster by `components/k8s` (the database is not reachable from
where `pulumi up` runs); their passwords are generated here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_command as command
import pulumi_random as random

from components.aws.kms import customer_key
from components.aws.security import clients_only
from components.contracts import AppDatabase, DatabaseOutputs, contract_outputs

APP_DATABASES = ("mlflow", "airflow")
ADMIN_USER = "dex_admin"


@dataclass(frozen=True)
class DatabaseArgs:
    identifier: str
    """The RDS instance identifier."""
    engine_version: str
    """PostgreSQL major version (RDS picks the latest minor; minor upgrades are automatic)."""
    parameter_group_family: str
    """The parameter group family of that version (`postgres17`): the config's table, so a
    version without a family stops the program before anything is registered."""
    instance_class: str
    storage_gib: int
    max_storage_gib: int
    multi_az: bool
    backup_retention_days: int
    performance_insights: bool
    deletion_protection: bool
    """Deletion protection, a final snapshot and Pulumi `protect` (prod)."""
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    """The isolated database subnets."""
    client_security_group_ids: list[pulumi.Input[str]]
    """Only these security groups (the cluster's) may connect on 5432."""
    region: str
    """The instance's region: which RDS trust-store bundle signs its certificate."""
    command_provider: pulumi.ProviderResource
    """The explicit `command` provider (default providers are disabled) that fetches the
    region's CA bundle where `pulumi up` runs."""


def rds_ca_bundle_url(region: str) -> str:
    """The RDS trust store's bundle for one region ("Certificate bundles for specific AWS
    Regions" in the RDS user guide; GovCloud and China are served from their own hosts, the
    same templates gravitational/teleport uses for RDS CAs)."""
    if region.startswith("us-gov-"):
        base = "https://truststore.pki.us-gov-west-1.rds.amazonaws.com"
    elif region.startswith("cn-"):
        base = "https://rds-truststore.s3.cn-north-1.amazonaws.com.cn"
    else:
        base = "https://truststore.pki.rds.amazonaws.com"
    return f"{base}/{region}/{region}-bundle.pem"


class Database(pulumi.ComponentResource):
    """RDS PostgreSQL with its key, subnet group, parameter group and security group.
    Type token `dex:aws:Database`."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    security_group_id: pulumi.Output[str]
    contract: DatabaseOutputs

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:aws:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"component": "database"}
        key = customer_key(
            f"{name}-key",
            f"RDS storage for {args.identifier}",
            self,
            args.deletion_protection,
            tags,
        )
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=args.subnet_ids,
            description="DEX database subnets (no internet route)",
            tags=tags,
            opts=child,
        )
        sg = clients_only(
            name,
            self,
            args.vpc_id,
            5432,
            "PostgreSQL from the cluster only",
            "PostgreSQL from cluster workloads",
            args.client_security_group_ids,
            tags,
        )
        params = aws.rds.ParameterGroup(
            f"{name}-params",
            family=args.parameter_group_family,
            description="DEX: TLS only, slow-query and connection logging",
            parameters=[
                aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1"),
                aws.rds.ParameterGroupParameterArgs(
                    name="ssl_min_protocol_version", value="TLSv1.2"
                ),
                aws.rds.ParameterGroupParameterArgs(
                    name="log_min_duration_statement", value="1000"
                ),
                aws.rds.ParameterGroupParameterArgs(name="log_connections", value="1"),
                aws.rds.ParameterGroupParameterArgs(name="log_disconnections", value="1"),
            ],
            tags=tags,
            opts=child,
        )
        admin_password = random.RandomPassword(
            f"{name}-admin-password", length=40, special=False, opts=child
        )
        prod_like = args.deletion_protection
        instance = aws.rds.Instance(
            f"{name}-postgres",
            identifier=args.identifier,
            engine="postgres",
            engine_version=args.engine_version,
            auto_minor_version_upgrade=True,
            instance_class=args.instance_class,
            allocated_storage=args.storage_gib,
            max_allocated_storage=args.max_storage_gib,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=key.arn,
            username=ADMIN_USER,
            password=admin_password.result,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[sg.id],
            parameter_group_name=params.name,
            publicly_accessible=False,
            multi_az=args.multi_az,
            backup_retention_period=args.backup_retention_days,
            backup_window="02:00-03:00",
            maintenance_window="sun:03:30-sun:04:30",
            copy_tags_to_snapshot=True,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=not prod_like,
            final_snapshot_identifier=f"{args.identifier}-final" if prod_like else None,
            iam_database_authentication_enabled=True,
            performance_insights_enabled=args.performance_insights,
            performance_insights_kms_key_id=key.arn if args.performance_insights else None,
            performance_insights_retention_period=7 if args.performance_insights else None,
            enabled_cloudwatch_logs_exports=["postgresql", "upgrade"],
            ca_cert_identifier="rds-ca-rsa2048-g1",
            apply_immediately=not prod_like,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=prod_like),
        )
        app_dbs = {}
        for app in APP_DATABASES:
            password = random.RandomPassword(
                f"{name}-{app}-password", length=32, special=False, opts=child
            )
            app_dbs[app] = AppDatabase(name=app, user=app, password=password.result)

        self.host = instance.address
        # No RDS API returns the CA PEM: AWS publishes a per-region bundle (every CA that
        # may sign an RDS certificate in the region) at this address, the one its docs give
        # for `sslrootcert` ("Using SSL/TLS to encrypt a connection to a DB instance").
        bundle = command.local.run_output(
            command=f"curl -fsSL {rds_ca_bundle_url(args.region)}",
            logging=command.local.Logging.STDERR,
            opts=pulumi.InvokeOptions(provider=args.command_provider, parent=self),
        )

        self.port = instance.port
        self.security_group_id = sg.id
        self.contract = DatabaseOutputs(
            host=instance.address,
            port=instance.port,
            admin_user=ADMIN_USER,
            admin_password=pulumi.Output.secret(admin_password.result),
            app_databases=app_dbs,
            sslmode="verify-full",
            ca_certificate=bundle.stdout,
        )
        self.register_outputs({**contract_outputs(self.contract), "security_group_id": sg.id})
