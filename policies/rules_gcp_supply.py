"""GCP supply-chain and encryption rules: GKE Binary Authorization, and customer-managed keys
on Artifact Registry, Cloud SQL and Memorystore (the buckets' is GCP-GCS-005). Public access
to a repository is an IAM grant: GCP-IAM-005 (`policies/rules_gcp_access.py`)."""

from __future__ import annotations

from collections.abc import Iterator

from policies.model import PROD, Subject, resource_rule

ENFORCING_MODES = (
    "PROJECT_SINGLETON_POLICY_ENFORCE",
    "POLICY_BINDINGS",
    "POLICY_BINDINGS_AND_PROJECT_SINGLETON_POLICY_ENFORCE",
)


@resource_rule(
    "GCP-GKE-015",
    "GKE enforces Binary Authorization",
    "medium",
    PROD,
    ["gcp:container/cluster:Cluster"],
    "Set binary_authorization.evaluation_mode PROJECT_SINGLETON_POLICY_ENFORCE (the project's "
    "policy; with none, every image is admitted until you write one).",
    description="Without Binary Authorization no admission policy can require signed or "
    "allow-listed images; turning it on later is a cluster update, tightening the policy is not.",
)
def gke_binary_authorization(r: Subject) -> Iterator[str]:
    binauthz = r.get("binaryAuthorization") or {}
    mode = binauthz.get("evaluationMode")
    if mode not in ENFORCING_MODES and not (mode is None and binauthz.get("enabled") is True):
        yield f"Binary Authorization evaluationMode is {mode or 'DISABLED'}"


@resource_rule(
    "GCP-AR-002",
    "Artifact Registry repositories are encrypted with a customer-managed key",
    "medium",
    PROD,
    ["gcp:artifactregistry/repository:Repository"],
    "Set kms_key_name (a key in the repository's region; grant the Artifact Registry service "
    "agent cryptoKeyEncrypterDecrypter first). Only at creation.",
)
def ar_cmek(r: Subject) -> Iterator[str]:
    if not r.get("kmsKeyName"):
        yield "no customer-managed encryption key"


@resource_rule(
    "GCP-SQL-012",
    "Cloud SQL is encrypted with a customer-managed key",
    "medium",
    PROD,
    ["gcp:sql/databaseInstance:DatabaseInstance"],
    "Set encryption_key_name (a key in the instance's region; the Cloud SQL service agent, "
    "made with projects.ServiceIdentity, needs cryptoKeyEncrypterDecrypter first). Only at "
    "creation.",
)
def sql_cmek(r: Subject) -> Iterator[str]:
    if not r.get("encryptionKeyName"):
        yield "no customer-managed encryption key"


@resource_rule(
    "GCP-REDIS-004",
    "Memorystore is encrypted with a customer-managed key",
    "medium",
    PROD,
    ["gcp:redis/instance:Instance"],
    "Set customer_managed_key (a key in the instance's region; grant the Memorystore service "
    "agent cryptoKeyEncrypterDecrypter first). Only at creation.",
)
def redis_cmek(r: Subject) -> Iterator[str]:
    if not r.get("customerManagedKey"):
        yield "no customer-managed encryption key"
