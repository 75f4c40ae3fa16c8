"""The whole stack config: the part both clouds share (`StackConfig`) and each cloud's own
(`AwsStackConfig`, `GcpStackConfig`), told apart by `dex:cloud` (`AnyStackConfig`, a
discriminated union), with the checks that span sections."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from stacks.config.cloud_rules import cloud_api_problems
from stacks.config.errors import CrossFieldError
from stacks.config.sections import (
    AwsCacheConfig,
    AwsClusterConfig,
    AwsDatabaseConfig,
    AwsNetworkConfig,
    AwsStorageConfig,
    CacheConfig,
    ClusterConfig,
    DatabaseConfig,
    GcpCacheConfig,
    GcpClusterConfig,
    GcpDatabaseConfig,
    GcpNetworkConfig,
    GcpRegistryConfig,
    GcpStorageConfig,
    NetworkConfig,
    PlatformConfig,
    RegistryConfig,
    StorageConfig,
    _Section,
)
from stacks.regions import AWS_REGIONS, AWS_TWO_AZ_REGIONS, GCP_REGIONS

Cloud = Literal["aws", "gcp"]
Environment = Literal["dev", "prod"]

RESERVED_TAGS = ("project", "environment", "component", "owner", "managed-by")
"""Tags/labels the platform sets itself; `dex:tags` may not override them."""

_GCP_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_GCP_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_GCP_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_AWS_DB_CLASS = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")
_GCP_DB_TIER = re.compile(r"^db-(custom-\d+-\d+|perf-optimized-n-\d+|f1-micro|g1-small)$")
_AWS_CACHE_NODE = re.compile(r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
_IAM_ROLE_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")


class StackConfig(_Section):
    """Everything a stack can be told, after profiles are applied: what both clouds share.
    A loaded config is always one of the clouds' own (`AwsStackConfig`, `GcpStackConfig`)."""

    cloud: Cloud
    """Which cloud provisions the platform."""
    environment: Environment
    """Which profile applies: `dev` (small, cheap) or `prod` (HA, protected)."""
    region: str
    """The cloud region (`eu-west-1`, `europe-west1`, ...)."""
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

    def base_tags(self) -> dict[str, str]:
        """Tags/labels every taggable resource carries (the provider applies them)."""
        return {
            **self.tags,
            "project": "dex",
            "environment": self.environment,
            "owner": self.owner,
            "managed-by": "pulumi",
        }

    def _cloud_problems(self) -> list[str]:
        """What this cloud's own sections get wrong together (after the region check)."""
        return []

    @model_validator(mode="after")
    def _cross_field(self) -> Self:
        problems = _region_problems(self.cloud, self.region)
        problems += self._cloud_problems()
        problems += cloud_api_problems(self)
        problems += _tag_problems(self.cloud, self.tags, self.owner)
        problems += _prod_problems(self)
        if problems:
            raise CrossFieldError(problems)
        return self


class AwsStackConfig(StackConfig):
    """A stack on AWS."""

    cloud: Literal["aws"]
    """Which cloud provisions the platform."""
    network: AwsNetworkConfig
    cluster: AwsClusterConfig
    database: AwsDatabaseConfig
    cache: AwsCacheConfig
    storage: AwsStorageConfig

    def _cloud_problems(self) -> list[str]:
        problems: list[str] = []
        net = self.network
        if self.region in AWS_TWO_AZ_REGIONS and net.availability_zones > 2:
            problems.append(
                f"dex:network.availability_zones = {net.availability_zones}: "
                f"{self.region} offers only 2 availability zones to new accounts"
            )
        if not 16 <= net.cidr.prefixlen <= 20:
            problems.append(
                f"dex:network.cidr = {net.cidr}: an AWS VPC range must be a /16 to /20 "
                "(it is split into 3 tiers of subnets per availability zone)"
            )
        problems += _role_problems(self.cluster)
        problems += _public_access_problems(self.cluster)
        if not _AWS_DB_CLASS.match(self.database.instance_class):
            problems.append(
                f"dex:database.instance_class = '{self.database.instance_class}' is not an "
                "RDS instance class (like db.t4g.medium or db.r7g.large)"
            )
        if not _AWS_CACHE_NODE.match(self.cache.node_type):
            problems.append(
                f"dex:cache.node_type = '{self.cache.node_type}' is not an ElastiCache node type "
                "(like cache.t4g.small)"
            )
        return problems


class GcpStackConfig(StackConfig):
    """A stack on GCP."""

    cloud: Literal["gcp"]
    """Which cloud provisions the platform."""
    gcp_project: str
    """The GCP project id."""
    network: GcpNetworkConfig
    cluster: GcpClusterConfig
    database: GcpDatabaseConfig
    cache: GcpCacheConfig
    storage: GcpStorageConfig
    registry: GcpRegistryConfig

    def _cloud_problems(self) -> list[str]:
        problems: list[str] = []
        if not _GCP_PROJECT.match(self.gcp_project):
            problems.append(
                f"dex:gcp_project = '{self.gcp_project}' is not a GCP project id "
                "(6-30 lowercase letters, digits and hyphens, starting with a letter)"
            )
        problems += _gcp_network_problems(self.network)
        problems += _public_access_problems(self.cluster)
        if not _GCP_DB_TIER.match(self.database.instance_class):
            problems.append(
                f"dex:database.instance_class = '{self.database.instance_class}' is not a "
                "Cloud SQL tier (like db-custom-2-7680)"
            )
        return problems


AnyStackConfig = Annotated[AwsStackConfig | GcpStackConfig, Field(discriminator="cloud")]
"""A loaded stack config: `dex:cloud` says which cloud's model it is."""

STACK_MODELS: Mapping[str, type[AwsStackConfig] | type[GcpStackConfig]] = {
    "aws": AwsStackConfig,
    "gcp": GcpStackConfig,
}
"""Each cloud's model, by the value of `dex:cloud`."""


def _region_problems(cloud: Cloud, region: str) -> list[str]:
    known = AWS_REGIONS if cloud == "aws" else GCP_REGIONS
    if region in known:
        return []
    near = difflib.get_close_matches(region, sorted(known), n=1)
    hint = f" did you mean '{near[0]}'?" if near else ""
    cloud_name = "an AWS" if cloud == "aws" else "a GCP"
    return [
        f"dex:region = '{region}' is not {cloud_name} region;{hint} "
        f"allowed: {', '.join(sorted(known))}"
    ]


def _gcp_network_problems(net: GcpNetworkConfig) -> list[str]:
    problems: list[str] = []
    if not 16 <= net.cidr.prefixlen <= 24:
        problems.append(f"dex:network.cidr = {net.cidr}: the GKE node range must be a /16 to /24")
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


def _role_problems(cluster: AwsClusterConfig) -> list[str]:
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
    return problems


def _public_access_problems(cluster: ClusterConfig) -> list[str]:
    return [
        f"dex:cluster.public_access_cidrs contains {cidr}: that opens the Kubernetes API "
        "to the whole internet; list your office/VPN ranges instead"
        for cidr in cluster.public_access_cidrs
        if cidr.prefixlen == 0
    ]


def _prod_problems(cfg: StackConfig) -> list[str]:
    if cfg.environment != "prod":
        return []
    problems = []
    if not cfg.deletion_protection and not cfg.acknowledge_unprotected_prod:
        problems.append(
            "dex:deletion_protection = false in prod: stateful resources could be deleted "
            "by one `pulumi up`; set dex:acknowledge_unprotected_prod: true if you mean it"
        )
    if cfg.database.backup_retention_days < 7:
        problems.append(
            f"dex:database.backup_retention_days = {cfg.database.backup_retention_days} "
            "in prod: at least 7 days are required"
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
