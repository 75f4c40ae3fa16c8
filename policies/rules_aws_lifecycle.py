"""AWS lifecycle rules: engine versions past their provider's standard support (dated tables,
with their sources), RDS enhanced monitoring, and versioning suspended on a bucket.

The version rules compare against today's date (UTC): a stack that passes today fails on the
day its version leaves standard support, which is the point. Update the tables when AWS
publishes new dates; a version newer than every row is taken as supported, one older than
every row as past support.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime

from policies.model import ADVISE, PROD, Subject, as_list, resource_rule

EKS_CALENDAR_SOURCE = (
    "https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html"
    "#kubernetes-release-calendar"
)
EKS_CALENDAR: Mapping[int, tuple[date, date]] = {
    # Kubernetes 1.x minor: (end of standard support, end of extended support), UTC.
    # 1.29-1.34 as the EKS user guide's release calendar lists them (awsdocs/
    # amazon-eks-user-guide, versioning/kubernetes-versions.adoc); 1.35 released on EKS on
    # 27 Jan 2026, 14 + 12 months (endoflife.date/amazon-eks); 1.23-1.28 from earlier
    # revisions of the same page (all long past both dates).
    23: (date(2023, 10, 11), date(2024, 10, 11)),
    24: (date(2024, 1, 31), date(2025, 1, 31)),
    25: (date(2024, 5, 1), date(2025, 5, 1)),
    26: (date(2024, 6, 11), date(2025, 6, 11)),
    27: (date(2024, 7, 24), date(2025, 7, 24)),
    28: (date(2024, 11, 26), date(2025, 11, 26)),
    29: (date(2025, 3, 23), date(2026, 3, 23)),
    30: (date(2025, 7, 23), date(2026, 7, 23)),
    31: (date(2025, 11, 26), date(2026, 11, 26)),
    32: (date(2026, 3, 23), date(2027, 3, 23)),
    33: (date(2026, 7, 29), date(2027, 7, 29)),
    34: (date(2026, 12, 2), date(2027, 12, 2)),
    35: (date(2027, 3, 27), date(2028, 3, 27)),
}

RDS_POSTGRES_CALENDAR_SOURCE = (
    "https://docs.aws.amazon.com/AmazonRDS/latest/PostgreSQLReleaseNotes/"
    "postgresql-release-calendar.html"
)
RDS_POSTGRES_CALENDAR: Mapping[int, date] = {
    # PostgreSQL major: RDS end of standard support (11 and 12 also in the AWS Database
    # Blog's upgrade posts: 29 Feb 2024, 28 Feb 2025).
    11: date(2024, 2, 29),
    12: date(2025, 2, 28),
    13: date(2026, 2, 28),
    14: date(2027, 2, 28),
    15: date(2028, 2, 29),
    16: date(2029, 2, 28),
    17: date(2030, 2, 28),
}

ELASTICACHE_CALENDAR_SOURCE = (
    "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/engine-versions.html"
)
ELASTICACHE_CALENDAR: Mapping[str, Mapping[int, date]] = {
    # engine -> major -> end of standard support. Redis OSS 4 and 5 moved to ElastiCache
    # extended support on 31 Jan 2026 (2 and 3 reached end of life in 2023); AWS has
    # announced no end of standard support for Redis OSS 6/7 or any Valkey version yet.
    "redis": {
        2: date(2023, 1, 13),
        3: date(2023, 7, 31),
        4: date(2026, 1, 31),
        5: date(2026, 1, 31),
    },
    "valkey": {},
}

EKS = "aws:eks/cluster:Cluster"
RDS = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
RDS_CLUSTER_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE_CLUSTER = "aws:elasticache/cluster:Cluster"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_LEGACY = "aws:s3/bucketV2:BucketV2"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
VERSIONING_V2 = "aws:s3/bucketVersioningV2:BucketVersioningV2"


def today() -> date:
    return datetime.now(UTC).date()


def _past(end: date | None) -> date | None:
    return end if end is not None and today() >= end else None


def eks_support_ended(version: str, *, extended: bool) -> date | None:
    """The date Kubernetes `version` left EKS standard (or extended) support, None while it
    is supported (or newer than the calendar)."""
    match = re.match(r"^1\.(\d+)", version)
    if not match:
        return None
    minor = int(match.group(1))
    index = 1 if extended else 0
    if minor in EKS_CALENDAR:
        return _past(EKS_CALENDAR[minor][index])
    oldest = min(EKS_CALENDAR)
    return EKS_CALENDAR[oldest][index] if minor < oldest else None


def _major(version: str) -> int | None:
    match = re.match(r"^(\d+)", version)
    return int(match.group(1)) if match else None


def _table_ended(table: Mapping[int, date], major: int | None) -> date | None:
    if major is None or not table:
        return None
    if major in table:
        return _past(table[major])
    oldest = min(table)
    return table[oldest] if major < oldest else None


@resource_rule(
    "AWS-EKS-007",
    "EKS runs a Kubernetes version in standard support",
    "medium",
    PROD,
    [EKS],
    "Upgrade the control plane (and then the nodes and add-ons) to a minor version in EKS "
    "standard support.",
    ["NIST-800-53:SI-2"],
    "Past the end of standard support EKS bills extended support (six times the control "
    "plane's hourly price) or, with upgradePolicy STANDARD, upgrades the control plane itself, "
    f"away from what the program declares. Dates: {EKS_CALENDAR_SOURCE}.",
)
def eks_standard_support(r: Subject) -> Iterator[str]:
    version = str(r.get("version") or "")
    ended = eks_support_ended(version, extended=False) if version else None
    if ended:
        policy = (r.get("upgradePolicy") or {}).get("supportType", "EXTENDED")
        then = (
            "EKS upgrades the control plane by itself (upgradePolicy STANDARD)"
            if policy == "STANDARD"
            else "the cluster is billed for extended support"
        )
        yield f"Kubernetes {version} left EKS standard support on {ended}: {then}"


@resource_rule(
    "AWS-RDS-014",
    "RDS PostgreSQL runs a major version in standard support",
    "medium",
    ADVISE,
    [RDS, RDS_CLUSTER],
    "Upgrade to a PostgreSQL major version in RDS standard support (and the parameter group "
    "family with it).",
    ["NIST-800-53:SI-2"],
    "Past the RDS end of standard support a database is enrolled in paid RDS Extended "
    "Support, then upgraded by AWS. Advisory, like GCP-SQL-013: the database keeps running, "
    "and a calendar date alone must not fail a deploy. "
    f"Dates: {RDS_POSTGRES_CALENDAR_SOURCE}.",
)
def rds_postgres_support(r: Subject) -> Iterator[str]:
    if r.get("engine") != "postgres":
        return
    version = str(r.get("engineVersion") or "")
    ended = _table_ended(RDS_POSTGRES_CALENDAR, _major(version))
    if ended:
        yield f"PostgreSQL {version} left RDS standard support on {ended}"


@resource_rule(
    "AWS-REDIS-007",
    "ElastiCache runs an engine version in standard support",
    "medium",
    ADVISE,
    [REDIS, CACHE_CLUSTER],
    "Upgrade to Valkey (or a Redis OSS version in standard support).",
    ["NIST-800-53:SI-2"],
    "Redis OSS 4 and 5 left ElastiCache standard support on 31 Jan 2026 (extended support is "
    f"billed); no Valkey version has an announced end yet. Dates: {ELASTICACHE_CALENDAR_SOURCE}.",
)
def cache_engine_support(r: Subject) -> Iterator[str]:
    engine = str(r.get("engine") or "redis")
    version = str(r.get("engineVersion") or "")
    ended = _table_ended(ELASTICACHE_CALENDAR.get(engine, {}), _major(version))
    if ended:
        yield f"{engine} {version} left ElastiCache standard support on {ended}"


@resource_rule(
    "AWS-RDS-015",
    "RDS has enhanced monitoring",
    "medium",
    PROD,
    [RDS, RDS_CLUSTER_INSTANCE],
    "Set monitoring_interval (60 or less) and monitoring_role_arn to a role trusting "
    "monitoring.rds.amazonaws.com with AmazonRDSEnhancedMonitoringRole attached.",
    ["NIST-800-53:SI-4"],
    "Without enhanced monitoring the OS metrics of the database host (memory, swap, processes) "
    "are invisible: CloudWatch's hypervisor metrics do not show them.",
)
def rds_enhanced_monitoring(r: Subject) -> Iterator[str]:
    interval = r.get("monitoringInterval", 0)
    if not isinstance(interval, int | float) or interval <= 0:
        yield f"monitoringInterval is {interval!r}: enhanced monitoring is off"
    elif not r.get("monitoringRoleArn"):
        yield "monitoringInterval is set but there is no monitoringRoleArn"


@resource_rule(
    "AWS-S3-014",
    "S3 bucket versioning is never suspended",
    "medium",
    PROD,
    [VERSIONING, VERSIONING_V2, BUCKET, BUCKET_LEGACY],
    "Set versioning_configuration.status Enabled (expire old versions with a lifecycle rule "
    "instead of suspending versioning).",
    ["CIS-AWS-1.4.0:2.1.3", "NIST-800-53:CP-9"],
    "A BucketVersioning with status Suspended (or Disabled), or a bucket's inline "
    "`versioning.enabled: false`, stops keeping versions: the next overwrite or delete of a "
    "data object is final.",
)
def s3_versioning_not_suspended(r: Subject) -> Iterator[str]:
    if r.type in (VERSIONING, VERSIONING_V2):
        status = (r.get("versioningConfiguration") or {}).get("status")
        if status in ("Suspended", "Disabled"):
            yield f"versioning status is {status}: overwrites and deletes are final"
        return
    versioning = as_list(r.get("versioning"))
    if versioning and isinstance(versioning[0], Mapping) and versioning[0].get("enabled") is False:
        yield "inline versioning.enabled is false"
