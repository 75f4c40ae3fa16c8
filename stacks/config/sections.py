"""The sections of the stack config: what both clouds share, and each cloud's own.

A key that only one cloud reads lives only in that cloud's section (`Aws...`/`Gcp...`), so a
stack on the other cloud that sets it is told the key is not known there, and no section
carries placeholder values for the other cloud.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stacks.config.errors import CrossFieldError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class NodeGroupConfig(_Section):
    """One pool of worker nodes (an EKS managed node group / a GKE node pool)."""

    instance_types: list[str] = Field(min_length=1)
    """Machine types, first preferred (EC2 instance types on AWS, machine types on GCP)."""
    min_size: int = Field(ge=0, le=1000)
    """Fewest nodes the autoscaler keeps."""
    desired_size: int = Field(ge=0, le=1000)
    """Nodes at creation; the autoscaler moves it afterwards."""
    max_size: int = Field(ge=1, le=1000)
    """Most nodes the autoscaler may add."""
    disk_size_gib: int = Field(ge=20, le=2000)
    """Root volume per node, in GiB."""
    spot: bool
    """Run on spot / preemptible capacity (interruptible, cheaper)."""

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                "min_size <= desired_size <= max_size must hold, got "
                f"min_size={self.min_size}, desired_size={self.desired_size}, "
                f"max_size={self.max_size}"
            )
        return self


class NetworkConfig(_Section):
    """Addressing and egress."""

    cidr: ipaddress.IPv4Network
    """AWS: the VPC range (a /16 to /20, carved into public/private/database subnets per AZ).
    GCP: the primary range of the regional subnet (nodes)."""


class AwsNetworkConfig(NetworkConfig):
    """The VPC. Defaults: one NAT in dev, one NAT per AZ in prod."""

    availability_zones: int = Field(ge=2, le=3)
    """How many availability zones the subnets span."""
    nat_gateways: Literal["single", "per_az"]
    """One shared NAT gateway (cheap, dev) or one per AZ (survives an AZ outage, prod)."""
    flow_logs_retention_days: int = Field(ge=1, le=3653)
    """How long VPC flow logs are kept in CloudWatch."""


class GcpNetworkConfig(NetworkConfig):
    """The VPC's regional subnet and its ranges (subnet flow logs go to Cloud Logging under
    the project's log retention; Cloud NAT is one regional gateway)."""

    pods_cidr: ipaddress.IPv4Network
    """The subnet's secondary range for pods."""
    services_cidr: ipaddress.IPv4Network
    """The subnet's secondary range for services."""
    private_services_cidr: ipaddress.IPv4Network
    """The range reserved for private service access (Cloud SQL, Memorystore)."""
    control_plane_cidr: ipaddress.IPv4Network
    """The /28 for the GKE control plane's private endpoint."""


class ClusterConfig(_Section):
    """The Kubernetes cluster (EKS or GKE)."""

    kubernetes_version: Literal["1.33", "1.34", "1.35"]
    """Pinned Kubernetes minor version."""
    public_access_cidrs: list[ipaddress.IPv4Network]
    """CIDRs allowed to reach the API endpoint from outside the network. Empty (the default)
    means the endpoint is private only."""
    system_nodes: NodeGroupConfig
    """Nodes for platform services (on-demand)."""
    batch_nodes: NodeGroupConfig
    """Nodes for pipelines and training (spot in prod)."""


class AwsClusterConfig(ClusterConfig):
    """EKS, with Karpenter for the batch nodes."""

    log_retention_days: int = Field(ge=1, le=3653)
    """How long EKS control-plane logs are kept in CloudWatch."""
    admin_role_arns: list[str] = Field(default_factory=list)
    """IAM role ARNs with cluster admin through EKS access entries
    (AmazonEKSClusterAdminPolicy): the deploy role goes here. Empty: the principal running
    `pulumi up` (there is no implicit creator access)."""
    view_role_arns: list[str] = Field(default_factory=list)
    """IAM role ARNs that may read every Kubernetes object, Secrets included
    (AmazonEKSAdminViewPolicy): the drift-detection role goes here."""
    karpenter_controller_size: Literal["small", "upstream"]
    """Karpenter's controller: `small` (a quarter CPU, 512Mi; dev, where two small system
    nodes run every platform service) or `upstream` (the getting-started sizing, 1 CPU and
    1Gi)."""


class GcpClusterConfig(ClusterConfig):
    """GKE Standard with private nodes."""

    release_channel: Literal["RAPID", "REGULAR", "STABLE"]
    """The GKE release channel."""
    regional: bool
    """A regional cluster (control plane and nodes in three zones, survives a zone outage)
    instead of a zonal one (one zone, cheaper)."""
    encrypt_secrets: bool
    """Encrypt Kubernetes Secrets at the application layer with a Cloud KMS key of the
    stack's own (the key ring is permanent in the project: see docs/config.md)."""


class DatabaseConfig(_Section):
    """The managed PostgreSQL (RDS or Cloud SQL). Prod: HA, PITR, longer backups."""

    engine_version: Literal["15", "16", "17"]
    """PostgreSQL major version."""
    instance_class: str
    """AWS: an RDS class like `db.t4g.medium`. GCP: a tier like `db-custom-2-7680`."""
    storage_gib: int = Field(ge=20, le=65536)
    """Allocated storage at creation, in GiB."""
    max_storage_gib: int = Field(ge=20, le=65536)
    """Storage autoscaling ceiling, in GiB."""
    high_availability: bool
    """AWS: Multi-AZ. GCP: REGIONAL availability."""
    backup_retention_days: int = Field(ge=1, le=35)
    """Days of automated backups kept (GCP: the number of daily backups Cloud SQL retains)."""
    point_in_time_recovery: bool
    """Continuous WAL archiving for restore to any second within the backup window."""
    performance_insights: bool
    """AWS: Performance Insights. GCP: Query Insights."""

    @model_validator(mode="after")
    def _storage(self) -> Self:
        if self.max_storage_gib < self.storage_gib:
            raise ValueError(
                f"max_storage_gib ({self.max_storage_gib}) must be at least "
                f"storage_gib ({self.storage_gib})"
            )
        return self


class AwsDatabaseConfig(DatabaseConfig):
    """RDS for PostgreSQL."""


class GcpDatabaseConfig(DatabaseConfig):
    """Cloud SQL for PostgreSQL."""

    transaction_log_retention_days: int = Field(ge=1, le=35)
    """Days of write-ahead logs kept for point-in-time recovery; Cloud SQL requires fewer
    than backup_retention_days, and at most 7 on the Enterprise edition."""
    cmek: bool
    """Encrypt the instance with a Cloud KMS key of the stack's own. Set at creation only
    (the provider replaces the instance to change it): see docs/config.md before turning it
    on for an instance that exists."""


class CacheConfig(_Section):
    """The managed cache (ElastiCache for Valkey or Memorystore for Redis), always with TLS
    and auth."""

    high_availability: bool
    """AWS: Multi-AZ with automatic failover. GCP: STANDARD_HA tier."""


class AwsCacheConfig(CacheConfig):
    """ElastiCache for Valkey."""

    engine_version: Literal["7.2", "8.0", "8.1", "8.2"]
    """The ElastiCache for Valkey version (GCP runs Memorystore for Redis 7.2)."""
    node_type: str
    """An ElastiCache node type like `cache.t4g.small`."""
    replicas: int = Field(ge=0, le=5)
    """Read replicas per shard (high availability needs at least 1)."""
    snapshot_retention_days: int = Field(ge=0, le=35)
    """Days of automatic daily snapshots kept (0: none)."""

    @model_validator(mode="after")
    def _replicas(self) -> Self:
        if self.high_availability and self.replicas < 1:
            raise ValueError(f"high_availability needs replicas >= 1, got replicas={self.replicas}")
        return self


class GcpCacheConfig(CacheConfig):
    """Memorystore for Redis."""

    memory_size_gib: int = Field(ge=1, le=300)
    """Memorystore capacity in GiB."""
    cmek: bool
    """Encrypt the instance with a Cloud KMS key of the stack's own. Set at creation only
    (the provider replaces the instance to change it): see docs/config.md."""


class StorageConfig(_Section):
    """The lake and platform buckets (S3 or GCS)."""

    raw_infrequent_access_after_days: int = Field(ge=30, le=3650)
    """Raw-layer objects move to infrequent access (S3 Standard-IA / GCS Nearline) after this."""
    raw_archive_after_days: int = Field(ge=31, le=3650)
    """Raw-layer objects move to archive (Glacier IR / GCS Archive) after this."""
    noncurrent_version_expiration_days: int = Field(ge=1, le=3650)
    """Overwritten/deleted object versions are kept this long, then expired."""
    access_logging: bool
    """Server access logs for every bucket into a dedicated log bucket."""
    force_destroy: bool
    """Allow deleting buckets that still hold objects. Off by default everywhere."""

    @model_validator(mode="after")
    def _tiers(self) -> Self:
        if self.raw_archive_after_days <= self.raw_infrequent_access_after_days:
            raise ValueError(
                f"raw_archive_after_days ({self.raw_archive_after_days}) must be later than "
                f"raw_infrequent_access_after_days ({self.raw_infrequent_access_after_days})"
            )
        return self


class AwsStorageConfig(StorageConfig):
    """S3 buckets (always encrypted with the stack's KMS key)."""


class GcpStorageConfig(StorageConfig):
    """GCS buckets."""

    cmek: bool
    """Encrypt the buckets with a Cloud KMS key of the stack's own (customer-managed)
    instead of Google-managed keys (the key ring is permanent in the project: see
    docs/config.md)."""


class RegistryConfig(_Section):
    """The image registry (ECR or Artifact Registry)."""

    keep_images: int = Field(ge=1, le=1000)
    """How many most recent images per repository the lifecycle policy keeps."""


class GcpRegistryConfig(RegistryConfig):
    """Artifact Registry."""

    cmek: bool
    """Encrypt the repository with a Cloud KMS key of the stack's own. Set at creation only
    (the provider replaces the repository to change it): see docs/config.md."""


_HOSTNAME = re.compile(r"^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CRON = re.compile(r"^(@(hourly|daily|weekly|monthly|yearly)|(\S+\s+){4}\S+)$")


class PlatformConfig(_Section):
    """What runs on the cluster: hostnames, TLS, the apps' scale and auth."""

    domain: str
    """DNS domain the platform serves under: `api.`, `mlflow.`, `airflow.`, `grafana.` +
    domain. Point a wildcard record at the Gateway's load balancer."""
    tls_issuer: Literal["acme", "self-signed"]
    """Where certificates come from: ACME (Let's Encrypt, HTTP-01 through the Gateway) or a
    self-signed CA inside the cluster (dev)."""
    acme_email: str | None = None
    """The ACME account's contact address; required with tls_issuer acme."""
    acme_server: str = "https://acme-v02.api.letsencrypt.org/directory"
    """The ACME directory (Let's Encrypt's staging one for trials)."""
    api_min_replicas: int = Field(ge=1, le=100)
    """Serving API replicas the autoscaler keeps at least."""
    api_max_replicas: int = Field(ge=1, le=500)
    """Serving API replicas the autoscaler may scale to."""
    api_auth: Literal["hs256", "jwks"]
    """How the API checks bearer tokens: a shared HS256 secret (generated, sealed) or RS256
    through an OIDC provider's JWKS."""
    api_jwks_url: str | None = None
    """The OIDC provider's JWKS URL; required with api_auth jwks."""
    api_jwt_issuer: str | None = None
    """The `iss` tokens must carry (api_auth jwks)."""
    api_jwt_audience: str = "dex-api"
    """The `aud` tokens must carry."""
    api_rollout: Literal["off", "shadow", "canary"] = "off"
    """How the serving API runs the registry's `challenger` beside the `champion`: `off`, the
    champion answers everything; `shadow`, the champion answers and the challenger also
    scores (a share of) requests off the response path, both logged; `canary`, a share of
    callers (sticky per token subject) is answered by the challenger. The model-ops job
    promotes or retires the challenger from the logged predictions."""
    api_canary_share: float = Field(0.0, ge=0, le=1)
    """Share of callers (0 to 1, by token subject) the challenger answers with api_rollout
    canary; canary needs it above 0."""
    api_shadow_share: float = Field(1.0, ge=0, le=1)
    """Share of requests (0 to 1) the challenger also scores with api_rollout shadow."""
    training_schedule: str = "0 4 * * *"
    """Cron schedule (UTC) of the training CronJob."""
    model_ops_schedule: str = "30 6 * * *"
    """Cron schedule (UTC) of the model-ops CronJob (`python -m apps.training.ops daily`):
    joins logged predictions with the actuals, promotes or retires the challenger, scores the
    next day, retrains on drift. Daily, after the day's gold: its alert expects a success at
    least every 26 hours."""
    model_mae_alert_celsius: float = Field(3.0, gt=0, le=50)
    """The champion's online MAE (degrees Celsius, over the model-ops job's decision window)
    above which DexChampionOnlineMaeHigh fires (docs/runbooks.md)."""
    grafana_admin_user: str = "admin"
    """Grafana's admin user (the password is generated)."""
    service_replicas: int = Field(ge=1, le=5)
    """Replicas of the platform's own services (the Envoy gateway, MLflow, Airflow's API
    server, Prometheus, Alertmanager, Grafana): 2 survives a node drain."""
    metrics_retention_days: int = Field(ge=1, le=365)
    """Days of metrics Prometheus keeps."""
    image_source: Literal["build", "registry"] = "build"
    """Where the apps' images come from: `build`, `pulumi up` builds and pushes them (Docker
    with buildx where it runs); `registry`, they were pushed before under their source tags
    (`dex images push --stack S`) and the deploy only looks up their digests (CI's
    in-network runners have no Docker daemon)."""
    ci_github_config_url: str | None = None
    """Where this stack's in-network CI runners register (`https://github.com/OWNER/REPO`):
    the deploy, preview and drift jobs run on them (`runs-on: dex-<stack>`), since the
    cluster's endpoint is private (docs/ci.md). Unset: no runners."""
    ci_github_app_secret: str = "dex-ci-github-app"  # noqa: S105 (a Secret's name)
    """The Secret in `arc-runners` with the GitHub App credentials (the operator creates it)."""
    ci_max_runners: int = Field(3, ge=1, le=20)
    """Concurrent CI jobs on this stack's runners."""
    ci_cluster_readers: list[str] = Field(default_factory=list)
    """GKE: the read-only CI service accounts bound to the `dex-ci-read` ClusterRole (EKS
    grants read through `cluster.view_role_arns`)."""

    @field_validator("api_rollout", mode="before")
    @classmethod
    def _bare_off(cls, value: object) -> object:
        # YAML 1.1 (PyYAML, and so `dex`) reads an unquoted `off` as false
        return "off" if value is False else value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        if not _HOSTNAME.match(self.domain):
            problems.append(
                f"dex:platform.domain = '{self.domain}' is not a DNS name "
                "(lowercase labels separated by dots, like dev.dex.example.com)"
            )
        if self.tls_issuer == "acme" and not (self.acme_email and _EMAIL.match(self.acme_email)):
            problems.append(
                f"dex:platform.acme_email = {self.acme_email!r}: tls_issuer acme needs a "
                "contact address for the ACME account"
            )
        if not self.acme_server.startswith("https://"):
            problems.append(f"dex:platform.acme_server = '{self.acme_server}' must be https://")
        if self.api_max_replicas < self.api_min_replicas:
            problems.append(
                f"dex:platform.api_max_replicas = {self.api_max_replicas} is below "
                f"api_min_replicas = {self.api_min_replicas}"
            )
        if self.api_auth == "jwks":
            if not (self.api_jwks_url and self.api_jwks_url.startswith("https://")):
                problems.append(
                    f"dex:platform.api_jwks_url = {self.api_jwks_url!r}: api_auth jwks needs "
                    "the OIDC provider's https:// JWKS URL"
                )
            if not self.api_jwt_issuer:
                problems.append("dex:platform.api_jwt_issuer is required with api_auth jwks")
        for key in ("training_schedule", "model_ops_schedule"):
            schedule: str = getattr(self, key)
            if not _CRON.match(schedule.strip()):
                problems.append(
                    f"dex:platform.{key} = '{schedule}' is not a cron "
                    "schedule (five fields, like '0 4 * * *')"
                )
        if self.api_rollout == "canary" and self.api_canary_share <= 0:
            problems.append(
                f"dex:platform.api_canary_share = {self.api_canary_share}: api_rollout canary "
                "needs a share of callers above 0 (like 0.1), or the challenger never answers"
            )
        if self.api_rollout == "shadow" and self.api_shadow_share <= 0:
            problems.append(
                f"dex:platform.api_shadow_share = {self.api_shadow_share}: api_rollout shadow "
                "needs a share of requests above 0 (like 1.0), or the challenger never scores"
            )
        if problems:
            raise CrossFieldError(problems)
        return self
