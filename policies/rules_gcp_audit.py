"""GCP audit and detection rules: Cloud SQL for PostgreSQL's audit flags (pgAudit, lock waits,
checkpoints, failing statements) and Cloud Audit Logs configs on projects, folders and
organizations. Connection logging is GCP-SQL-007 (`policies/rules_gcp_data.py`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from policies.model import PROD, Subject, as_list, resource_rule

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
AUDIT_CONFIGS = (
    "gcp:projects/iAMAuditConfig:IAMAuditConfig",
    "gcp:folder/iamAuditConfig:IamAuditConfig",
    "gcp:organizations/iamAuditConfig:IamAuditConfig",
)
LOG_TYPES = ("ADMIN_READ", "DATA_READ", "DATA_WRITE")
SEVERITY_LEVELS = (
    "debug5",
    "debug4",
    "debug3",
    "debug2",
    "debug1",
    "info",
    "notice",
    "warning",
    "error",
    "log",
    "fatal",
    "panic",
)
"""PostgreSQL's message levels, least to most severe (`log_min_error_statement`)."""


def postgres_flags(r: Subject) -> dict[str, str] | None:
    """A PostgreSQL instance's database flags by name; None for MySQL / SQL Server."""
    if not str(r.get("databaseVersion", "")).startswith("POSTGRES"):
        return None
    return {
        str(f.get("name")): str(f.get("value"))
        for f in as_list(r.get("settings.databaseFlags"))
        if isinstance(f, Mapping)
    }


@resource_rule(
    "GCP-SQL-010",
    "Cloud SQL for PostgreSQL audits statements with pgAudit",
    "medium",
    PROD,
    [SQL],
    "Set cloudsql.enable_pgaudit on and pgaudit.log (e.g. ddl,role), then CREATE EXTENSION "
    "pgaudit in each database.",
    ["CIS-GCP-2.0.0:6.2.8"],
    "Without pgAudit nothing records who changed a schema, a role or a grant inside the "
    "database; Cloud Audit Logs see only the Admin API.",
)
def sql_pgaudit(r: Subject) -> Iterator[str]:
    flags = postgres_flags(r)
    if flags is None:
        return
    if flags.get("cloudsql.enable_pgaudit") != "on":
        yield "cloudsql.enable_pgaudit is not on"
    if flags.get("pgaudit.log", "none").strip().lower() in ("", "none"):
        yield "pgaudit.log records no statement class"


@resource_rule(
    "GCP-SQL-011",
    "Cloud SQL for PostgreSQL logs lock waits, checkpoints and failing statements",
    "medium",
    PROD,
    [SQL],
    "Set log_lock_waits and log_checkpoints on; leave log_min_error_statement at error or "
    "stricter.",
    ["CIS-GCP-2.0.0:6.2.6"],
    "Lock waits and checkpoints explain stalls and recovery times; the statement that caused "
    "an error is what an investigation needs first.",
)
def sql_diagnostic_logging(r: Subject) -> Iterator[str]:
    flags = postgres_flags(r)
    if flags is None:
        return
    for flag in ("log_lock_waits", "log_checkpoints"):
        if flags.get(flag) != "on":
            yield f"{flag} is not on"
    level = flags.get("log_min_error_statement", "error").lower()
    if level in SEVERITY_LEVELS and SEVERITY_LEVELS.index(level) < SEVERITY_LEVELS.index("error"):
        yield f"log_min_error_statement is {level}: routine statements flood the error log"


@resource_rule(
    "GCP-LOG-001",
    "Audit log configs record every access type and exempt no one",
    "medium",
    PROD,
    list(AUDIT_CONFIGS),
    "For allServices log ADMIN_READ, DATA_READ and DATA_WRITE; remove exempted_members.",
    ["CIS-GCP-2.0.0:2.1"],
    "An exempted member's data reads and writes are never logged; an allServices config "
    "without DATA_READ / DATA_WRITE leaves data access unaudited.",
)
def audit_config(r: Subject) -> Iterator[str]:
    configs = [c for c in as_list(r.get("auditLogConfigs")) if isinstance(c, Mapping)]
    for c in configs:
        for member in as_list(c.get("exemptedMembers")):
            yield f"{member} is exempt from {c.get('logType')} audit logs"
    if r.get("service") == "allServices":
        logged = {c.get("logType") for c in configs}
        for missing in (t for t in LOG_TYPES if t not in logged):
            yield f"{missing} is not logged for allServices"
