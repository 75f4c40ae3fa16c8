"""GCP lifecycle rules: engine versions past their provider's standard support, from dated
tables with their sources. Versioning of data buckets is GCP-GCS-004
(`policies/rules_gcp_data.py`).

The rules compare against today's date: a version that was fine yesterday is reported the day
its standard support ends. They advise rather than block, so a deploy never starts failing on
a date with no change of its own; a version newer than its table is not judged (the table is
older than the release)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping

from policies.model import ADVISE, Subject, resource_rule

CLOUD_SQL_POSTGRES_EXTENDED_SUPPORT: Mapping[int, dt.date] = {
    9: dt.date(2025, 2, 1),  # 9.6
    10: dt.date(2025, 2, 1),
    11: dt.date(2025, 2, 1),
    12: dt.date(2025, 2, 1),
    13: dt.date(2026, 2, 1),
    14: dt.date(2027, 2, 1),
    15: dt.date(2028, 2, 1),
    16: dt.date(2029, 2, 1),
    17: dt.date(2030, 2, 1),
}
"""Cloud SQL for PostgreSQL: the day each major leaves regular support and enters (billed)
extended support. Source: "Database versions and version policies",
https://cloud.google.com/sql/docs/postgres/db-versions (checked 2026-12-02)."""

GKE_END_OF_STANDARD_SUPPORT: Mapping[tuple[int, int], dt.date] = {
    (1, 27): dt.date(2024, 10, 1),
    (1, 28): dt.date(2025, 2, 4),
    (1, 29): dt.date(2025, 4, 12),
    (1, 30): dt.date(2025, 9, 30),
    (1, 31): dt.date(2026, 1, 16),
    (1, 32): dt.date(2026, 4, 11),
    (1, 33): dt.date(2026, 8, 3),
    (1, 34): dt.date(2026, 10, 1),
    (1, 35): dt.date(2027, 4, 11),
    (1, 36): dt.date(2027, 8, 9),
}
"""GKE: the end of standard support of each minor (then only the Extended channel runs it).
Source: "GKE release schedule", https://cloud.google.com/kubernetes-engine/docs/release-schedule,
as tabulated by endoflife.date (products/google-kubernetes-engine.md, 2026-08-22)."""


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _past(end: dt.date | None) -> bool:
    return end is not None and end <= _today()


@resource_rule(
    "GCP-SQL-013",
    "Cloud SQL for PostgreSQL runs a major version in regular support",
    "medium",
    ADVISE,
    ["gcp:sql/databaseInstance:DatabaseInstance"],
    "Upgrade database_version to a major in regular support (an in-place major upgrade).",
    description="Past regular support a Cloud SQL major enters extended support: billed per "
    "vCPU hour on top of the instance, critical and high CVE fixes only, no new features.",
)
def sql_version_support(r: Subject) -> Iterator[str]:
    match = re.fullmatch(r"POSTGRES_(\d+)(?:_\d+)?", str(r.get("databaseVersion", "")))
    if not match:
        return
    major = int(match.group(1))
    end = CLOUD_SQL_POSTGRES_EXTENDED_SUPPORT.get(major)
    if _past(end):
        yield f"PostgreSQL {major} left regular support on {end} (extended support since)"


def _minor(version: object) -> tuple[int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)", str(version or ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


@resource_rule(
    "GCP-GKE-016",
    "GKE runs a minor version in standard support",
    "medium",
    ADVISE,
    ["gcp:container/cluster:Cluster", "gcp:container/nodePool:NodePool"],
    "Move min_master_version (and node versions) to a minor in standard support.",
    description="Past standard support a GKE minor is offered only in the Extended channel "
    "(billed); in other channels GKE stops creating clusters at it and upgrades them by force.",
)
def gke_version_support(r: Subject) -> Iterator[str]:
    keys = ("version",) if r.type.endswith("NodePool") else ("minMasterVersion", "nodeVersion")
    for key in keys:
        minor = _minor(r.get(key))
        if minor is None:
            continue
        end = GKE_END_OF_STANDARD_SUPPORT.get(minor)
        if _past(end):
            yield f"{key} {minor[0]}.{minor[1]} left standard support on {end}"
