"""The typed stack config: every `dex:*` key, its per-environment profile, and its validation.

`load_config(raw)` is the only way the program reads configuration. It merges, lowest first:
the environment profile (`dev` or `prod`), the cloud x environment profile (instance sizes
differ per cloud), then the keys the user set in `Pulumi.<stack>.yaml`. The result is a frozen
`StackConfig`, or one `ConfigError` whose lines each name the key, the value given and what
is allowed. Nothing here registers a resource, so a bad value stops the program before any
resource exists.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from stacks.regions import AWS_REGIONS, AWS_TWO_AZ_REGIONS, GCP_REGIONS

Cloud = Literal["aws", "gcp"]
Environment = Literal["dev", "prod"]

RESERVED_TAGS = ("project", "environment", "component", "owner", "managed-by")
"""Tag (AWS) / label (GCP) keys the platform sets itself; user tags may not override them."""

_GCP_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_GCP_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_GCP_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_AWS_DB_CLASS = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")
_GCP_DB_TIER = re.compile(r"^db-(custom-\d+-\d+|perf-optimized-n-\d+|f1-micro|g1-small)$")
_AWS_CACHE_NODE = re.compile(r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
_IAM_ROLE_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")


class ConfigError(Exception):
    """The stack config is invalid. `problems` holds one line per bad key."""

    def __init__(self, problems: list[str], stack: str | None = None) -> None:
        self.problems = problems
        self.stack = stack
        where = f" for stack '{stack}'" if stack else ""
        super().__init__(f"invalid DEX config{where}:\n" + "\n".join(f"  - {p}" for p in problems))


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
    """Addressing and egress. Defaults: one NAT in dev, one NAT per AZ in prod."""

    cidr: ipaddress.IPv4Network
    """AWS: the VPC range (a /16 to /20, carved into public/private/database subnets per AZ).
    GCP: the primary range of the regional subnet (nodes)."""
    availability_zones: int = Field(ge=2, le=3)
    """AWS: how many availability zones the subnets span."""
    nat_gateways: Literal["single", "per_az"]
    """One shared NAT gateway (cheap, dev) or one per AZ (survives an AZ outage, prod)."""
    pods_cidr: ipaddress.IPv4Network
    """GCP: the subnet's secondary range for pods."""
    services_cidr: ipaddress.IPv4Network
    """GCP: the subnet's secondary range for services."""
    private_services_cidr: ipaddress.IPv4Network
    """GCP: the range reserved for private service access (Cloud SQL, Memorystore)."""
    control_plane_cidr: ipaddress.IPv4Network
    """GCP: the /28 for the GKE control plane's private endpoint."""
    flow_logs_retention_days: int = Field(ge=1, le=3653)
    """AWS: how long VPC flow logs are kept in CloudWatch (GCP: subnet flow logs go to Cloud
    Logging under the project's log retention)."""


class ClusterConfig(_Section):
    """The Kubernetes cluster (EKS or GKE)."""

    kubernetes_version: Literal["1.32", "1.33", "1.34"]
    """Pinned Kubernetes minor version."""
    public_access_cidrs: list[ipaddress.IPv4Network]
    """CIDRs allowed to reach the API endpoint from outside the network. Empty (the default)
    means the endpoint is private only."""
    system_nodes: NodeGroupConfig
    """Nodes for platform services (on-demand)."""
    batch_nodes: NodeGroupConfig
    """Nodes for pipelines and training (spot in prod)."""
    release_channel: Literal["RAPID", "REGULAR", "STABLE"]
    """GCP: the GKE release channel."""
    log_retention_days: int = Field(ge=1, le=3653)
    """AWS: how long EKS control-plane logs are kept in CloudWatch."""
    admin_role_arns: list[str] = Field(default_factory=list)
    """AWS: IAM role ARNs with cluster admin through EKS access entries
    (AmazonEKSClusterAdminPolicy): the deploy role goes here. Empty: the principal running
    `pulumi up` (there is no implicit creator access)."""
    view_role_arns: list[str] = Field(default_factory=list)
    """AWS: IAM role ARNs that may read every Kubernetes object, Secrets included
    (AmazonEKSAdminViewPolicy): the drift-detection role goes here."""


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
    transaction_log_retention_days: int = Field(ge=1, le=35)
    """GCP: days of write-ahead logs kept for point-in-time recovery; Cloud SQL requires fewer
    than backup_retention_days, and at most 7 on the Enterprise edition."""
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


class CacheConfig(_Section):
    """The managed cache (ElastiCache for Valkey or Memorystore for Redis), always with TLS
    and auth."""

    engine_version: Literal["7.2", "8.0", "8.1", "8.2"]
    """AWS: the ElastiCache for Valkey version (GCP runs Memorystore for Redis 7.2)."""
    node_type: str
    """AWS: an ElastiCache node type like `cache.t4g.small`."""
    memory_size_gib: int = Field(ge=1, le=300)
    """GCP: Memorystore capacity in GiB."""
    high_availability: bool
    """AWS: Multi-AZ with automatic failover. GCP: STANDARD_HA tier."""
    replicas: int = Field(ge=0, le=5)
    """AWS: read replicas per shard (high availability needs at least 1)."""

    @model_validator(mode="after")
    def _replicas(self) -> Self:
        if self.high_availability and self.replicas < 1:
            raise ValueError(f"high_availability needs replicas >= 1, got replicas={self.replicas}")
        return self


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


class RegistryConfig(_Section):
    """The image registry (ECR or Artifact Registry)."""

    keep_images: int = Field(ge=1, le=1000)
    """How many most recent images per repository the lifecycle policy keeps."""


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
            raise _CrossFieldError(problems)
        return self


class StackConfig(_Section):
    """Everything a stack can be told, after profiles are applied."""

    cloud: Cloud
    """Which cloud provisions the platform."""
    environment: Environment
    """Which profile applies: `dev` (small, cheap) or `prod` (HA, protected)."""
    region: str
    """The cloud region (`eu-west-1`, `europe-west1`, ...)."""
    gcp_project: str | None = None
    """GCP: the project id. Required when cloud is gcp."""
    owner: str = Field(min_length=1, max_length=63)
    """The owning team, tagged on every resource."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Extra tags (AWS) / labels (GCP) on every resource, under the platform's own."""
    deletion_protection: bool
    """Protect stateful resources (databases, buckets with data, keys). On in prod."""
    acknowledge_unprotected_prod: bool = False
    """Required to turn deletion_protection off in prod: states that you mean it."""
    network: NetworkConfig
    cluster: ClusterConfig
    database: DatabaseConfig
    cache: CacheConfig
    storage: StorageConfig
    registry: RegistryConfig
    platform: PlatformConfig

    @property
    def name_prefix(self) -> str:
        """`dex-<environment>`: the prefix of every physical name."""
        return f"dex-{self.environment}"

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    def base_tags(self) -> dict[str, str]:
        """Tags/labels every taggable resource carries (the provider applies them)."""
        return {
            **self.tags,
            "project": "dex",
            "environment": self.environment,
            "owner": self.owner,
            "managed-by": "pulumi",
        }

    @model_validator(mode="after")
    def _cross_field(self) -> Self:
        problems: list[str] = []
        known = AWS_REGIONS if self.cloud == "aws" else GCP_REGIONS
        if self.region not in known:
            near = difflib.get_close_matches(self.region, sorted(known), n=1)
            hint = f" did you mean '{near[0]}'?" if near else ""
            cloud_name = "an AWS" if self.cloud == "aws" else "a GCP"
            problems.append(
                f"dex:region = '{self.region}' is not {cloud_name} region;{hint} "
                f"allowed: {', '.join(sorted(known))}"
            )
        if self.cloud == "gcp":
            if not self.gcp_project:
                problems.append("dex:gcp_project is required when dex:cloud is gcp")
            elif not _GCP_PROJECT.match(self.gcp_project):
                problems.append(
                    f"dex:gcp_project = '{self.gcp_project}' is not a GCP project id "
                    "(6-30 lowercase letters, digits and hyphens, starting with a letter)"
                )
        elif self.gcp_project is not None:
            problems.append("dex:gcp_project is only for dex:cloud gcp; remove it for aws")
        if (
            self.cloud == "aws"
            and self.region in AWS_TWO_AZ_REGIONS
            and self.network.availability_zones > 2
        ):
            problems.append(
                f"dex:network.availability_zones = {self.network.availability_zones}: "
                f"{self.region} offers only 2 availability zones to new accounts"
            )
        problems += _network_problems(self.cloud, self.network)
        problems += _cluster_problems(self.cluster)
        problems += _sizing_problems(self.cloud, self.database, self.cache)
        problems += cloud_api_problems(self)
        problems += _tag_problems(self.cloud, self.tags, self.owner)
        if self.is_prod and not self.deletion_protection and not self.acknowledge_unprotected_prod:
            problems.append(
                "dex:deletion_protection = false in prod: stateful resources could be deleted "
                "by one `pulumi up`; set dex:acknowledge_unprotected_prod: true if you mean it"
            )
        if self.is_prod and self.database.backup_retention_days < 7:
            problems.append(
                f"dex:database.backup_retention_days = {self.database.backup_retention_days} "
                "in prod: at least 7 days are required"
            )
        if problems:
            raise _CrossFieldError(problems)
        return self


class _CrossFieldError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _network_problems(cloud: Cloud, net: NetworkConfig) -> list[str]:
    problems: list[str] = []
    if cloud == "aws" and not 16 <= net.cidr.prefixlen <= 20:
        problems.append(
            f"dex:network.cidr = {net.cidr}: an AWS VPC range must be a /16 to /20 "
            "(it is split into 3 tiers of subnets per availability zone)"
        )
    if cloud == "gcp" and not 16 <= net.cidr.prefixlen <= 24:
        problems.append(f"dex:network.cidr = {net.cidr}: the GKE node range must be a /16 to /24")
    if cloud == "gcp":
        if net.control_plane_cidr.prefixlen != 28:
            problems.append(
                f"dex:network.control_plane_cidr = {net.control_plane_cidr}: GKE needs a /28"
            )
        if net.pods_cidr.prefixlen > 21:
            problems.append(f"dex:network.pods_cidr = {net.pods_cidr}: must be a /21 or larger")
        ranges = {
            "cidr": net.cidr,
            "pods_cidr": net.pods_cidr,
            "services_cidr": net.services_cidr,
            "private_services_cidr": net.private_services_cidr,
            "control_plane_cidr": net.control_plane_cidr,
        }
        names = list(ranges)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if ranges[a].overlaps(ranges[b]):
                    problems.append(
                        f"dex:network.{b} = {ranges[b]} overlaps dex:network.{a} = {ranges[a]}; "
                        "every range must be disjoint"
                    )
    return problems


def _cluster_problems(cluster: ClusterConfig) -> list[str]:
    problems = []
    for key in ("admin_role_arns", "view_role_arns"):
        arns: list[str] = getattr(cluster, key)
        for arn in arns:
            if not _IAM_ROLE_ARN.match(arn):
                problems.append(
                    f"dex:cluster.{key} contains '{arn}': not an IAM role ARN "
                    "(like arn:aws:iam::123456789012:role/dex-deploy)"
                )
        if len(set(arns)) != len(arns):
            problems.append(f"dex:cluster.{key} lists a role twice")
    both = sorted(set(cluster.admin_role_arns) & set(cluster.view_role_arns))
    if both:
        problems.append(
            f"dex:cluster.view_role_arns repeats {', '.join(both)} from admin_role_arns: "
            "a role has one EKS access entry; admin already reads everything"
        )
    for cidr in cluster.public_access_cidrs:
        if cidr.prefixlen == 0:
            problems.append(
                f"dex:cluster.public_access_cidrs contains {cidr}: that opens the Kubernetes API "
                "to the whole internet; list your office/VPN ranges instead"
            )
    return problems


def _sizing_problems(cloud: Cloud, db: DatabaseConfig, cache: CacheConfig) -> list[str]:
    problems = []
    if cloud == "aws" and not _AWS_DB_CLASS.match(db.instance_class):
        problems.append(
            f"dex:database.instance_class = '{db.instance_class}' is not an RDS instance class "
            "(like db.t4g.medium or db.r7g.large)"
        )
    if cloud == "gcp" and not _GCP_DB_TIER.match(db.instance_class):
        problems.append(
            f"dex:database.instance_class = '{db.instance_class}' is not a Cloud SQL tier "
            "(like db-custom-2-7680)"
        )
    if cloud == "aws" and not _AWS_CACHE_NODE.match(cache.node_type):
        problems.append(
            f"dex:cache.node_type = '{cache.node_type}' is not an ElastiCache node type "
            "(like cache.t4g.small)"
        )
    return problems


# --------------------------------------------------------------------------------------------
# Cloud API rules: what the providers accept at preview but the cloud APIs refuse at apply
# time. Each rule cites where it comes from; `cloud_api_problems` runs them on every stack.

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
    prefix = cfg.name_prefix
    if cfg.cloud == "aws":
        return {
            "rds_identifier": [f"{prefix}-postgres"],
            # a final snapshot is taken where the database is protected (prod)
            "rds_final_snapshot": [f"{prefix}-postgres-final"] if cfg.deletion_protection else [],
            "elasticache_replication_group": [f"{prefix}-valkey"],
            "eks_cluster": [f"{prefix}-eks"],
        }
    from components.contracts import BUCKET_PURPOSES, WORKLOADS

    project = cfg.gcp_project or ""
    buckets = [*BUCKET_PURPOSES, *(("access-logs",) if cfg.storage.access_logging else ())]
    return {
        "gke_cluster": [f"{prefix}-gke"],
        "cloud_sql_instance": [f"{prefix}-postgres"],
        "memorystore_instance": [f"{prefix}-redis"],
        "service_account": [f"{prefix}-gke-nodes", *(f"{prefix}-{w}" for w in WORKLOADS)],
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
                length = len(f"{cfg.gcp_project}:{name}")
            found = rule.problems(name, length)
            if found:
                problems.append(
                    f"{rule.what} '{name}' (from dex:environment and dex:gcp_project) is "
                    f"refused by the cloud: {'; '.join(found)} ({rule.source})"
                )
    return problems


def cloud_api_problems(cfg: StackConfig) -> list[str]:
    """Values the cloud APIs refuse at apply time, caught before any resource exists."""
    problems = name_problems(cfg)
    db = cfg.database
    if cfg.cloud == "aws":
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
    if cfg.cloud == "gcp":
        # "Invalid request: backup retention should be > transaction log retention." (the
        # Cloud SQL Admin API's answer, quoted in terraform-google-modules/terraform-google-
        # sql-db#785): retained backups must outnumber the days of transaction logs.
        if db.transaction_log_retention_days >= db.backup_retention_days:
            problems.append(
                f"dex:database.transaction_log_retention_days = "
                f"{db.transaction_log_retention_days} must be less than "
                f"dex:database.backup_retention_days = {db.backup_retention_days}: Cloud SQL "
                "refuses 'backup retention should be > transaction log retention'"
            )
        edition = cloud_sql_edition(db.instance_class)
        most = CLOUD_SQL_MAX_LOG_DAYS[edition]
        if db.transaction_log_retention_days > most:
            problems.append(
                f"dex:database.transaction_log_retention_days = "
                f"{db.transaction_log_retention_days}: Cloud SQL {edition} (tier "
                f"{db.instance_class}) keeps 1 to {most} days of transaction logs"
            )
    return problems


def _tag_problems(cloud: Cloud, tags: Mapping[str, str], owner: str) -> list[str]:
    problems = []
    for key, value in tags.items():
        if key in RESERVED_TAGS:
            problems.append(
                f"dex:tags.{key} is set by the platform itself; "
                f"reserved: {', '.join(RESERVED_TAGS)}"
            )
        elif cloud == "gcp" and not _GCP_LABEL_KEY.match(key):
            problems.append(
                f"dex:tags key '{key}' is not a valid GCP label key (lowercase letters, digits, "
                "_ and -, starting with a letter, at most 63)"
            )
        elif cloud == "aws" and not 1 <= len(key) <= 128:
            problems.append(f"dex:tags key '{key}' must be 1 to 128 characters")
        if cloud == "gcp" and not _GCP_LABEL_VALUE.match(value):
            problems.append(
                f"dex:tags.{key} = '{value}' is not a valid GCP label value "
                "(lowercase letters, digits, _ and -, at most 63)"
            )
        elif cloud == "aws" and len(value) > 256:
            problems.append(f"dex:tags.{key} is longer than 256 characters")
    if cloud == "gcp" and not _GCP_LABEL_VALUE.match(owner):
        problems.append(
            f"dex:owner = '{owner}' must be a valid GCP label value "
            "(lowercase letters, digits, _ and -)"
        )
    return problems


# --------------------------------------------------------------------------------------------
# Profiles: the defaults of every key, per environment, then per cloud x environment.

ENV_PROFILES: dict[str, dict[str, Any]] = {
    "dev": {
        "owner": "platform-team",
        "deletion_protection": False,
        "network": {
            "cidr": "10.0.0.0/16",
            "availability_zones": 3,
            "nat_gateways": "single",
            "pods_cidr": "10.64.0.0/14",
            "services_cidr": "10.68.0.0/20",
            "private_services_cidr": "10.70.0.0/16",
            "control_plane_cidr": "172.16.0.0/28",
            "flow_logs_retention_days": 14,
        },
        "cluster": {
            "kubernetes_version": "1.34",
            "public_access_cidrs": [],
            "release_channel": "REGULAR",
            "log_retention_days": 7,
        },
        "database": {
            "engine_version": "17",
            "storage_gib": 20,
            "max_storage_gib": 100,
            "high_availability": False,
            "backup_retention_days": 1,
            "transaction_log_retention_days": 1,
            "point_in_time_recovery": True,
            "performance_insights": False,
        },
        "cache": {"engine_version": "8.1", "high_availability": False, "replicas": 0},
        "storage": {
            "raw_infrequent_access_after_days": 30,
            "raw_archive_after_days": 90,
            "noncurrent_version_expiration_days": 7,
            "access_logging": False,
            "force_destroy": False,
        },
        "registry": {"keep_images": 10},
        "platform": {
            "domain": "dev.dex.example.com",
            "tls_issuer": "self-signed",
            "api_min_replicas": 1,
            "api_max_replicas": 3,
            "api_auth": "hs256",
        },
    },
    "prod": {
        "owner": "platform-team",
        "deletion_protection": True,
        "network": {
            "cidr": "10.0.0.0/16",
            "availability_zones": 3,
            "nat_gateways": "per_az",
            "pods_cidr": "10.64.0.0/14",
            "services_cidr": "10.68.0.0/20",
            "private_services_cidr": "10.70.0.0/16",
            "control_plane_cidr": "172.16.0.0/28",
            "flow_logs_retention_days": 365,
        },
        "cluster": {
            "kubernetes_version": "1.34",
            "public_access_cidrs": [],
            "release_channel": "STABLE",
            "log_retention_days": 90,
        },
        "database": {
            "engine_version": "17",
            "storage_gib": 100,
            "max_storage_gib": 1000,
            "high_availability": True,
            "backup_retention_days": 14,
            "transaction_log_retention_days": 7,
            "point_in_time_recovery": True,
            "performance_insights": True,
        },
        "cache": {"engine_version": "8.1", "high_availability": True, "replicas": 1},
        "storage": {
            "raw_infrequent_access_after_days": 30,
            "raw_archive_after_days": 180,
            "noncurrent_version_expiration_days": 90,
            "access_logging": True,
            "force_destroy": False,
        },
        "registry": {"keep_images": 30},
        "platform": {
            "domain": "dex.example.com",
            "tls_issuer": "acme",
            "acme_email": "platform-team@example.com",
            "api_min_replicas": 2,
            "api_max_replicas": 10,
            "api_auth": "jwks",
            "api_jwks_url": "https://auth.example.com/.well-known/jwks.json",
            "api_jwt_issuer": "https://auth.example.com/",
        },
    },
}

CLOUD_PROFILES: dict[tuple[str, str], dict[str, Any]] = {
    ("aws", "dev"): {
        "cluster": {
            "system_nodes": {
                "instance_types": ["t3.large"],
                "min_size": 1,
                "desired_size": 2,
                "max_size": 3,
                "disk_size_gib": 50,
                "spot": False,
            },
            "batch_nodes": {
                "instance_types": ["m6i.large", "m5.large"],
                "min_size": 0,
                "desired_size": 0,
                "max_size": 3,
                "disk_size_gib": 100,
                "spot": False,
            },
        },
        "database": {"instance_class": "db.t4g.medium"},
        "cache": {"node_type": "cache.t4g.small", "memory_size_gib": 1},
    },
    ("aws", "prod"): {
        "cluster": {
            "system_nodes": {
                "instance_types": ["m6i.large"],
                "min_size": 3,
                "desired_size": 3,
                "max_size": 6,
                "disk_size_gib": 100,
                "spot": False,
            },
            "batch_nodes": {
                "instance_types": ["m6i.2xlarge", "m5.2xlarge", "m6a.2xlarge"],
                "min_size": 0,
                "desired_size": 0,
                "max_size": 10,
                "disk_size_gib": 200,
                "spot": True,
            },
        },
        "database": {"instance_class": "db.r7g.large"},
        "cache": {"node_type": "cache.r7g.large", "memory_size_gib": 5},
    },
    ("gcp", "dev"): {
        "cluster": {
            "system_nodes": {
                "instance_types": ["e2-standard-4"],
                "min_size": 1,
                "desired_size": 1,
                "max_size": 3,
                "disk_size_gib": 50,
                "spot": False,
            },
            "batch_nodes": {
                "instance_types": ["n2-standard-4"],
                "min_size": 0,
                "desired_size": 0,
                "max_size": 3,
                "disk_size_gib": 100,
                "spot": False,
            },
        },
        # Cloud SQL keeps more daily backups than days of logs: 2 backups for 1 day of PITR.
        "database": {"instance_class": "db-custom-1-3840", "backup_retention_days": 2},
        "cache": {"node_type": "cache.t4g.small", "memory_size_gib": 1},
    },
    ("gcp", "prod"): {
        "cluster": {
            "system_nodes": {
                "instance_types": ["n2-standard-4"],
                "min_size": 1,
                "desired_size": 1,
                "max_size": 3,
                "disk_size_gib": 100,
                "spot": False,
            },
            "batch_nodes": {
                "instance_types": ["n2-standard-8"],
                "min_size": 0,
                "desired_size": 0,
                "max_size": 10,
                "disk_size_gib": 200,
                "spot": True,
            },
        },
        "database": {"instance_class": "db-custom-2-7680"},
        "cache": {"node_type": "cache.t4g.small", "memory_size_gib": 5},
    },
}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`, recursing into mappings; lists and scalars are replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _decode(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Pulumi hands structured config to the program as JSON strings: decode those."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        out[key] = value
        if isinstance(value, str) and value[:1] in ("{", "["):
            # Undecodable text stays a string: the model then names the key and the type.
            with contextlib.suppress(json.JSONDecodeError):
                out[key] = json.loads(value)
    return out


_TOP_KEYS = tuple(StackConfig.model_fields)


def load_config(raw: Mapping[str, Any], stack: str | None = None) -> StackConfig:
    """Build the typed config from the user's `dex:*` keys (without the `dex:` prefix).

    Raises `ConfigError` naming every bad key; never lets a pydantic traceback escape.
    """
    user = _decode(raw)
    problems: list[str] = []
    for key in user:
        if key not in _TOP_KEYS:
            problems.append(_unknown_key_message((key,), StackConfig))
    cloud, env = user.get("cloud"), user.get("environment")
    if "cloud" not in user:
        problems.append("dex:cloud is required; allowed: 'aws', 'gcp'")
    elif cloud not in ("aws", "gcp"):
        problems.append(_choice_message("dex:cloud", cloud, ("aws", "gcp")))
    if "environment" not in user:
        problems.append("dex:environment is required; allowed: 'dev', 'prod'")
    elif env not in ENV_PROFILES:
        problems.append(_choice_message("dex:environment", env, tuple(ENV_PROFILES)))
    if "region" not in user:
        problems.append("dex:region is required (for example eu-west-1 or europe-west1)")
    if problems:
        raise ConfigError(problems, stack)
    assert isinstance(cloud, str)
    assert isinstance(env, str)
    merged = deep_merge(deep_merge(ENV_PROFILES[env], CLOUD_PROFILES[(cloud, env)]), user)
    try:
        return StackConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, merged), stack) from None


def _choice_message(key: str, value: object, allowed: tuple[str, ...]) -> str:
    near = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" did you mean '{near[0]}'?" if near else ""
    return f"{key} = {value!r} is not allowed;{hint} allowed: " + ", ".join(
        repr(a) for a in allowed
    )


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = StackConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return None
        model = field.annotation
    return model


def _unknown_key_message(loc: tuple[int | str, ...], model: type[BaseModel] | None) -> str:
    key = "dex:" + ".".join(str(p) for p in loc)
    allowed = sorted(model.model_fields) if model else []
    near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"; did you mean dex:{'.'.join([*map(str, loc[:-1]), near[0]])}?" if near else ""
    return f"{key} is not a known key{hint} (known here: {', '.join(allowed)})"


_TYPE_WORDS = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "float_parsing": "a number",
    "float_type": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "ip_v4_network": "an IPv4 CIDR such as 10.0.0.0/16",
}


def _value_at(data: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _explain(exc: ValidationError, merged: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for err in exc.errors():
        problems += _explain_one(err, merged)
    return problems


def _explain_one(err: ErrorDetails, merged: Mapping[str, Any]) -> list[str]:
    loc = tuple(err["loc"])
    key = "dex:" + ".".join(str(p) for p in loc) if loc else "dex"
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        return [_unknown_key_message(loc, _model_at(loc[:-1]))]
    if kind == "missing":
        return [f"{key} is required"]
    if kind == "value_error":
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, _CrossFieldError):
            return cause.problems
        msg = str(cause) if cause is not None else err["msg"]
        return [f"{key}: {msg}"]
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return [f"{key} = {value!r} is not allowed; allowed: {expected}"]
    if kind in _TYPE_WORDS:
        shown = _value_at(merged, loc) if value is None else value
        return [f"{key} = {shown!r}: expected {_TYPE_WORDS[kind]}"]
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return [f"{key} = {value!r}: {err['msg'].lower()}"]
    if kind in ("too_short", "string_too_short"):
        return [f"{key} = {value!r}: must not be empty"]
    return [f"{key} = {value!r}: {err['msg']}"]


# --------------------------------------------------------------------------------------------
# Reference documentation, generated from the model and the profiles (docs/config.md embeds it and
# a test keeps the two equal).

_CLOUD_ONLY = {
    "network.availability_zones": "aws",
    "network.pods_cidr": "gcp",
    "network.services_cidr": "gcp",
    "network.private_services_cidr": "gcp",
    "network.control_plane_cidr": "gcp",
    "cluster.release_channel": "gcp",
    "cache.node_type": "aws",
    "cache.engine_version": "aws",
    "database.transaction_log_retention_days": "gcp",
    "cache.memory_size_gib": "gcp",
    "cache.replicas": "aws",
    "gcp_project": "gcp",
    "network.flow_logs_retention_days": "aws",
    "cluster.log_retention_days": "aws",
    "cluster.admin_role_arns": "aws",
    "cluster.view_role_arns": "aws",
}


def _leaf_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel) and ann is not NodeGroupConfig:
            rows += _leaf_fields(ann, f"{key}.")
        else:
            text = " ".join(line.strip() for line in (info.description or "").splitlines())
            rows.append((key, text))
    return rows


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, (dict, list)):
        return "`" + json.dumps(value, separators=(", ", ": ")) + "`"
    return f"`{value}`"


def reference_markdown(cloud: Cloud) -> str:
    """The table of every `dex:*` key for one cloud with its dev and prod defaults."""
    region = "eu-west-1" if cloud == "aws" else "europe-west1"
    base: dict[str, Any] = {"cloud": cloud, "region": region}
    if cloud == "gcp":
        base["gcp_project"] = "example-project"
    configs = {env: load_config({**base, "environment": env}) for env in ("dev", "prod")}
    lines = ["| key | dev | prod | meaning |", "| --- | --- | --- | --- |"]
    for key, doc in _leaf_fields(StackConfig):
        only = _CLOUD_ONLY.get(key)
        if only is not None and only != cloud:
            continue
        values = []
        for env in ("dev", "prod"):
            value: Any = configs[env]
            for part in key.split("."):
                value = getattr(value, part)
            values.append(value)
        if key in ("cloud", "region", "gcp_project"):
            shown = ["(required)", "(required)"]
        elif key == "environment":
            shown = ["`dev`", "`prod`"]
        else:
            shown = [_shown(v) for v in values]
        lines.append(f"| `dex:{key}` | {shown[0]} | {shown[1]} | {doc.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
