"""GCP rules: GCS, Cloud SQL, Memorystore, GKE, firewall and subnets, IAM, KMS."""

from __future__ import annotations

import re
from collections.abc import Iterator

from policies.model import (
    ADVISE,
    ALWAYS,
    PROD,
    WORLD,
    StackSubject,
    Subject,
    as_list,
    resource_rule,
    stack_rule,
)

BUCKET = "gcp:storage/bucket:Bucket"
SQL = "gcp:sql/databaseInstance:DatabaseInstance"
REDIS = "gcp:redis/instance:Instance"
GKE = "gcp:container/cluster:Cluster"
POOL = "gcp:container/nodePool:NodePool"
FIREWALL = "gcp:compute/firewall:Firewall"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
BUCKET_IAM = (
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    "gcp:storage/bucketIAMBinding:BucketIAMBinding",
)
PROJECT_IAM = (
    "gcp:projects/iAMMember:IAMMember",
    "gcp:projects/iAMBinding:IAMBinding",
)


def _members(r: Subject) -> list[str]:
    return [str(m) for m in [r.get("member"), *as_list(r.get("members"))] if m]


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


# -- GKE ------------------------------------------------------------------------------------------


@resource_rule(
    "GCP-GKE-001",
    "GKE nodes are private",
    "critical",
    ALWAYS,
    [GKE],
    "Set private_cluster_config.enable_private_nodes true.",
    ["CIS-GKE-1.5.0:5.6.5"],
)
def gke_private_nodes(r: Subject) -> Iterator[str]:
    if (r.get("privateClusterConfig") or {}).get("enablePrivateNodes") is not True:
        yield "nodes have public IPs"


@resource_rule(
    "GCP-GKE-002",
    "GKE control plane is private or restricted",
    "critical",
    ALWAYS,
    [GKE],
    "Enable the private endpoint, or list your ranges in master authorized networks.",
    ["CIS-GKE-1.5.0:5.6.3", "CIS-GKE-1.5.0:5.6.4"],
)
def gke_endpoint(r: Subject) -> Iterator[str]:
    private = (r.get("privateClusterConfig") or {}).get("enablePrivateEndpoint") is True
    blocks = (r.get("masterAuthorizedNetworksConfig") or {}).get("cidrBlocks")
    cidrs = [b.get("cidrBlock") for b in as_list(blocks)]
    if not private and (not cidrs or any(c in WORLD for c in cidrs)):
        yield "the Kubernetes API is reachable from the whole internet"


@resource_rule(
    "GCP-GKE-003",
    "GKE uses Workload Identity",
    "high",
    ALWAYS,
    [GKE],
    "Set workload_identity_config.workload_pool to PROJECT.svc.id.goog.",
    ["CIS-GKE-1.5.0:5.2.2"],
)
def gke_workload_identity(r: Subject) -> Iterator[str]:
    if not (r.get("workloadIdentityConfig") or {}).get("workloadPool"):
        yield "Workload Identity is off: pods would use the node's identity"


@resource_rule(
    "GCP-GKE-004",
    "GKE uses shielded nodes",
    "high",
    ALWAYS,
    [GKE],
    "Set enable_shielded_nodes true.",
    ["CIS-GKE-1.5.0:5.5.5"],
)
def gke_shielded(r: Subject) -> Iterator[str]:
    if r.get("enableShieldedNodes") is False:
        yield "shielded nodes are off"


@resource_rule(
    "GCP-GKE-005",
    "GKE has no legacy ABAC, basic auth or client certificate",
    "critical",
    ALWAYS,
    [GKE],
    "Set enable_legacy_abac false and master_auth.client_certificate_config."
    "issue_client_certificate false.",
    ["CIS-GKE-1.5.0:5.8.1", "CIS-GKE-1.5.0:5.8.2", "CIS-GKE-1.5.0:5.8.4"],
)
def gke_auth(r: Subject) -> Iterator[str]:
    if r.get("enableLegacyAbac") is True:
        yield "legacy ABAC is on"
    auth = r.get("masterAuth") or {}
    if (auth.get("clientCertificateConfig") or {}).get("issueClientCertificate") is True:
        yield "a client certificate is issued"
    if auth.get("username") or auth.get("password"):
        yield "basic auth is configured"


@resource_rule(
    "GCP-GKE-006",
    "GKE enforces NetworkPolicy",
    "high",
    ALWAYS,
    [GKE],
    "Use Dataplane V2 (datapath_provider ADVANCED_DATAPATH) or enable network_policy.",
    ["CIS-GKE-1.5.0:5.6.7"],
)
def gke_network_policy(r: Subject) -> Iterator[str]:
    dataplane_v2 = r.get("datapathProvider") == "ADVANCED_DATAPATH"
    calico = (r.get("networkPolicy") or {}).get("enabled") is True
    if not (dataplane_v2 or calico):
        yield "NetworkPolicies would not be enforced"


@resource_rule(
    "GCP-GKE-007",
    "GKE encrypts secrets with Cloud KMS",
    "high",
    PROD,
    [GKE],
    "Set database_encryption state ENCRYPTED with a Cloud KMS key.",
    ["CIS-GKE-1.5.0:5.3.1"],
)
def gke_secrets(r: Subject) -> Iterator[str]:
    if (r.get("databaseEncryption") or {}).get("state") != "ENCRYPTED":
        yield "application-layer secrets encryption is off"


@resource_rule(
    "GCP-GKE-008",
    "GKE follows a release channel",
    "medium",
    PROD,
    [GKE],
    "Set release_channel REGULAR or STABLE.",
    ["CIS-GKE-1.5.0:5.5.4"],
)
def gke_release_channel(r: Subject) -> Iterator[str]:
    channel = (r.get("releaseChannel") or {}).get("channel")
    if channel in (None, "UNSPECIFIED"):
        yield "no release channel"


@resource_rule(
    "GCP-GKE-009",
    "GKE removes the default node pool",
    "low",
    ADVISE,
    [GKE],
    "Set remove_default_node_pool true and manage pools explicitly.",
)
def gke_default_pool(r: Subject) -> Iterator[str]:
    if r.get("removeDefaultNodePool") is not True:
        yield "the default node pool (default compute SA, no hardening) stays"


@resource_rule(
    "GCP-GKE-010",
    "GKE logs system components and workloads",
    "medium",
    PROD,
    [GKE],
    "Enable logging_config components or keep the default logging service.",
    ["CIS-GKE-1.5.0:5.7.1"],
)
def gke_logging(r: Subject) -> Iterator[str]:
    if r.get("loggingService") == "none":
        yield "logging is off"


@resource_rule(
    "GCP-GKE-011",
    "Node pools use secure boot and integrity monitoring",
    "high",
    ALWAYS,
    [POOL],
    "Set shielded_instance_config enable_secure_boot and enable_integrity_monitoring.",
    ["CIS-GKE-1.5.0:5.5.6", "CIS-GKE-1.5.0:5.5.7"],
)
def pool_shielded(r: Subject) -> Iterator[str]:
    shielded = r.get("nodeConfig.shieldedInstanceConfig") or {}
    if shielded.get("enableSecureBoot") is not True:
        yield "secure boot is off"
    if shielded.get("enableIntegrityMonitoring") is False:
        yield "integrity monitoring is off"


@resource_rule(
    "GCP-GKE-012",
    "Node pools run the GKE metadata server",
    "high",
    ALWAYS,
    [POOL],
    "Set workload_metadata_config.mode GKE_METADATA.",
    ["CIS-GKE-1.5.0:5.4.2"],
)
def pool_metadata(r: Subject) -> Iterator[str]:
    if (r.get("nodeConfig.workloadMetadataConfig") or {}).get("mode") != "GKE_METADATA":
        yield "pods can read the node's metadata and credentials"


@resource_rule(
    "GCP-GKE-013",
    "Node pools do not use the default compute service account",
    "high",
    ALWAYS,
    [POOL],
    "Give nodes a dedicated service account with minimal roles.",
    ["CIS-GKE-1.5.0:5.2.1"],
)
def pool_service_account(r: Subject) -> Iterator[str]:
    sa = r.get("nodeConfig.serviceAccount")
    if not sa or sa == "default" or str(sa).endswith("-compute@developer.gserviceaccount.com"):
        yield "nodes run as the default compute service account (Editor on the project)"


@resource_rule(
    "GCP-GKE-014",
    "Node pools repair and upgrade automatically",
    "medium",
    PROD,
    [POOL],
    "Set management.auto_repair and auto_upgrade true.",
    ["CIS-GKE-1.5.0:5.5.2", "CIS-GKE-1.5.0:5.5.3"],
)
def pool_management(r: Subject) -> Iterator[str]:
    management = r.get("management") or {}
    if management.get("autoRepair") is False or management.get("autoUpgrade") is False:
        yield "auto repair or auto upgrade is off"


# -- network --------------------------------------------------------------------------------------


def _world_allows(r: Subject) -> list[tuple[str, list[str]]]:
    if r.get("direction", "INGRESS") != "INGRESS" or r.get("disabled") is True:
        return []
    if not any(src in WORLD for src in as_list(r.get("sourceRanges"))):
        return []
    return [
        (str(a.get("protocol")), [str(p) for p in as_list(a.get("ports"))])
        for a in as_list(r.get("allows"))
    ]


def _port_in(port: int, ports: list[str]) -> bool:
    if not ports:
        return True
    for p in ports:
        low, _, high = p.partition("-")
        if int(low) <= port <= int(high or low):
            return True
    return False


@resource_rule(
    "GCP-NET-001",
    "No firewall rule opens SSH or RDP to the internet",
    "critical",
    ALWAYS,
    [FIREWALL],
    "Remove the 0.0.0.0/0 source; use IAP TCP forwarding.",
    ["CIS-GCP-2.0.0:3.6", "CIS-GCP-2.0.0:3.7"],
)
def fw_admin(r: Subject) -> Iterator[str]:
    for protocol, ports in _world_allows(r):
        for port in (22, 3389):
            if protocol in ("tcp", "all") and _port_in(port, ports):
                yield f"port {port} open to the internet"


@resource_rule(
    "GCP-NET-002",
    "Firewall rules open only web ports to the internet",
    "high",
    ALWAYS,
    [FIREWALL],
    "Only load balancers accept internet traffic, on 80/443.",
)
def fw_world(r: Subject) -> Iterator[str]:
    for protocol, ports in _world_allows(r):
        if protocol not in ("tcp",) or not ports or not set(ports) <= {"80", "443"}:
            yield f"{protocol} {','.join(ports) or 'all ports'} open to the internet"


@resource_rule(
    "GCP-NET-003",
    "Subnets log flows and reach Google privately",
    "medium",
    PROD,
    [SUBNET],
    "Set log_config and private_ip_google_access true.",
    ["CIS-GCP-2.0.0:3.8"],
)
def subnet_flow_logs(r: Subject) -> Iterator[str]:
    if not r.get("logConfig"):
        yield "flow logs are off"
    if r.get("privateIpGoogleAccess") is not True:
        yield "Private Google Access is off"


@resource_rule(
    "GCP-NET-004",
    "Networks are custom mode",
    "medium",
    ALWAYS,
    ["gcp:compute/network:Network"],
    "Set auto_create_subnetworks false.",
    ["CIS-GCP-2.0.0:3.1"],
)
def network_custom(r: Subject) -> Iterator[str]:
    if r.get("autoCreateSubnetworks", True) is not False:
        yield "auto-mode network (a subnet with default firewall rules in every region)"


# -- IAM and KMS ----------------------------------------------------------------------------------


@resource_rule(
    "GCP-IAM-001",
    "No user-managed service account keys",
    "high",
    ALWAYS,
    ["gcp:serviceaccount/key:Key"],
    "Use Workload Identity (in GKE) or Workload Identity Federation (in CI) instead of keys.",
    ["CIS-GCP-2.0.0:1.4"],
)
def sa_keys(r: Subject) -> Iterator[str]:
    yield "a service account key is a long-lived credential"


@resource_rule(
    "GCP-IAM-002",
    "No basic roles (owner, editor) granted",
    "critical",
    ALWAYS,
    list(PROJECT_IAM),
    "Grant predefined roles scoped to the need.",
    ["CIS-GCP-2.0.0:1.5"],
)
def no_basic_roles(r: Subject) -> Iterator[str]:
    if r.get("role") in ("roles/owner", "roles/editor"):
        yield f"{r.get('role')} granted to {', '.join(_members(r))}"


@resource_rule(
    "GCP-IAM-003",
    "No project-wide service account impersonation",
    "high",
    ALWAYS,
    list(PROJECT_IAM),
    "Grant iam.serviceAccountUser / TokenCreator on one service account.",
    ["CIS-GCP-2.0.0:1.6"],
)
def no_project_impersonation(r: Subject) -> Iterator[str]:
    if r.get("role") in ("roles/iam.serviceAccountUser", "roles/iam.serviceAccountTokenCreator"):
        yield f"{r.get('role')} on the whole project"


@resource_rule(
    "GCP-IAM-004",
    "Storage roles are bucket-level, not project-wide",
    "high",
    ALWAYS,
    list(PROJECT_IAM),
    "Bind storage roles on the buckets the workload needs.",
)
def no_project_storage(r: Subject) -> Iterator[str]:
    if str(r.get("role", "")).startswith("roles/storage."):
        yield f"{r.get('role')} on every bucket of the project"


@resource_rule(
    "GCP-KMS-001",
    "Cloud KMS keys rotate within 90 days",
    "medium",
    ALWAYS,
    ["gcp:kms/cryptoKey:CryptoKey"],
    "Set rotation_period to 7776000s or less.",
    ["CIS-GCP-2.0.0:1.10"],
)
def kms_rotation(r: Subject) -> Iterator[str]:
    period = r.get("rotationPeriod")
    match = re.fullmatch(r"(\d+)(?:\.\d+)?s", str(period or ""))
    if not match or int(match.group(1)) > 90 * 24 * 3600:
        yield f"rotationPeriod is {period!r}"


@resource_rule(
    "GCP-AR-001",
    "Artifact Registry tags are immutable",
    "medium",
    PROD,
    ["gcp:artifactregistry/repository:Repository"],
    "Set docker_config.immutable_tags true.",
)
def ar_immutable(r: Subject) -> Iterator[str]:
    if (
        r.get("format") == "DOCKER"
        and (r.get("dockerConfig") or {}).get("immutableTags") is not True
    ):
        yield "tags are mutable"


@stack_rule(
    "GCP-GKE-S01",
    "Every GKE cluster has node pools of its own",
    "low",
    ADVISE,
    [GKE, POOL],
    "Manage node pools as gcp.container.NodePool resources.",
)
def gke_has_pools(stack: StackSubject) -> Iterator[tuple[str, str]]:
    pools = {str(p.props.get("cluster")) for p in stack.of_type(POOL)}
    for cluster in stack.of_type(GKE):
        if cluster.props.get("name") not in pools:
            yield cluster.urn, "no managed node pool"
