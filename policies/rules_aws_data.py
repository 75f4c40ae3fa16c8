"""AWS data rules: S3 buckets and their sub-resources, RDS, ElastiCache, KMS key rotation and
CloudWatch log retention."""

from __future__ import annotations

from collections.abc import Iterator

from policies.model import (
    ADVISE,
    ALWAYS,
    PROD,
    StackSubject,
    Subject,
    as_list,
    policy_statements,
    resource_rule,
    stack_rule,
)
from policies.rules_aws import _names
from policies.rules_aws_access import open_to_everyone, public_acl_grants

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_LEGACY = "aws:s3/bucketV2:BucketV2"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
SSE_V2 = (
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
)
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
VERSIONING_V2 = "aws:s3/bucketVersioningV2:BucketVersioningV2"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
LIFECYCLE_V2 = "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
LOGGING_V2 = "aws:s3/bucketLoggingV2:BucketLoggingV2"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
ACL = "aws:s3/bucketAcl:BucketAcl"
ACL_V2 = "aws:s3/bucketAclV2:BucketAclV2"
OBJECT = "aws:s3/bucketObject:BucketObject"
OBJECT_V2 = "aws:s3/bucketObjectv2:BucketObjectv2"
RDS = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"


def _bucket_names(stack: StackSubject) -> dict[str, Subject]:
    """Bucket name (or id) -> bucket, for matching sub-resources by their `bucket` input."""
    out = {}
    for b in stack.of_type(BUCKET, BUCKET_LEGACY):
        for key in ("bucket", "id"):
            value = b.props.get(key)
            if isinstance(value, str):
                out[value] = b
        out.setdefault(b.name, b)
    return out


def _buckets_missing(stack: StackSubject, *types: str) -> Iterator[Subject]:
    covered = _names(stack.of_type(*types))
    for name, bucket in _bucket_names(stack).items():
        if name == bucket.props.get("bucket", name) and name not in covered:
            yield bucket


# -- S3 -------------------------------------------------------------------------------------------


@resource_rule(
    "AWS-S3-001",
    "S3 public access block enables all four settings",
    "critical",
    ALWAYS,
    [PAB],
    "Set block_public_acls, block_public_policy, ignore_public_acls and "
    "restrict_public_buckets to true.",
    ["CIS-AWS-1.4.0:2.1.5"],
)
def s3_public_access_block(r: Subject) -> Iterator[str]:
    for key in (
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
    ):
        if r.get(key) is not True:
            yield f"{key} is {r.get(key)!r}, must be true"


@stack_rule(
    "AWS-S3-002",
    "Every S3 bucket has a public access block",
    "critical",
    ALWAYS,
    [BUCKET, PAB],
    "Add an aws.s3.BucketPublicAccessBlock for the bucket with all four settings true.",
    ["CIS-AWS-1.4.0:2.1.5"],
)
def s3_every_bucket_blocked(stack: StackSubject) -> Iterator[tuple[str, str]]:
    for b in _buckets_missing(stack, PAB):
        yield b.urn, "bucket has no BucketPublicAccessBlock"


@stack_rule(
    "AWS-S3-003",
    "S3 encryption at rest uses KMS",
    "high",
    PROD,
    [SSE, LOGGING],
    "Use sse_algorithm aws:kms with a customer-managed key. Server access log target "
    "buckets are exempt: S3 log delivery supports only SSE-S3 (AES256).",
    ["CIS-AWS-1.4.0:2.1.1"],
)
def s3_sse_kms(stack: StackSubject) -> Iterator[tuple[str, str]]:
    log_targets = _names(stack.of_type(LOGGING, LOGGING_V2), "targetBucket")
    for config in stack.of_type(SSE, SSE_V2):
        if config.props.get("bucket") in log_targets:
            continue
        for rule in as_list(config.props.get("rules")):
            algo = (rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm")
            if algo not in ("aws:kms", "aws:kms:dsse"):
                yield config.urn, f"sseAlgorithm is {algo!r}, expected aws:kms"


@stack_rule(
    "AWS-S3-004",
    "Every S3 bucket has encryption configured",
    "high",
    ALWAYS,
    [BUCKET, SSE],
    "Add an aws.s3.BucketServerSideEncryptionConfiguration for the bucket.",
    ["CIS-AWS-1.4.0:2.1.1"],
)
def s3_every_bucket_encrypted(stack: StackSubject) -> Iterator[tuple[str, str]]:
    for b in _buckets_missing(stack, SSE, SSE_V2):
        if not b.props.get("serverSideEncryptionConfiguration"):
            yield b.urn, "bucket has no server-side encryption configuration"


@stack_rule(
    "AWS-S3-005",
    "Every S3 bucket is versioned",
    "medium",
    PROD,
    [BUCKET, VERSIONING],
    "Add an aws.s3.BucketVersioning with status Enabled.",
    ["CIS-AWS-1.4.0:2.1.3"],
)
def s3_every_bucket_versioned(stack: StackSubject) -> Iterator[tuple[str, str]]:
    enabled = _names(
        v
        for v in stack.of_type(VERSIONING, VERSIONING_V2)
        if (v.props.get("versioningConfiguration") or {}).get("status") == "Enabled"
    )
    for name, b in _bucket_names(stack).items():
        if name == b.props.get("bucket", name) and name not in enabled:
            yield b.urn, "bucket versioning is not Enabled"


@stack_rule(
    "AWS-S3-006",
    "Every S3 bucket denies requests without TLS",
    "high",
    ALWAYS,
    [BUCKET, BUCKET_POLICY],
    "Attach a bucket policy with a Deny on aws:SecureTransport = false.",
    ["CIS-AWS-1.4.0:2.1.2"],
)
def s3_tls_only(stack: StackSubject) -> Iterator[tuple[str, str]]:
    secure = set()
    for p in stack.of_type(BUCKET_POLICY):
        for stmt in policy_statements(p.props.get("policy")):
            cond = stmt.get("Condition") or {}
            if (
                stmt.get("Effect") == "Deny"
                and str((cond.get("Bool") or {}).get("aws:SecureTransport")).lower() == "false"
            ) and isinstance(p.props.get("bucket"), str):
                secure.add(p.props["bucket"])
    for name, b in _bucket_names(stack).items():
        if name == b.props.get("bucket", name) and name not in secure:
            yield b.urn, "no bucket policy denies aws:SecureTransport=false"


@resource_rule(
    "AWS-S3-007",
    "S3 buckets and objects grant no public ACL",
    "critical",
    ALWAYS,
    [BUCKET, BUCKET_LEGACY, ACL, ACL_V2, OBJECT, OBJECT_V2],
    "Remove public ACLs and grants to AllUsers / AuthenticatedUsers; use BucketOwnerEnforced "
    "ownership (ACLs disabled).",
    ["CIS-AWS-1.4.0:2.1.5"],
    "A canned ACL (public-read, public-read-write, authenticated-read) or an explicit grant to "
    "AWS's AllUsers or AuthenticatedUsers group, on a bucket, a BucketAcl or an object.",
)
def s3_no_public_acl(r: Subject) -> Iterator[str]:
    acl = r.get("acl")
    if acl in ("public-read", "public-read-write", "authenticated-read"):
        yield f"acl is {acl}"
    yield from public_acl_grants(r)


@resource_rule(
    "AWS-S3-008",
    "S3 bucket policies allow no anonymous principal",
    "critical",
    ALWAYS,
    [BUCKET_POLICY, BUCKET, BUCKET_LEGACY],
    "Name the principals; never Allow Principal '*' unless a condition pins the caller "
    "(aws:SourceArn, aws:SourceAccount, aws:PrincipalOrgID, aws:SourceVpce...): "
    "aws:SecureTransport or aws:SourceIp do not.",
    ["CIS-AWS-1.4.0:2.1.5"],
    "Judged on a BucketPolicy and on a bucket's inline `policy`.",
)
def s3_no_public_policy(r: Subject) -> Iterator[str]:
    for stmt in policy_statements(r.get("policy")):
        if open_to_everyone(stmt):
            yield f"statement {stmt.get('Sid', '?')} allows everyone"


@resource_rule(
    "AWS-S3-009",
    "S3 ownership controls disable ACLs",
    "medium",
    PROD,
    [OWNERSHIP],
    "Set object_ownership to BucketOwnerEnforced.",
)
def s3_owner_enforced(r: Subject) -> Iterator[str]:
    ownership = (r.get("rule") or {}).get("objectOwnership")
    if ownership != "BucketOwnerEnforced":
        yield f"objectOwnership is {ownership!r}"


@stack_rule(
    "AWS-S3-010",
    "Every S3 bucket has a lifecycle configuration",
    "medium",
    PROD,
    [BUCKET, LIFECYCLE],
    "Add an aws.s3.BucketLifecycleConfiguration (tiering, noncurrent expiry, aborted uploads).",
)
def s3_lifecycle(stack: StackSubject) -> Iterator[tuple[str, str]]:
    for b in _buckets_missing(stack, LIFECYCLE, LIFECYCLE_V2):
        yield b.urn, "bucket has no lifecycle configuration"


@stack_rule(
    "AWS-S3-011",
    "S3 buckets log server access",
    "medium",
    PROD,
    [BUCKET, LOGGING],
    "Add an aws.s3.BucketLogging targeting the access-log bucket.",
    ["CIS-AWS-1.4.0:3.6"],
)
def s3_access_logging(stack: StackSubject) -> Iterator[tuple[str, str]]:
    logged = _names(stack.of_type(LOGGING, LOGGING_V2))
    targets = _names(stack.of_type(LOGGING, LOGGING_V2), "targetBucket")
    for name, b in _bucket_names(stack).items():
        if name == b.props.get("bucket", name) and name not in logged and name not in targets:
            yield b.urn, "bucket access is not logged"


@resource_rule(
    "AWS-S3-012",
    "Production buckets cannot be force-destroyed",
    "high",
    PROD,
    [BUCKET, BUCKET_LEGACY],
    "Set force_destroy to false.",
)
def s3_no_force_destroy(r: Subject) -> Iterator[str]:
    if r.get("forceDestroy") is True:
        yield "forceDestroy is true: deleting the bucket deletes its data"


# -- RDS ----------------------------------------------------------------------------------------


@resource_rule(
    "AWS-RDS-001",
    "RDS storage is encrypted",
    "critical",
    ALWAYS,
    [RDS, RDS_CLUSTER],
    "Set storage_encrypted (and kms_key_id to a customer-managed key).",
    ["CIS-AWS-1.4.0:2.3.1"],
)
def rds_encrypted(r: Subject) -> Iterator[str]:
    if r.get("storageEncrypted") is not True:
        yield "storageEncrypted is not true"


@resource_rule(
    "AWS-RDS-002",
    "RDS is not publicly accessible",
    "critical",
    ALWAYS,
    [RDS],
    "Set publicly_accessible false and place it in subnets without an internet route.",
    ["CIS-AWS-1.4.0:2.3.3"],
)
def rds_private(r: Subject) -> Iterator[str]:
    if r.get("publiclyAccessible") is True:
        yield "publiclyAccessible is true"


@resource_rule(
    "AWS-RDS-003",
    "RDS keeps at least 7 days of backups",
    "high",
    PROD,
    [RDS, RDS_CLUSTER],
    "Set backup_retention_period to 7 or more (enables point-in-time recovery).",
)
def rds_backups(r: Subject) -> Iterator[str]:
    days = r.get("backupRetentionPeriod", 1)
    if not isinstance(days, int | float) or days < 7:
        yield f"backupRetentionPeriod is {days}"


@resource_rule(
    "AWS-RDS-004",
    "RDS is Multi-AZ",
    "high",
    PROD,
    [RDS],
    "Set multi_az true.",
)
def rds_multi_az(r: Subject) -> Iterator[str]:
    if r.get("multiAz") is not True:
        yield "multiAz is not true"


@resource_rule(
    "AWS-RDS-005",
    "RDS has deletion protection and a final snapshot",
    "high",
    PROD,
    [RDS, RDS_CLUSTER],
    "Set deletion_protection true, skip_final_snapshot false and a final_snapshot_identifier.",
)
def rds_deletion(r: Subject) -> Iterator[str]:
    if r.get("deletionProtection") is not True:
        yield "deletionProtection is not true"
    if r.get("skipFinalSnapshot") is True:
        yield "skipFinalSnapshot is true"


@resource_rule(
    "AWS-RDS-006",
    "RDS uses a custom parameter group",
    "medium",
    ALWAYS,
    [RDS],
    "Create an aws.rds.ParameterGroup that forces TLS and attach it.",
)
def rds_parameter_group(r: Subject) -> Iterator[str]:
    name = r.get("parameterGroupName")
    if not name or str(name).startswith("default."):
        yield "uses the default parameter group, which does not force TLS"


@resource_rule(
    "AWS-RDS-007",
    "PostgreSQL parameter groups force TLS",
    "high",
    ALWAYS,
    ["aws:rds/parameterGroup:ParameterGroup"],
    "Set rds.force_ssl to 1.",
)
def rds_force_ssl(r: Subject) -> Iterator[str]:
    if not str(r.get("family", "")).startswith("postgres"):
        return
    values = {p.get("name"): str(p.get("value")) for p in as_list(r.get("parameters"))}
    if values.get("rds.force_ssl") != "1":
        yield "rds.force_ssl is not 1"


@resource_rule(
    "AWS-RDS-008",
    "RDS upgrades minor versions automatically",
    "low",
    ADVISE,
    [RDS],
    "Set auto_minor_version_upgrade true.",
    ["CIS-AWS-1.4.0:2.3.2"],
)
def rds_minor_upgrades(r: Subject) -> Iterator[str]:
    if r.get("autoMinorVersionUpgrade") is False:
        yield "autoMinorVersionUpgrade is false"


@resource_rule(
    "AWS-RDS-009",
    "RDS uses IAM database authentication",
    "medium",
    PROD,
    [RDS, RDS_CLUSTER],
    "Set iam_database_authentication_enabled true.",
    ["NIST-800-53:IA-2"],
    "Without IAM authentication only long-lived database passwords exist: no per-role, "
    "short-lived tokens and no CloudTrail record of who connected.",
)
def rds_iam_auth(r: Subject) -> Iterator[str]:
    if r.get("iamDatabaseAuthenticationEnabled") is not True:
        yield "IAM database authentication is off"


@resource_rule(
    "AWS-RDS-010",
    "RDS instance class is allowed",
    "medium",
    ALWAYS,
    [RDS],
    "Choose one of the pack config's allowed_instance_classes.",
)
def rds_instance_class(r: Subject) -> Iterator[str]:
    allowed = r.config.allowed_instance_classes
    cls = r.get("instanceClass")
    if allowed and cls not in allowed:
        yield f"instanceClass {cls} is not in {', '.join(allowed)}"


# -- ElastiCache --------------------------------------------------------------------------------


@resource_rule(
    "AWS-REDIS-001",
    "Redis encrypts traffic in transit",
    "critical",
    ALWAYS,
    [REDIS],
    "Set transit_encryption_enabled true and transit_encryption_mode required.",
)
def redis_tls(r: Subject) -> Iterator[str]:
    if r.get("transitEncryptionEnabled") is not True:
        yield "transitEncryptionEnabled is not true"
    elif r.get("transitEncryptionMode", "required") != "required":
        yield f"transitEncryptionMode is {r.get('transitEncryptionMode')} (accepts plaintext)"


@resource_rule(
    "AWS-REDIS-002",
    "Redis encrypts data at rest",
    "high",
    ALWAYS,
    [REDIS],
    "Set at_rest_encryption_enabled true (and kms_key_id).",
)
def redis_at_rest(r: Subject) -> Iterator[str]:
    if str(r.get("atRestEncryptionEnabled")).lower() != "true":
        yield "atRestEncryptionEnabled is not true"


@resource_rule(
    "AWS-REDIS-003",
    "Redis requires authentication",
    "critical",
    ALWAYS,
    [REDIS],
    "Set an auth_token (or RBAC user groups).",
)
def redis_auth(r: Subject) -> Iterator[str]:
    if not r.get("authToken") and not r.get("userGroupIds"):
        yield "no auth token and no user groups: anyone who can connect can read and write"


@resource_rule(
    "AWS-REDIS-004",
    "Redis fails over across AZs",
    "high",
    PROD,
    [REDIS],
    "Set automatic_failover_enabled and multi_az_enabled with at least one replica.",
)
def redis_ha(r: Subject) -> Iterator[str]:
    if r.get("automaticFailoverEnabled") is not True or r.get("multiAzEnabled") is not True:
        yield "automatic failover / Multi-AZ is off"


@resource_rule(
    "AWS-REDIS-005",
    "Redis keeps snapshots",
    "medium",
    PROD,
    [REDIS],
    "Set snapshot_retention_limit to 1 or more.",
)
def redis_snapshots(r: Subject) -> Iterator[str]:
    if not r.get("snapshotRetentionLimit"):
        yield "snapshotRetentionLimit is 0"


@resource_rule(
    "AWS-REDIS-006",
    "ElastiCache runs Valkey",
    "low",
    ADVISE,
    [REDIS],
    "Set engine valkey (an in-place upgrade from Redis OSS 7) with a valkey parameter group.",
)
def cache_valkey(r: Subject) -> Iterator[str]:
    # the provider defaults the engine to redis
    if r.get("engine", "redis") != "valkey":
        yield f"engine is {r.get('engine', 'redis')!r}: Redis OSS, not Valkey"


# -- KMS, logs ------------------------------------------------------------------------------------


@resource_rule(
    "AWS-KMS-001",
    "KMS keys rotate",
    "medium",
    ALWAYS,
    ["aws:kms/key:Key"],
    "Set enable_key_rotation true.",
    ["CIS-AWS-1.4.0:3.8"],
)
def kms_rotation(r: Subject) -> Iterator[str]:
    if (
        r.get("enableKeyRotation") is not True
        and r.get("keyUsage", "ENCRYPT_DECRYPT") == ("ENCRYPT_DECRYPT")
        and r.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    ):
        yield "enableKeyRotation is not true"


@resource_rule(
    "AWS-LOG-001",
    "CloudWatch log groups expire their logs",
    "low",
    ADVISE,
    ["aws:cloudwatch/logGroup:LogGroup"],
    "Set retention_in_days.",
)
def log_retention(r: Subject) -> Iterator[str]:
    if not r.get("retentionInDays"):
        yield "logs are kept forever (no retentionInDays)"
