"""AWS audit and detection rules: CloudTrail trails, GuardDuty, PostgreSQL audit logging in
RDS parameter groups, RDS log exports, CloudWatch log groups under a customer key, and KMS
keys with an explicit key policy.

Our stacks create no trail and no detector (both are account-wide, usually owned by the
organisation's security account): the trail and detector rules judge one where a stack
declares it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from policies.model import ADVISE, PROD, Subject, as_list, policy_statements, resource_rule

TRAIL = "aws:cloudtrail/trail:Trail"
DETECTOR = "aws:guardduty/detector:Detector"
DETECTOR_FEATURE = "aws:guardduty/detectorFeature:DetectorFeature"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
CLUSTER_PARAMETER_GROUP = "aws:rds/clusterParameterGroup:ClusterParameterGroup"
RDS = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
KEY = "aws:kms/key:Key"

OFF = ("", "0", "off", "false", "none")

PGAUDIT_CLASSES = {"ddl", "role"}
"""pgaudit.log classes an audit trail needs at least: schema changes and privilege changes
(`all` covers both)."""


# -- CloudTrail ---------------------------------------------------------------------------------


@resource_rule(
    "AWS-TRAIL-001",
    "CloudTrail trails log every region and are on",
    "high",
    PROD,
    [TRAIL],
    "Set is_multi_region_trail true, include_global_service_events true and keep "
    "enable_logging true.",
    ["CIS-AWS-1.4.0:3.1", "NIST-800-53:AU-2"],
    "A single-region trail misses API calls in every other region (where an attacker starts "
    "instances); a stopped trail records nothing.",
)
def trail_everywhere(r: Subject) -> Iterator[str]:
    if r.get("isMultiRegionTrail") is not True:
        yield "isMultiRegionTrail is not true: other regions are not logged"
    if r.get("includeGlobalServiceEvents") is False:
        yield "includeGlobalServiceEvents is false: IAM and STS calls are not logged"
    if r.get("enableLogging") is False:
        yield "enableLogging is false: the trail records nothing"


@resource_rule(
    "AWS-TRAIL-002",
    "CloudTrail validates its log files",
    "medium",
    PROD,
    [TRAIL],
    "Set enable_log_file_validation true.",
    ["CIS-AWS-1.4.0:3.2", "NIST-800-53:AU-9"],
    "Without digest files nobody can prove the logs were not edited or deleted after delivery.",
)
def trail_validation(r: Subject) -> Iterator[str]:
    if r.get("enableLogFileValidation") is not True:
        yield "enableLogFileValidation is not true"


@resource_rule(
    "AWS-TRAIL-003",
    "CloudTrail encrypts its logs with a customer key",
    "medium",
    PROD,
    [TRAIL],
    "Set kms_key_id to a customer-managed key whose policy lets cloudtrail.amazonaws.com "
    "GenerateDataKey* for this trail.",
    ["CIS-AWS-1.4.0:3.7", "NIST-800-53:AU-9"],
    "With SSE-KMS, reading the trail needs kms:Decrypt as well as s3:GetObject: a leaked "
    "bucket grant alone does not expose it.",
)
def trail_kms(r: Subject) -> Iterator[str]:
    if not r.get("kmsKeyId"):
        yield "no kmsKeyId: logs are only SSE-S3 encrypted"


# -- GuardDuty ----------------------------------------------------------------------------------


@resource_rule(
    "AWS-GD-001",
    "GuardDuty detectors are enabled",
    "high",
    PROD,
    [DETECTOR],
    "Set enable true (the default).",
    ["NIST-800-53:SI-4"],
    "A declared detector that is disabled produces no findings while looking like coverage.",
)
def guardduty_enabled(r: Subject) -> Iterator[str]:
    if r.get("enable") is False:
        yield "enable is false: GuardDuty reports nothing"
    sources = r.get("datasources") or {}
    if ((sources.get("s3Logs") or {}).get("enable")) is False:
        yield "datasources.s3Logs is disabled"
    audit = ((sources.get("kubernetes") or {}).get("auditLogs") or {}).get("enable")
    if audit is False:
        yield "datasources.kubernetes.auditLogs is disabled"


@resource_rule(
    "AWS-GD-002",
    "GuardDuty protection features are not disabled",
    "medium",
    PROD,
    [DETECTOR_FEATURE],
    "Set status ENABLED (and ENABLED on each additional configuration).",
    ["NIST-800-53:SI-4"],
    "A DetectorFeature with status DISABLED switches off S3, EKS audit log, runtime, RDS "
    "login or malware protection for the account.",
)
def guardduty_feature(r: Subject) -> Iterator[str]:
    if str(r.get("status") or "").upper() == "DISABLED":
        yield f"feature {r.get('name')} is DISABLED"
    for extra in as_list(r.get("additionalConfigurations")):
        if str((extra or {}).get("status") or "").upper() == "DISABLED":
            yield f"{r.get('name')} configuration {extra.get('name')} is DISABLED"


# -- RDS ------------------------------------------------------------------------------------------


def _on(value: object) -> bool:
    return str(value).strip().lower() not in OFF


@resource_rule(
    "AWS-RDS-012",
    "PostgreSQL parameter groups turn on audit logging",
    "medium",
    PROD,
    [PARAMETER_GROUP, CLUSTER_PARAMETER_GROUP],
    "Add pgaudit to shared_preload_libraries (apply_method pending-reboot), set pgaudit.log "
    "(at least ddl,role), log_connections, log_disconnections and log_lock_waits to 1 (and "
    "log_checkpoints before PostgreSQL 15, where it is on by default); run CREATE EXTENSION "
    "pgaudit once in each database.",
    ["NIST-800-53:AU-2", "NIST-800-53:AU-12"],
    "Session audit logging (pgaudit) records schema and privilege changes with the statement "
    "and the role; connection, lock-wait and checkpoint logs show who came in and what "
    "stalled.",
)
def rds_audit_logging(r: Subject) -> Iterator[str]:
    family = str(r.get("family") or "")
    match = re.match(r"^(?:aurora-)?postgres(?:ql)?(\d+)", family)
    if not match:
        return
    values = {str(p.get("name")).lower(): p.get("value") for p in as_list(r.get("parameters"))}
    libraries = [s.strip() for s in str(values.get("shared_preload_libraries") or "").split(",")]
    if "pgaudit" not in libraries:
        yield "shared_preload_libraries does not load pgaudit"
    classes = {c.strip().lower() for c in str(values.get("pgaudit.log") or "").split(",")}
    if "all" not in classes and not classes >= PGAUDIT_CLASSES:
        yield (
            f"pgaudit.log is {values.get('pgaudit.log')!r}: "
            f"must cover {', '.join(sorted(PGAUDIT_CLASSES))} (or all)"
        )
    for name in ("log_connections", "log_disconnections", "log_lock_waits"):
        if not _on(values.get(name, "")):
            yield f"{name} is not on"
    checkpoints = values.get("log_checkpoints")
    if int(match.group(1)) < 15 and not _on(checkpoints if checkpoints is not None else ""):
        yield "log_checkpoints is not on (off by default before PostgreSQL 15)"
    elif checkpoints is not None and not _on(checkpoints):
        yield "log_checkpoints is turned off"


@resource_rule(
    "AWS-RDS-013",
    "RDS exports its logs to CloudWatch",
    "medium",
    PROD,
    [RDS, RDS_CLUSTER],
    "Set enabled_cloudwatch_logs_exports (postgresql, upgrade).",
    ["NIST-800-53:AU-6"],
    "Logs that stay on the instance are lost with it and cannot be searched or alarmed on; "
    "the audit log (pgaudit) goes to the postgresql log.",
)
def rds_log_exports(r: Subject) -> Iterator[str]:
    if not r.get("enabledCloudwatchLogsExports"):
        yield "no logs exported to CloudWatch"


# -- logs and keys ------------------------------------------------------------------------------


@resource_rule(
    "AWS-LOG-002",
    "CloudWatch log groups are encrypted with a customer key",
    "medium",
    PROD,
    [LOG_GROUP],
    "Set kms_key_id to a customer-managed key whose policy allows logs.<region>.amazonaws.com "
    "(kms:Encrypt*, Decrypt*, ReEncrypt*, GenerateDataKey*, Describe*) on the condition "
    "kms:EncryptionContext:aws:logs:arn = the log group's ARN; create the key first.",
    ["NIST-800-53:AU-9", "NIST-800-53:SC-28"],
    "Audit, flow and slow logs hold addresses, identities and queries: with a customer key, "
    "reading them needs the key as well as logs:GetLogEvents, and revoking the key revokes "
    "them.",
)
def log_group_cmk(r: Subject) -> Iterator[str]:
    if not r.get("kmsKeyId"):
        yield "no kmsKeyId: encrypted only with the service's own key"


@resource_rule(
    "AWS-KMS-003",
    "KMS keys carry an explicit key policy",
    "low",
    ADVISE,
    [KEY],
    "Set `policy`: the account root (so IAM policies apply) and a statement per service that "
    "uses the key, scoped by its encryption context or kms:ViaService.",
    ["NIST-800-53:AC-6"],
    "Without one, KMS applies its default policy: the account root only. Services that call "
    "KMS as themselves (CloudWatch Logs, CloudTrail) then cannot use the key, and the policy "
    "in the account is not what the code says.",
)
def kms_explicit_policy(r: Subject) -> Iterator[str]:
    if not list(policy_statements(r.get("policy"))):
        yield "no key policy: KMS's default one applies"
