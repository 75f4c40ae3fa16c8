"""GCP cluster rules: GKE clusters and node pools, and the Artifact Registry repositories their
images come from."""

from __future__ import annotations

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

GKE = "gcp:container/cluster:Cluster"
POOL = "gcp:container/nodePool:NodePool"


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


# -- Artifact Registry ----------------------------------------------------------------------------


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
