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

from components.aws import iam
from components.aws.kms import KeyArgs, customer_key
from components.aws.security import ClientsOnlyArgs, clients_only
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
    account_id: str
    """The account the key lives in (its policy names the root)."""
    partition: str
    """ARN partition (`aws` in commercial regions): the monitoring policy's ARN."""
    monitoring_interval_seconds: int = 60
    """Enhanced monitoring's sampling interval (1, 5, 10, 15, 30 or 60 s; 0 turns it off):
    OS metrics of the database host, through a role RDS assumes. Defaults to 60."""


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
        tags = {"component": "database"}
        key = customer_key(
            f"{name}-key",
            KeyArgs(
                description=f"RDS storage for {args.identifier}",
                protect=args.deletion_protection,
                tags=tags,
                account_id=args.account_id,
                partition=args.partition,
            ),
            self,
        )
        subnet_group, sg = self._placement(name, args, tags)
        params = self._parameters(name, args, tags)
        monitoring = self._monitoring_role(name, args, tags)
        admin_password = random.RandomPassword(
            f"{name}-admin-password",
            length=40,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        instance = self._instance(
            name,
            args,
            key=key,
            subnet_group=subnet_group,
            security_group=sg,
            parameters=params,
            admin_password=admin_password,
            monitoring=monitoring,
            tags=tags,
        )
        app_dbs = self._app_databases(name)

        self.host = instance.address
        bundle = self._ca_bundle(args)
        self.port = instance.port
        self.security_group_id = sg.id
        self.contract = DatabaseOutputs(
            host=instance.address,
            port=instance.port,
            admin_user=ADMIN_USER,
            admin_password=pulumi.Output.secret(admin_password.result),
            app_databases=app_dbs,
            sslmode="verify-full",
            ca_certificate=bundle,
        )
        self.register_outputs({**contract_outputs(self.contract), "security_group_id": sg.id})

    def _placement(
        self, name: str, args: DatabaseArgs, tags: dict[str, str]
    ) -> tuple[aws.rds.SubnetGroup, aws.ec2.SecurityGroup]:
        """The isolated subnets, and a security group only the cluster may pass."""
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=args.subnet_ids,
            description="DEX database subnets (no internet route)",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        sg = clients_only(
            name,
            ClientsOnlyArgs(
                vpc_id=args.vpc_id,
                port=5432,
                description="PostgreSQL from the cluster only",
                rule_description="PostgreSQL from cluster workloads",
                clients=args.client_security_group_ids,
                tags=tags,
            ),
            self,
        )
        return subnet_group, sg

    def _parameters(
        self, name: str, args: DatabaseArgs, tags: dict[str, str]
    ) -> aws.rds.ParameterGroup:
        """TLS only (1.2 and up), slow-query, connection and lock-wait logging, and pgaudit
        session audit logging of DDL and role changes.

        `shared_preload_libraries` is static: the provider's default apply method
        (`immediate`) is refused for it, so it is `pending-reboot` (on a first deploy the
        instance boots with the group, no reboot needed). It keeps RDS's default
        `pg_stat_statements` (Performance Insights' SQL statistics) next to `pgaudit`.
        pgaudit's DDL object details need `CREATE EXTENSION pgaudit` in each database (RDS
        user guide, "Setting up the pgAudit extension"). `log_checkpoints` is on by default
        since PostgreSQL 15."""
        return aws.rds.ParameterGroup(
            f"{name}-params",
            family=args.parameter_group_family,
            # unchanged on purpose: a new description replaces the group
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
                aws.rds.ParameterGroupParameterArgs(name="log_lock_waits", value="1"),
                aws.rds.ParameterGroupParameterArgs(
                    name="shared_preload_libraries",
                    value="pg_stat_statements,pgaudit",
                    apply_method="pending-reboot",
                ),
                aws.rds.ParameterGroupParameterArgs(name="pgaudit.log", value="ddl,role"),
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _monitoring_role(
        self, name: str, args: DatabaseArgs, tags: dict[str, str]
    ) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment] | None:
        """The role enhanced monitoring publishes OS metrics as: trusted by
        monitoring.rds.amazonaws.com, with AmazonRDSEnhancedMonitoringRole (RDS user guide,
        "Setting up and enabling Enhanced Monitoring"). None with monitoring off."""
        if args.monitoring_interval_seconds <= 0:
            return None
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-monitoring-role",
            assume_role_policy=iam.service_trust("monitoring.rds.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-monitoring-policy",
            role=role.name,
            policy_arn=(
                f"arn:{args.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
            ),
            opts=child,
        )
        return role, attachment

    def _instance(
        self,
        name: str,
        args: DatabaseArgs,
        *,
        key: aws.kms.Key,
        subnet_group: aws.rds.SubnetGroup,
        security_group: aws.ec2.SecurityGroup,
        parameters: aws.rds.ParameterGroup,
        admin_password: random.RandomPassword,
        monitoring: tuple[aws.iam.Role, aws.iam.RolePolicyAttachment] | None,
        tags: dict[str, str],
    ) -> aws.rds.Instance:
        prod_like = args.deletion_protection
        # RDS checks the monitoring role's permissions when the instance is created: the
        # managed policy must be attached first.
        after = [monitoring[1]] if monitoring else []
        return aws.rds.Instance(
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
            vpc_security_group_ids=[security_group.id],
            parameter_group_name=parameters.name,
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
            monitoring_interval=args.monitoring_interval_seconds if monitoring else 0,
            monitoring_role_arn=monitoring[0].arn if monitoring else None,
            ca_cert_identifier="rds-ca-rsa2048-g1",
            apply_immediately=not prod_like,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=prod_like, depends_on=after),
        )

    def _app_databases(self, name: str) -> dict[str, AppDatabase]:
        """A generated password per application database (made in-cluster by components/k8s)."""
        app_dbs = {}
        for app in APP_DATABASES:
            password = random.RandomPassword(
                f"{name}-{app}-password",
                length=32,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            app_dbs[app] = AppDatabase(name=app, user=app, password=password.result)
        return app_dbs

    def _ca_bundle(self, args: DatabaseArgs) -> pulumi.Output[str]:
        """The PEM of every CA that may sign the instance's certificate."""
        # No RDS API returns the CA PEM: AWS publishes a per-region bundle (every CA that
        # may sign an RDS certificate in the region) at this address, the one its docs give
        # for `sslrootcert` ("Using SSL/TLS to encrypt a connection to a DB instance").
        bundle = command.local.run_output(
            command=f"curl -fsSL {rds_ca_bundle_url(args.region)}",
            logging=command.local.Logging.STDERR,
            opts=pulumi.InvokeOptions(provider=args.command_provider, parent=self),
        )
        return bundle.stdout
