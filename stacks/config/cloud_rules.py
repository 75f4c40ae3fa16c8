"""Cloud API rules: what the providers accept at preview but the cloud APIs refuse at apply
time. Each rule cites where it comes from; `cloud_api_problems` runs them on every stack."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stacks.config.stack import StackConfig


RDS_PARAMETER_FAMILIES: dict[str, str] = {
    "15": "postgres15",
    "16": "postgres16",
    "17": "postgres17",
}
"""RDS parameter group family per PostgreSQL major version: a group of another family is
refused by CreateDBInstance ("DB parameter group family ... does not match the engine")."""

VALKEY_PARAMETER_FAMILIES: dict[str, str] = {
    "7.2": "valkey7",
    "8.0": "valkey8",
    "8.1": "valkey8",
    "8.2": "valkey8",
}
"""ElastiCache parameter group family per Valkey version (AWS, "Engine specific parameters":
"Valkey 7.2 parameters are the same as Redis OSS 7"; 8.0, 8.1 and 8.2 are "Parameter group
family: valkey8")."""

CLOUD_SQL_MAX_LOG_DAYS = {"ENTERPRISE": 7, "ENTERPRISE_PLUS": 35}
"""Cloud SQL BackupConfiguration.transactionLogRetentionDays: "from 1-7 (For PostgreSQL
Enterprise Plus instances, from 1 to 35)" (Cloud SQL Admin API); on Enterprise the API
answers "The number of transaction log retention days must be between 1 and 7"."""


def cloud_sql_edition(tier: str) -> str:
    """The Cloud SQL edition a tier runs on: the API refuses `db-perf-optimized-N-*` tiers on
    Enterprise and the custom and shared-core tiers on Enterprise Plus (the pairs Cloud SQL
    rejects, as langfuse/langfuse-terraform-gcp#34 records them)."""
    return "ENTERPRISE_PLUS" if tier.startswith("db-perf-optimized-") else "ENTERPRISE"


_RDS_ID = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]*(?<!-)$")
_GCP_ID = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_EKS_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]*$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9_-]*[a-z0-9]$")


class NameRule:
    """What a cloud API accepts as one kind of physical name."""

    def __init__(self, what: str, pattern: re.Pattern[str], low: int, high: int, source: str):
        self.what, self.pattern, self.low, self.high, self.source = (
            what,
            pattern,
            low,
            high,
            source,
        )

    def problems(self, name: str, length: int | None = None) -> list[str]:
        size = len(name) if length is None else length
        out = []
        if not self.low <= size <= self.high:
            out.append(f"{size} characters, allowed {self.low}-{self.high}")
        if not self.pattern.match(name):
            out.append("characters or shape not allowed")
        return out


NAME_RULES: dict[str, NameRule] = {
    # RDS CreateDBInstance, DBInstanceIdentifier: "1 to 63 letters, numbers, or hyphens.
    # First character must be a letter. Can't end with a hyphen or contain two consecutive
    # hyphens." DBSnapshotIdentifier (the final snapshot): the same, 1 to 255.
    "rds_identifier": NameRule("RDS instance identifier", _RDS_ID, 1, 63, "RDS CreateDBInstance"),
    "rds_final_snapshot": NameRule(
        "RDS final snapshot identifier", _RDS_ID, 1, 255, "RDS CreateDBSnapshot"
    ),
    # ElastiCache CreateReplicationGroup, ReplicationGroupId: 1 to 40 alphanumeric characters
    # or hyphens, first a letter, no trailing hyphen, no two consecutive hyphens.
    "elasticache_replication_group": NameRule(
        "ElastiCache replication group id", _RDS_ID, 1, 40, "ElastiCache CreateReplicationGroup"
    ),
    # EKS CreateCluster, name: alphanumerics, hyphens and underscores, starting with an
    # alphanumeric, at most 100 characters.
    "eks_cluster": NameRule("EKS cluster name", _EKS_NAME, 1, 100, "EKS CreateCluster"),
    # GKE Cluster.name: "up to 40 characters ... Lowercase letters, numbers, and hyphens only.
    # Must start with a letter. Must end with a number or a letter."
    "gke_cluster": NameRule("GKE cluster name", _GCP_ID, 1, 40, "GKE API Cluster.name"),
    # Cloud SQL instance ID: lowercase letters, numbers and hyphens, starting with a letter;
    # "The total length of project-ID:instance-ID must be 98 characters or less"
    # (Cloud SQL "Instance settings"). Checked on the joined length below.
    "cloud_sql_instance": NameRule(
        "Cloud SQL project-ID:instance-ID", _GCP_ID, 1, 98, "Cloud SQL instance settings"
    ),
    # Memorystore for Redis instance ID: 1-40 lowercase letters, numbers, hyphens; starts
    # with a letter, ends with a letter or number (Memorystore "Create and manage instances").
    "memorystore_instance": NameRule(
        "Memorystore instance id", _GCP_ID, 1, 40, "Memorystore for Redis instance id"
    ),
    # IAM serviceAccounts.create, accountId: 6-30 characters matching
    # `[a-z]([-a-z0-9]*[a-z0-9])` (RFC1035).
    "service_account": NameRule(
        "service account id", _GCP_ID, 6, 30, "IAM serviceAccounts.create accountId"
    ),
    # GCS bucket names (no dots): 3-63 lowercase letters, digits, dashes and underscores,
    # starting and ending with a letter or digit (Cloud Storage "Bucket names").
    "gcs_bucket": NameRule("GCS bucket name", _GCS_BUCKET, 3, 63, "Cloud Storage bucket names"),
}


def physical_names(cfg: StackConfig) -> dict[str, list[str]]:
    """The physical names a stack gives its resources, by rule (stacks/aws.py and
    stacks/gcp.py build the same names; a test compares them with the plan)."""
    from stacks.config.stack import GcpStackConfig

    prefix = cfg.name_prefix
    if not isinstance(cfg, GcpStackConfig):
        return {
            "rds_identifier": [f"{prefix}-postgres"],
            # a final snapshot is taken where the database is protected (prod)
            "rds_final_snapshot": [f"{prefix}-postgres-final"] if cfg.deletion_protection else [],
            "elasticache_replication_group": [f"{prefix}-valkey"],
            "eks_cluster": [f"{prefix}-eks"],
        }
    from components.contracts import BUCKET_PURPOSES, WORKLOAD_SPECS

    project = cfg.gcp_project
    buckets = [*BUCKET_PURPOSES, *(("access-logs",) if cfg.storage.access_logging else ())]
    return {
        "gke_cluster": [f"{prefix}-gke"],
        "cloud_sql_instance": [f"{prefix}-postgres"],
        "memorystore_instance": [f"{prefix}-redis"],
        "service_account": [f"{prefix}-gke-nodes", *(f"{prefix}-{w.name}" for w in WORKLOAD_SPECS)],
        "gcs_bucket": [f"{project}-{prefix}-{p}" for p in buckets],
    }


def name_problems(cfg: StackConfig, names: Mapping[str, list[str]] | None = None) -> list[str]:
    """Every physical name the cloud API would refuse, with the rule and its source."""
    problems = []
    for kind, values in (physical_names(cfg) if names is None else names).items():
        rule = NAME_RULES[kind]
        for name in values:
            length = None
            if kind == "cloud_sql_instance":
                length = len(f"{getattr(cfg, 'gcp_project', '')}:{name}")
            found = rule.problems(name, length)
            if found:
                problems.append(
                    f"{rule.what} '{name}' (from dex:environment and dex:gcp_project) is "
                    f"refused by the cloud: {'; '.join(found)} ({rule.source})"
                )
    return problems


def cloud_api_problems(cfg: StackConfig) -> list[str]:
    """Values the cloud APIs refuse at apply time, caught before any resource exists."""
    from stacks.config.stack import AwsStackConfig, GcpStackConfig

    problems = name_problems(cfg)
    if isinstance(cfg, AwsStackConfig):
        db = cfg.database
        if db.engine_version not in RDS_PARAMETER_FAMILIES:
            problems.append(
                f"dex:database.engine_version = '{db.engine_version}' has no RDS parameter "
                f"group family; known: {', '.join(RDS_PARAMETER_FAMILIES)}"
            )
        if cfg.cache.engine_version not in VALKEY_PARAMETER_FAMILIES:
            problems.append(
                f"dex:cache.engine_version = '{cfg.cache.engine_version}' has no ElastiCache "
                f"parameter group family; known: {', '.join(VALKEY_PARAMETER_FAMILIES)}"
            )
    if isinstance(cfg, GcpStackConfig):
        gdb = cfg.database
        # "Invalid request: backup retention should be > transaction log retention." (the
        # Cloud SQL Admin API's answer, quoted in terraform-google-modules/terraform-google-
        # sql-db#785): retained backups must outnumber the days of transaction logs.
        if gdb.transaction_log_retention_days >= gdb.backup_retention_days:
            problems.append(
                f"dex:database.transaction_log_retention_days = "
                f"{gdb.transaction_log_retention_days} must be less than "
                f"dex:database.backup_retention_days = {gdb.backup_retention_days}: Cloud SQL "
                "refuses 'backup retention should be > transaction log retention'"
            )
        edition = cloud_sql_edition(gdb.instance_class)
        most = CLOUD_SQL_MAX_LOG_DAYS[edition]
        if gdb.transaction_log_retention_days > most:
            problems.append(
                f"dex:database.transaction_log_retention_days = "
                f"{gdb.transaction_log_retention_days}: Cloud SQL {edition} (tier "
                f"{gdb.instance_class}) keeps 1 to {most} days of transaction logs"
            )
    return problems
