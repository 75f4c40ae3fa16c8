"""The GCP foundation under the mock engine, and its parity with AWS."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from components import contracts
from components.contracts import BUCKET_PURPOSES, WORKLOAD_SPECS, BucketGrant
from components.gcp.workload_identity import prefix_condition
from contracts.deployment import Plan, is_secret, is_unknown
from tests.conftest import Synth, named, only

pytestmark = pytest.mark.unit

ENVS = ("gcp-dev", "gcp-prod")


@pytest.mark.parametrize("stack", ENVS)
def test_network(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    vpc = only(plan, "gcp:compute/network:Network")
    assert vpc.inputs["autoCreateSubnetworks"] is False
    subnet = only(plan, "gcp:compute/subnetwork:Subnetwork").inputs
    assert subnet["privateIpGoogleAccess"] is True
    assert {r["rangeName"]: r["ipCidrRange"] for r in subnet["secondaryIpRanges"]} == {
        "pods": "10.64.0.0/14",
        "services": "10.68.0.0/20",
    }
    assert subnet["logConfig"]["metadata"] == "INCLUDE_ALL_METADATA"  # flow logs on
    nat = only(plan, "gcp:compute/routerNat:RouterNat").inputs
    assert nat["router"] == only(plan, "gcp:compute/router:Router").outputs["name"]
    psa = only(plan, "gcp:compute/globalAddress:GlobalAddress").inputs
    assert (psa["purpose"], psa["address"], psa["prefixLength"]) == ("VPC_PEERING", "10.70.0.0", 16)
    conn = only(plan, "gcp:servicenetworking/connection:Connection").inputs
    assert conn["service"] == "servicenetworking.googleapis.com"


@pytest.mark.parametrize("stack", ENVS)
def test_firewall_denies_by_default(plans: dict[str, Plan], stack: str) -> None:
    rules = {
        r.inputs["name"].rsplit("-", 2)[-2] + "-" + r.inputs["name"].rsplit("-", 1)[-1]: r.inputs
        for r in plans[stack].of_type("gcp:compute/firewall:Firewall")
    }
    deny = rules["all-ingress"]
    assert deny["denies"] == [{"protocol": "all"}]
    assert deny["sourceRanges"] == ["0.0.0.0/0"]
    assert deny["priority"] == 65534
    for name, rule in rules.items():
        if name != "all-ingress":
            assert "0.0.0.0/0" not in rule["sourceRanges"], name
            assert rule["priority"] < deny["priority"]


@pytest.mark.parametrize(("stack", "regional"), [("gcp-dev", False), ("gcp-prod", True)])
def test_gke_hardening(plans: dict[str, Plan], stack: str, regional: bool) -> None:
    plan = plans[stack]
    gke = only(plan, "gcp:container/cluster:Cluster").inputs
    assert gke["location"] == ("europe-west1" if regional else "europe-west1-b")
    private = gke["privateClusterConfig"]
    assert private["enablePrivateNodes"] is True
    assert private["enablePrivateEndpoint"] is True
    assert gke["removeDefaultNodePool"] is True
    assert gke["enableLegacyAbac"] is False
    assert gke["masterAuth"]["clientCertificateConfig"]["issueClientCertificate"] is False
    assert "username" not in gke["masterAuth"]
    assert "password" not in gke["masterAuth"]
    assert gke["workloadIdentityConfig"]["workloadPool"] == f"dex-platform-{stack[4:]}.svc.id.goog"
    assert gke["enableShieldedNodes"] is True
    assert gke["datapathProvider"] == "ADVANCED_DATAPATH"  # Dataplane V2 enforces NetworkPolicy
    assert gke["releaseChannel"]["channel"] == ("STABLE" if regional else "REGULAR")
    assert gke["minMasterVersion"] == "1.35"
    if regional:
        key = only(plan, "gcp:kms/cryptoKey:CryptoKey", "secrets-key")
        assert gke["databaseEncryption"] == {"state": "ENCRYPTED", "keyName": key.outputs["id"]}
    else:
        assert "databaseEncryption" not in gke
    pools = {p.inputs["name"]: p.inputs for p in plan.of_type("gcp:container/nodePool:NodePool")}
    assert set(pools) == {"system", "batch"}
    nodes_sa = only(plan, "gcp:serviceaccount/account:Account", "nodes-sa").outputs["email"]
    for name, pool in pools.items():
        node = pool["nodeConfig"]
        assert node["shieldedInstanceConfig"] == {
            "enableSecureBoot": True,
            "enableIntegrityMonitoring": True,
        }
        assert node["workloadMetadataConfig"]["mode"] == "GKE_METADATA"
        assert node["serviceAccount"] == nodes_sa  # never the default compute account
        assert pool["management"] == {"autoRepair": True, "autoUpgrade": True}
        assert node.get("spot", False) is (regional and name == "batch")
        assert pool["autoscaling"]["totalMinNodeCount"] <= pool["autoscaling"]["totalMaxNodeCount"]


def test_master_authorized_networks_from_config(synth: Synth) -> None:
    plan = synth("gcp-dev", cluster={"public_access_cidrs": ["198.51.100.0/24"]})
    gke = only(plan, "gcp:container/cluster:Cluster").inputs
    assert gke["privateClusterConfig"]["enablePrivateEndpoint"] is False
    cidrs = [b["cidrBlock"] for b in gke["masterAuthorizedNetworksConfig"]["cidrBlocks"]]
    assert cidrs == ["10.0.0.0/16", "198.51.100.0/24"]


@pytest.mark.parametrize("stack", ENVS)
def test_buckets(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    prod = stack == "gcp-prod"
    buckets = {b.inputs["labels"]["purpose"]: b for b in plan.of_type("gcp:storage/bucket:Bucket")}
    assert set(buckets) == set(BUCKET_PURPOSES) | ({"access-logs"} if prod else set())
    for purpose, bucket in buckets.items():
        i = bucket.inputs
        assert i["uniformBucketLevelAccess"] is True
        assert i["publicAccessPrevention"] == "enforced"
        assert i["versioning"] == {"enabled": True}
        actions = {r["action"]["type"] for r in i["lifecycleRules"]}
        assert {"Delete", "AbortIncompleteMultipartUpload"} <= actions
        if prod and purpose != "access-logs":
            assert i["encryption"]["defaultKmsKeyName"].endswith("/cryptoKeys/dex-prod-buckets")
            assert i["logging"]["logBucket"] == buckets["access-logs"].inputs["name"]
        if not prod:
            assert "encryption" not in i
    raw = buckets["raw"].inputs["lifecycleRules"]
    classes = [
        r["action"].get("storageClass") for r in raw if r["action"]["type"] == "SetStorageClass"
    ]
    assert classes == ["NEARLINE", "ARCHIVE"]


def test_cmek_key_is_usable_by_the_storage_agent(plans: dict[str, Plan]) -> None:
    member = only(
        plans["gcp-prod"], "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "storage-key-gcs"
    )
    assert member.inputs["member"].endswith("@gs-project-accounts.iam.gserviceaccount.com")
    assert member.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"


def test_kms_keys_follow_the_stacks_protection_like_every_stateful_resource(
    plans: dict[str, Plan], synth: Synth
) -> None:
    """Keys are protected where the stack is (prod), not hard-coded: a dev stack that turns
    CMEK and secrets encryption on gets its keys, unprotected like its other resources."""
    kms_types = ("gcp:kms/keyRing:KeyRing", "gcp:kms/cryptoKey:CryptoKey")
    prod = [r for r in plans["gcp-prod"] if r.type in kms_types]
    # a ring and a key each for GKE secrets, the buckets, Cloud SQL, Memorystore, the registry
    assert len(prod) == 10
    assert all(r.protect for r in prod)
    assert not [r for r in plans["gcp-dev"] if r.type in kms_types]
    every_key = {
        "storage": {"cmek": True},
        "database": {"cmek": True},
        "cache": {"cmek": True},
        "registry": {"cmek": True},
    }
    dev = synth("gcp-dev", cluster={"encrypt_secrets": True}, **every_key)
    keys = [r for r in dev if r.type in kms_types]
    assert len(keys) == 10
    assert not any(r.protect for r in keys)
    gke = only(dev, "gcp:container/cluster:Cluster").inputs
    assert gke["databaseEncryption"]["state"] == "ENCRYPTED"
    protected = synth("gcp-dev", deletion_protection=True, **every_key)
    assert all(r.protect for r in protected if r.type in kms_types)


def test_environment_differences_are_config_knobs(synth: Synth) -> None:
    """What used to follow `environment == prod` follows its own key: a dev stack told to be
    regional gets a regional cluster."""
    zonal = only(synth("gcp-dev"), "gcp:container/cluster:Cluster").inputs["location"]
    regional = synth("gcp-dev", cluster={"regional": True})
    assert only(regional, "gcp:container/cluster:Cluster").inputs["location"] == "europe-west1"
    assert zonal != "europe-west1"


@pytest.mark.parametrize(("stack", "ha"), [("gcp-dev", False), ("gcp-prod", True)])
def test_cloud_sql(plans: dict[str, Plan], stack: str, ha: bool) -> None:
    plan = plans[stack]
    sql = only(plan, "gcp:sql/databaseInstance:DatabaseInstance")
    s = sql.inputs["settings"]
    assert sql.inputs["databaseVersion"] == "POSTGRES_17"
    assert s["ipConfiguration"]["ipv4Enabled"] is False
    assert s["ipConfiguration"]["sslMode"] == "ENCRYPTED_ONLY"
    assert (
        s["ipConfiguration"]["privateNetwork"]
        == only(plan, "gcp:compute/network:Network").outputs["id"]
    )
    backup = s["backupConfiguration"]
    assert backup["enabled"] is True
    assert backup["pointInTimeRecoveryEnabled"] is True
    assert s["availabilityType"] == ("REGIONAL" if ha else "ZONAL")
    assert sql.inputs["deletionProtection"] is ha
    assert s["deletionProtectionEnabled"] is ha
    assert sql.protect is ha
    assert s["maintenanceWindow"]["day"] == 7
    assert s["insightsConfig"]["queryInsightsEnabled"] is ha
    conn = only(plan, "gcp:servicenetworking/connection:Connection")
    assert conn.urn in sql.dependencies
    # only the admin through the Users API: the bootstrap Job makes the apps' roles and
    # databases, so the admin holds ADMIN OPTION on them (PostgreSQL 16+)
    assert not plan.of_type("gcp:sql/database:Database")
    users = {u.inputs["name"]: u for u in plan.of_type("gcp:sql/user:User")}
    assert set(users) == {"dex_admin"}
    assert all(is_secret(u.inputs["password"]) for u in users.values())
    # Cloud SQL refuses transaction-log days >= retained backups (issue 14, finding 8)
    retained = backup["backupRetentionSettings"]["retainedBackups"]
    assert backup["transactionLogRetentionDays"] < retained
    assert (backup["transactionLogRetentionDays"], retained) == ((7, 14) if ha else (1, 2))
    assert s["edition"] == "ENTERPRISE"  # the db-custom tiers run on Enterprise only


@pytest.mark.parametrize("stack", ENVS)
def test_cloud_sql_logging_flags(plans: dict[str, Plan], stack: str) -> None:
    """What Checkov's Cloud SQL logging checks read. log_min_error_statement is set to its
    default so the plan shows it (CKV_GCP_109 passes only on a set flag); log_hostname and
    log_duration stay off and slow statements are logged at 1 s (CKV_GCP_108, CKV2_GCP_13 and
    CKV_GCP_57 accepted in policies/checkov-accepted.yaml, with the reasons)."""
    sql = only(plans[stack], "gcp:sql/databaseInstance:DatabaseInstance")
    flags = {f["name"]: f["value"] for f in sql.inputs["settings"]["databaseFlags"]}
    assert flags["log_min_error_statement"] == "error"
    assert flags["log_min_duration_statement"] == "1000"
    assert "log_hostname" not in flags
    assert "log_duration" not in flags
    assert "log_statement" not in flags  # pgAudit records statements (GCP-SQL-010)
    assert len(flags) == len(sql.inputs["settings"]["databaseFlags"])  # no flag set twice


@pytest.mark.parametrize("stack", ENVS)
def test_cloud_sql_clients_verify_the_instance_ca(plans: dict[str, Plan], stack: str) -> None:
    """Clients verify the chain against the instance's own CA: the per-instance server
    certificate names `project:instance`, not the private IP they dial (verify-ca)."""
    db = only(plans[stack], "dex:gcp:Database").outputs
    assert db["sslmode"] == "verify-ca"
    # the CA is generated with the instance: unknown in a plan, never invented
    assert is_unknown(db["ca_certificate"])
    assert not is_secret(db["ca_certificate"])  # a CA certificate is public


@pytest.mark.parametrize(("stack", "tier"), [("gcp-dev", "BASIC"), ("gcp-prod", "STANDARD_HA")])
def test_memorystore(plans: dict[str, Plan], stack: str, tier: str) -> None:
    redis = only(plans[stack], "gcp:redis/instance:Instance").inputs
    assert redis["tier"] == tier
    assert redis["authEnabled"] is True
    assert redis["transitEncryptionMode"] == "SERVER_AUTHENTICATION"
    assert redis["connectMode"] == "PRIVATE_SERVICE_ACCESS"
    assert redis["redisVersion"] == "REDIS_7_2"


@pytest.mark.parametrize("stack", ENVS)
def test_memorystore_contract_has_the_tls_port_and_ca(plans: dict[str, Plan], stack: str) -> None:
    """With TLS Memorystore serves on 6378 and signs with its own CA (issue 14, finding 12):
    the contract carries the port the instance reports and its serverCaCerts."""
    instance = only(plans[stack], "gcp:redis/instance:Instance").outputs
    cache = only(plans[stack], "dex:gcp:Cache").outputs
    assert instance["port"] == 6378
    assert cache["port"] == 6378
    assert is_secret(cache["url"])
    assert is_unknown(cache["ca_certificate"])  # serverCaCerts exist once the instance does


@pytest.mark.parametrize(("stack", "logging"), [("gcp-dev", False), ("gcp-prod", True)])
def test_access_logs_can_be_delivered(plans: dict[str, Plan], stack: str, logging: bool) -> None:
    """Usage logs are written by group:cloud-storage-analytics@google.com, which needs
    objectCreator on the log bucket (issue 14, finding 15)."""
    plan = plans[stack]
    writers = [
        b
        for b in plan.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
        if b.inputs["member"] == "group:cloud-storage-analytics@google.com"
    ]
    if not logging:
        assert writers == []
        return
    (writer,) = writers
    log_bucket = only(plan, "gcp:storage/bucket:Bucket", "access-logs")
    assert writer.inputs["role"] == "roles/storage.objectCreator"
    assert writer.inputs["bucket"] == log_bucket.outputs["name"]
    assert log_bucket.urn in writer.dependencies
    for bucket in plan.of_type("gcp:storage/bucket:Bucket"):
        if "logging" in bucket.inputs:
            assert writer.urn in bucket.dependencies, bucket.name


@pytest.mark.parametrize(("stack", "keep"), [("gcp-dev", 10), ("gcp-prod", 30)])
def test_artifact_registry(plans: dict[str, Plan], stack: str, keep: int) -> None:
    repo = only(plans[stack], "gcp:artifactregistry/repository:Repository").inputs
    assert repo["format"] == "DOCKER"
    assert repo["dockerConfig"] == {"immutableTags": True}
    keep_rule = next(p for p in repo["cleanupPolicies"] if p["action"] == "KEEP")
    assert keep_rule["mostRecentVersions"]["keepCount"] == keep


@pytest.mark.parametrize("stack", ENVS)
def test_workload_identity_is_per_workload_and_bucket_scoped(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    pool = only(plan, "gcp:container/cluster:Cluster").inputs["workloadIdentityConfig"][
        "workloadPool"
    ]
    bindings = {
        b.name.rsplit("-", 2)[-2]: b.inputs
        for b in named(plan, "gcp:serviceaccount/iAMMember:IAMMember", "-wi")
    }
    assert set(bindings) == {w.name for w in WORKLOAD_SPECS}
    gke = only(plan, "gcp:container/cluster:Cluster")
    for spec in WORKLOAD_SPECS:
        b = bindings[spec.name]
        assert b["role"] == "roles/iam.workloadIdentityUser"
        assert b["member"] == f"serviceAccount:{pool}[{spec.namespace}/{spec.service_account}]"
    for binding in named(plan, "gcp:serviceaccount/iAMMember:IAMMember", "-wi"):
        # the pool exists only once the cluster does ("Identity Pool does not exist")
        assert gke.urn in binding.dependencies, binding.name
    # No project-wide storage role for any workload: storage roles are bucket-level only.
    for member in plan.of_type("gcp:projects/iAMMember:IAMMember"):
        assert not member.inputs["role"].startswith("roles/storage"), member.name
    bucket_bindings = [
        b
        for b in plan.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
        if "dex:gcp:WorkloadIdentity$" in b.urn
    ]
    expected = sum(len(w.grants) for w in WORKLOAD_SPECS)
    assert len(bucket_bindings) == expected
    api_raw = next(b for b in bucket_bindings if b.name.endswith("-api-raw"))
    assert "objects/predictions/" in api_raw.inputs["condition"]["expression"]


def test_prefix_condition() -> None:
    assert prefix_condition("b", BucketGrant("raw", "write")) is None
    cond = prefix_condition("b", BucketGrant("raw", "write", ("a/", "c/")))
    assert cond is not None
    assert 'startsWith("projects/_/buckets/b/objects/a/")' in cond["expression"]
    assert 'startsWith("projects/_/buckets/b/objects/c/")' in cond["expression"]


@pytest.mark.parametrize("stack", ENVS)
def test_everything_labelled(plans: dict[str, Plan], stack: str) -> None:
    import json

    plan = plans[stack]
    (provider,) = [r for r in plan.of_type("pulumi:providers:gcp") if r.name == "gcp"]
    labels = json.loads(provider.inputs["defaultLabels"])
    assert labels == {
        "project": "dex",
        "environment": stack[4:],
        "owner": "platform-team",
        "managed-by": "pulumi",
    }
    for res in plan:
        for key in ("labels", "resourceLabels"):
            if res.type.startswith("gcp:") and key in res.inputs:
                assert "component" in res.inputs[key], res.urn


def test_services_enabled_before_use(plans: dict[str, Plan]) -> None:
    """Every GCP resource waits for every API the stack enables, through its provider: a
    component's `depends_on` would not reach its children (the engine sees only what each
    resource records)."""
    from toolchain.first_deploy import Graph

    plan = plans["gcp-prod"]
    services = {s.urn for s in plan.of_type("gcp:projects/service:Service")}
    assert len(services) >= 8
    graph = Graph(plan)
    for res in plan:
        if res.custom and res.type.startswith("gcp:") and res.urn not in services:
            assert services <= graph.before(res.urn), res.urn
    # the lookups and the API switches themselves use a provider that waits for nothing
    (apis,) = [r for r in plan.of_type("pulumi:providers:gcp") if r.name == "gcp-apis"]
    assert not apis.dependencies


# -- parity --------------------------------------------------------------------------------------

CAPABILITIES = {
    "Network": contracts.NetworkOutputs,
    "Cluster": contracts.ClusterOutputs,
    "ObjectStore": contracts.ObjectStoreOutputs,
    "Database": contracts.DatabaseOutputs,
    "Cache": contracts.CacheOutputs,
    "Registry": contracts.RegistryOutputs,
    "WorkloadIdentity": contracts.WorkloadIdentityOutputs,
}


@pytest.mark.parametrize("capability", sorted(CAPABILITIES))
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_both_clouds_expose_the_same_contract(
    plans: dict[str, Plan], capability: str, env: str
) -> None:
    every = [
        f for f in dataclasses.fields(CAPABILITIES[capability]) if f.metadata.get("output", True)
    ]
    # Optional fields (None by default: the cache's CA when system CAs verify it, the default
    # StorageClass when the cloud ships one) differ by design; every other field is there,
    # with the same shape, on both clouds.
    optional = {f.name for f in every if f.default is None}
    fields = {f.name for f in every} - optional
    shapes = {}
    for cloud, stack in (("aws", env), ("gcp", f"gcp-{env}")):
        comp = only(plans[stack], f"dex:{cloud}:{capability}")
        assert fields <= set(comp.outputs), (
            f"{cloud} {capability} lacks {fields - set(comp.outputs)}"
        )
        shapes[cloud] = {k: _shape(comp.outputs[k]) for k in fields}
    assert shapes["aws"] == shapes["gcp"]


def _shape(value: object, depth: int = 0) -> object:
    """The structure of a value (keys of mappings, secret-ness), not the value itself. Below
    the per-workload/per-app level a mapping is just a mapping: annotation keys are
    cloud-specific by design."""
    if is_secret(value):
        return "secret"
    if isinstance(value, dict):
        if depth >= 1 and all(isinstance(v, str) for v in value.values()):
            return "mapping"
        return {k: _shape(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def test_gcp_ranges_in_the_shipped_stacks_are_disjoint(plans: dict[str, Plan]) -> None:
    subnet = only(plans["gcp-prod"], "gcp:compute/subnetwork:Subnetwork").inputs
    ranges = [ipaddress.ip_network(subnet["ipCidrRange"])] + [
        ipaddress.ip_network(r["ipCidrRange"]) for r in subnet["secondaryIpRanges"]
    ]
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            assert not a.overlaps(b)


def test_cmek_resources_wait_for_the_agent_and_the_grant_to_propagate(
    plans: dict[str, Plan],
) -> None:
    """agent -> wait -> grant -> wait -> resource: the provider retries neither a grant to an
    agent IAM does not know yet nor a resource created before its grant propagates."""
    plan = plans["gcp-prod"]
    by_urn = plan.by_urn()
    encrypted = [
        *plan.of_type("gcp:sql/databaseInstance:DatabaseInstance"),
        *plan.of_type("gcp:redis/instance:Instance"),
        *plan.of_type("gcp:artifactregistry/repository:Repository"),
    ]
    assert len(encrypted) == 3
    for res in encrypted:
        (wait,) = [by_urn[u] for u in res.dependencies if by_urn[u].type == "command:local:Command"]
        assert wait.inputs["create"].startswith("sleep ")
        (grant,) = [by_urn[u] for u in wait.dependencies]
        assert grant.type == "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
        (agent_wait,) = [
            by_urn[u] for u in grant.dependencies if by_urn[u].type == "command:local:Command"
        ]
        (agent,) = [by_urn[u] for u in agent_wait.dependencies]
        assert agent.type == "gcp:projects/serviceIdentity:ServiceIdentity"


@pytest.mark.parametrize("stack", ["gcp-dev", "gcp-prod"])
def test_control_plane_firewall_opens_every_webhook_port(
    plans: dict[str, Plan], stack: str
) -> None:
    """The API server calls the webhooks (and kubeseal's proxy to sealed-secrets) on their
    pods' ports; without Konnectivity those calls cross the VPC firewall, whose last rule
    denies everything, so the control plane's rule must open each of them."""
    from components.k8s.namespaces import WEBHOOKS

    rule = only(plans[stack], "gcp:compute/firewall:Firewall", "allow-control-plane")
    opened = {p for allow in rule.inputs["allows"] for p in allow.get("ports", [])}
    assert {str(hook.port) for hook in WEBHOOKS} <= opened
