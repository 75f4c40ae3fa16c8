"""GCP database: Cloud SQL for PostgreSQL on a private IP only, SSL required, automated
backups with point-in-time recovery, a maintenance window, Query Insights, audit logging
(pgAudit, connections, lock waits, checkpoints); REGIONAL, deletion-protected and encrypted
with a customer-managed key of its own in prod. Only the admin user is made through Cloud
SQL's API: the MLflow and Airflow roles and databases are made by the bootstrap Job
(components/k8s/database.py), as on RDS. From PostgreSQL 16, changing a role's password or
granting it needs ADMIN OPTION on it, which the admin holds only for roles it created itself,
not for roles the Users API made (through Google's own superuser)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from components.contracts import AppDatabase, DatabaseOutputs, contract_outputs
from components.gcp.kms import ServiceKeyArgs, optional_key, validate_cmek
from components.options import take_depends_on

APP_DATABASES = ("mlflow", "airflow")
ADMIN_USER = "dex_admin"
PGAUDIT_LOG = "ddl,role"
"""What pgAudit records: schema changes and role / privilege changes. Reads and writes
(`read`, `write`) would log every Airflow heartbeat; pgAudit's log goes through the
instance's disk before Cloud Logging. The extension itself is made in each database by the
bootstrap Job (`CREATE EXTENSION pgaudit`): Cloud SQL creates it only from SQL."""


@dataclass(frozen=True)
class DatabaseArgs:
    project: str
    region: str
    instance_name: str
    engine_version: str
    tier: str
    storage_gib: int
    max_storage_gib: int
    regional: bool
    """REGIONAL availability (a standby in another zone)."""
    backup_retention_days: int
    """Automated backups retained (a count)."""
    transaction_log_retention_days: int
    """Days of WAL kept for point-in-time recovery: fewer than the retained backups."""
    edition: str
    """`ENTERPRISE` or `ENTERPRISE_PLUS`, the one the tier runs on."""
    point_in_time_recovery: bool
    query_insights: bool
    deletion_protection: bool
    private_network: pulumi.Input[str]
    labels: dict[str, str]
    """The platform's labels: `settings.user_labels` does not inherit the provider's."""
    cmek: bool = False
    """Encrypt with a customer-managed Cloud KMS key of the instance's own (prod); off keeps
    Google-managed encryption. Only at creation: changing it replaces the instance."""
    project_number: str = ""
    """The project's number, for the Cloud SQL service agent's key grant (with `cmek`)."""
    command_provider: pulumi.ProviderResource | None = None
    """The explicit `command` provider for the key's IAM propagation waits (with `cmek`)."""


def server_ca_pem(instance: gcp.sql.DatabaseInstance) -> pulumi.Output[str]:
    """The PEM of every CA the instance lists (more than one while a CA rotates). The
    provider marks `serverCaCerts` secret; a CA certificate is public."""
    return pulumi.Output.unsecret(
        instance.server_ca_certs.apply(lambda certs: "".join(c.cert for c in certs or [] if c.cert))
    )


class Database(pulumi.ComponentResource):
    """Cloud SQL instance, databases and users. Type token `dex:gcp:Database`."""

    contract: DatabaseOutputs

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        validate_cmek(args.cmek, args.project_number, args.command_provider)
        own, depends_on = take_depends_on(opts)
        super().__init__("dex:gcp:Database", name, None, own)
        labels = {**args.labels, "component": "database"}
        key_id, key_waits = optional_key(
            args.cmek,
            name,
            ServiceKeyArgs(
                project=args.project,
                project_number=args.project_number,
                region=args.region,
                service="sqladmin.googleapis.com",
                ring_name=f"{args.instance_name}-keyring",
                key_name=args.instance_name,
                labels={"component": "database"},
                protect=args.deletion_protection,
                command_provider=args.command_provider,
            ),
            self,
        )
        instance = gcp.sql.DatabaseInstance(
            f"{name}-postgres",
            name=args.instance_name,
            project=args.project,
            region=args.region,
            database_version=f"POSTGRES_{args.engine_version}",
            deletion_protection=args.deletion_protection,
            encryption_key_name=key_id,
            settings=_instance_settings(args, labels),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*depends_on, *key_waits], protect=args.deletion_protection
            ),
        )
        admin_password = self._admin(name, args, instance)
        apps = self._app_databases(name)
        self.contract = DatabaseOutputs(
            host=instance.private_ip_address,
            port=pulumi.Output.from_input(5432),
            admin_user=ADMIN_USER,
            admin_password=pulumi.Output.secret(admin_password),
            app_databases=apps,
            # Private IP: the per-instance CA's server certificate names the instance
            # (`project:instance`), not the address clients dial, so libpq can verify the
            # chain (verify-ca) but not the host name (verify-full).
            sslmode="verify-ca",
            ca_certificate=server_ca_pem(instance),
        )
        self.register_outputs(
            {**contract_outputs(self.contract), "connection_name": instance.connection_name}
        )

    def _admin(
        self, name: str, args: DatabaseArgs, instance: gcp.sql.DatabaseInstance
    ) -> pulumi.Output[str]:
        """The admin user with a generated password; the password it returns resolves only
        once the user exists."""
        child = pulumi.ResourceOptions(parent=self)
        admin_password = random.RandomPassword(
            f"{name}-admin-password", length=40, special=False, opts=child
        )
        admin = gcp.sql.User(
            f"{name}-admin",
            name=ADMIN_USER,
            instance=instance.name,
            project=args.project,
            password=admin_password.result,
            opts=child,
        )
        # the password reaches its users (the bootstrap Job's Secret) only once the admin
        # user exists: a Job that starts earlier fails to log in
        return pulumi.Output.all(admin.id, admin_password.result).apply(lambda a: a[1])

    def _app_databases(self, name: str) -> dict[str, AppDatabase]:
        """A generated password per application database (made by the bootstrap Job)."""
        apps = {}
        for app in APP_DATABASES:
            password = random.RandomPassword(
                f"{name}-{app}-password",
                length=32,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            apps[app] = AppDatabase(name=app, user=app, password=password.result)
        return apps


DATABASE_FLAGS = {
    "cloudsql.iam_authentication": "on",
    "log_min_duration_statement": "1000",
    "log_min_error_statement": "error",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_lock_waits": "on",
    "log_checkpoints": "on",
    "cloudsql.enable_pgaudit": "on",
    "pgaudit.log": PGAUDIT_LOG,
}
"""Cloud SQL flags: IAM database authentication, slow statements, connections, lock waits,
checkpoints, the statement of every failing query (GCP-SQL-007/011) and pgAudit (GCP-SQL-010).

`log_min_error_statement` is PostgreSQL's default (`error`), set explicitly so that the plan
shows it (Checkov CKV_GCP_109 passes only on a flag that is set). Three logging flags differ from
what Checkov asks, on purpose (`policies/checkov-accepted.yaml` gives the same reasons):
- `log_min_duration_statement` is 1000 ms, not -1 (CKV_GCP_57): statements slower than a second
  are logged with their text, as on RDS (its parameter group sets the same): the only record of
  slow queries in dev, where Query Insights is off;
- `log_duration` stays off (CKV2_GCP_13): on, it writes a line for every statement, and the
  Airflow scheduler's heartbeats and MLflow's reads are most of them;
- `log_hostname` stays off (CKV_GCP_108): on, every new connection (one per Airflow task pod)
  waits on a reverse DNS lookup of a pod address, which names nothing the log does not already
  show (the role and the application name)."""


def _instance_settings(
    args: DatabaseArgs, labels: dict[str, str]
) -> gcp.sql.DatabaseInstanceSettingsArgs:
    """The instance's settings: private IP and encrypted connections only, backups with
    point-in-time recovery, the maintenance window, Query Insights, logging and audit flags."""
    return gcp.sql.DatabaseInstanceSettingsArgs(
        tier=args.tier,
        edition=args.edition,
        availability_type="REGIONAL" if args.regional else "ZONAL",
        disk_type="PD_SSD",
        disk_size=args.storage_gib,
        disk_autoresize=True,
        disk_autoresize_limit=args.max_storage_gib,
        deletion_protection_enabled=args.deletion_protection,
        ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
            ipv4_enabled=False,
            private_network=args.private_network,
            ssl_mode="ENCRYPTED_ONLY",
            enable_private_path_for_google_cloud_services=True,
        ),
        backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
            enabled=True,
            start_time="02:00",
            point_in_time_recovery_enabled=args.point_in_time_recovery,
            transaction_log_retention_days=args.transaction_log_retention_days,
            backup_retention_settings=gcp.sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs(
                retained_backups=args.backup_retention_days, retention_unit="COUNT"
            ),
        ),
        maintenance_window=gcp.sql.DatabaseInstanceSettingsMaintenanceWindowArgs(
            day=7, hour=3, update_track="stable"
        ),
        insights_config=gcp.sql.DatabaseInstanceSettingsInsightsConfigArgs(
            query_insights_enabled=args.query_insights,
            record_application_tags=args.query_insights,
            record_client_address=False,
        ),
        database_flags=[
            gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs(name=flag, value=value)
            for flag, value in DATABASE_FLAGS.items()
        ],
        user_labels=labels,
    )
