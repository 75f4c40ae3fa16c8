"""GCP data rules: GCS buckets and their IAM grants, Cloud SQL, Memorystore."""

from __future__ import annotations

from collections.abc import Iterator

from policies.model import ALWAYS, PROD, WORLD, Subject, as_list, resource_rule
from policies.rules_gcp import _members

BUCKET = "gcp:storage/bucket:Bucket"
SQL = "gcp:sql/databaseInstance:DatabaseInstance"
REDIS = "gcp:redis/instance:Instance"
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
BUCKET_IAM = (
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    "gcp:storage/bucketIAMBinding:BucketIAMBinding",
)


# -- GCS ------------------------------------------------------------------------------------------


@resource_rule(
    "GCP-GCS-001",
    "Buckets use uniform bucket-level access",
    "high",
    ALWAYS,
    [BUCKET],
    "Set uniform_bucket_level_access true (no per-object ACLs).",
    ["CIS-GCP-2.0.0:5.2"],
)
def gcs_uniform(r: Subject) -> Iterator[str]:
    if r.get("uniformBucketLevelAccess") is not True:
        yield "uniformBucketLevelAccess is not true"


@resource_rule(
    "GCP-GCS-002",
    "Buckets enforce public access prevention",
    "critical",
    ALWAYS,
    [BUCKET],
    "Set public_access_prevention to enforced.",
    ["CIS-GCP-2.0.0:5.1"],
)
def gcs_public_prevention(r: Subject) -> Iterator[str]:
    if r.get("publicAccessPrevention") != "enforced":
        yield f"publicAccessPrevention is {r.get('publicAccessPrevention')!r}"


@resource_rule(
    "GCP-GCS-003",
    "No bucket is readable by allUsers or allAuthenticatedUsers",
    "critical",
    ALWAYS,
    list(BUCKET_IAM),
    "Grant named service accounts instead.",
    ["CIS-GCP-2.0.0:5.1"],
)
def gcs_no_public_members(r: Subject) -> Iterator[str]:
    for member in _members(r):
        if member in PUBLIC_MEMBERS:
            yield f"{member} granted {r.get('role')}"


@resource_rule(
    "GCP-GCS-004",
    "Buckets are versioned",
    "medium",
    PROD,
    [BUCKET],
    "Set versioning.enabled true.",
)
def gcs_versioning(r: Subject) -> Iterator[str]:
    if (r.get("versioning") or {}).get("enabled") is not True:
        yield "versioning is off"


@resource_rule(
    "GCP-GCS-005",
    "Buckets are encrypted with a customer-managed key",
    "medium",
    PROD,
    [BUCKET],
    "Set encryption.default_kms_key_name (log buckets may keep Google-managed keys).",
)
def gcs_cmek(r: Subject) -> Iterator[str]:
    labels = r.get("labels") or {}
    if labels.get("purpose") == "access-logs":
        return
    if not (r.get("encryption") or {}).get("defaultKmsKeyName"):
        yield "no customer-managed encryption key"


@resource_rule(
    "GCP-GCS-006",
    "Buckets have lifecycle rules",
    "medium",
    PROD,
    [BUCKET],
    "Add lifecycle_rules (tiering, noncurrent deletion, aborted uploads).",
)
def gcs_lifecycle(r: Subject) -> Iterator[str]:
    if not r.get("lifecycleRules"):
        yield "no lifecycle rules"


@resource_rule(
    "GCP-GCS-007",
    "Buckets log access",
    "medium",
    PROD,
    [BUCKET],
    "Set logging.log_bucket to the access-log bucket.",
)
def gcs_logging(r: Subject) -> Iterator[str]:
    labels = r.get("labels") or {}
    if labels.get("purpose") != "access-logs" and not (r.get("logging") or {}).get("logBucket"):
        yield "access is not logged"


# -- Cloud SQL ------------------------------------------------------------------------------------


@resource_rule(
    "GCP-SQL-001",
    "Cloud SQL has no public IP",
    "critical",
    ALWAYS,
    [SQL],
    "Set settings.ip_configuration.ipv4_enabled false and use private IP.",
    ["CIS-GCP-2.0.0:6.6"],
)
def sql_private(r: Subject) -> Iterator[str]:
    ip = r.get("settings.ipConfiguration") or {}
    if ip.get("ipv4Enabled", True) is not False:
        yield "the instance has a public IPv4 address"


@resource_rule(
    "GCP-SQL-002",
    "Cloud SQL requires SSL",
    "critical",
    ALWAYS,
    [SQL],
    "Set settings.ip_configuration.ssl_mode ENCRYPTED_ONLY (or stricter).",
    ["CIS-GCP-2.0.0:6.4"],
)
def sql_ssl(r: Subject) -> Iterator[str]:
    ip = r.get("settings.ipConfiguration") or {}
    mode = ip.get("sslMode")
    if mode not in ("ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED") and not ip.get(
        "requireSsl"
    ):
        yield f"sslMode is {mode!r}: unencrypted connections are accepted"


@resource_rule(
    "GCP-SQL-003",
    "Cloud SQL is not open to the world",
    "critical",
    ALWAYS,
    [SQL],
    "Remove 0.0.0.0/0 from authorized networks.",
    ["CIS-GCP-2.0.0:6.5"],
)
def sql_not_world(r: Subject) -> Iterator[str]:
    ip = r.get("settings.ipConfiguration") or {}
    for net in as_list(ip.get("authorizedNetworks")):
        if net.get("value") in WORLD:
            yield f"authorized network {net.get('value')}"


@resource_rule(
    "GCP-SQL-004",
    "Cloud SQL backs up with point-in-time recovery",
    "high",
    PROD,
    [SQL],
    "Enable backup_configuration with point_in_time_recovery_enabled.",
    ["CIS-GCP-2.0.0:6.7"],
)
def sql_backups(r: Subject) -> Iterator[str]:
    backup = r.get("settings.backupConfiguration") or {}
    if backup.get("enabled") is not True:
        yield "automated backups are off"
    elif backup.get("pointInTimeRecoveryEnabled") is not True:
        yield "point-in-time recovery is off"


@resource_rule(
    "GCP-SQL-005",
    "Cloud SQL is REGIONAL",
    "high",
    PROD,
    [SQL],
    "Set settings.availability_type REGIONAL.",
)
def sql_regional(r: Subject) -> Iterator[str]:
    if r.get("settings.availabilityType") != "REGIONAL":
        yield f"availabilityType is {r.get('settings.availabilityType')!r}"


@resource_rule(
    "GCP-SQL-006",
    "Cloud SQL is deletion-protected",
    "high",
    PROD,
    [SQL],
    "Set deletion_protection and settings.deletion_protection_enabled true.",
)
def sql_deletion(r: Subject) -> Iterator[str]:
    if r.get("deletionProtection") is False:
        yield "deletionProtection is false (Pulumi will delete it on request)"
    if r.get("settings.deletionProtectionEnabled") is not True:
        yield "settings.deletionProtectionEnabled is not true (the API allows deletion)"


@resource_rule(
    "GCP-SQL-007",
    "Cloud SQL for PostgreSQL logs connections",
    "medium",
    PROD,
    [SQL],
    "Set the log_connections and log_disconnections flags on.",
    ["CIS-GCP-2.0.0:6.2.2", "CIS-GCP-2.0.0:6.2.3"],
)
def sql_log_flags(r: Subject) -> Iterator[str]:
    if not str(r.get("databaseVersion", "")).startswith("POSTGRES"):
        return
    flags = {f.get("name"): f.get("value") for f in as_list(r.get("settings.databaseFlags"))}
    for flag in ("log_connections", "log_disconnections"):
        if flags.get(flag) != "on":
            yield f"{flag} is not on"


@resource_rule(
    "GCP-SQL-008",
    "Cloud SQL tier is allowed",
    "medium",
    ALWAYS,
    [SQL],
    "Choose one of the pack config's allowed_instance_classes.",
)
def sql_tier(r: Subject) -> Iterator[str]:
    allowed = r.config.allowed_instance_classes
    tier = r.get("settings.tier")
    if allowed and tier not in allowed:
        yield f"tier {tier} is not in {', '.join(allowed)}"


@resource_rule(
    "GCP-SQL-009",
    "Cloud SQL keeps more backups than days of transaction logs",
    "high",
    ALWAYS,
    [SQL],
    "Set backup_retention_settings.retained_backups above transaction_log_retention_days.",
)
def sql_log_retention(r: Subject) -> Iterator[str]:
    # The Cloud SQL Admin API refuses the instance: "backup retention should be >
    # transaction log retention" (terraform-google-modules/terraform-google-sql-db#785).
    backup = r.get("settings.backupConfiguration") or {}
    logs = backup.get("transactionLogRetentionDays")
    kept = (backup.get("backupRetentionSettings") or {}).get("retainedBackups", 7)
    if isinstance(logs, (int, float)) and isinstance(kept, (int, float)) and logs >= kept:
        yield (
            f"transactionLogRetentionDays {int(logs)} is not below retainedBackups {int(kept)}: "
            "the API refuses the instance"
        )


# -- Memorystore --------------------------------------------------------------------------------


@resource_rule(
    "GCP-REDIS-001",
    "Memorystore requires AUTH",
    "critical",
    ALWAYS,
    [REDIS],
    "Set auth_enabled true.",
)
def redis_auth(r: Subject) -> Iterator[str]:
    if r.get("authEnabled") is not True:
        yield "AUTH is off"


@resource_rule(
    "GCP-REDIS-002",
    "Memorystore encrypts traffic in transit",
    "critical",
    ALWAYS,
    [REDIS],
    "Set transit_encryption_mode SERVER_AUTHENTICATION.",
)
def redis_tls(r: Subject) -> Iterator[str]:
    if r.get("transitEncryptionMode") != "SERVER_AUTHENTICATION":
        yield f"transitEncryptionMode is {r.get('transitEncryptionMode')!r}"


@resource_rule(
    "GCP-REDIS-003",
    "Memorystore is STANDARD_HA",
    "high",
    PROD,
    [REDIS],
    "Set tier STANDARD_HA.",
)
def redis_ha(r: Subject) -> Iterator[str]:
    if r.get("tier") != "STANDARD_HA":
        yield f"tier is {r.get('tier')!r}"
