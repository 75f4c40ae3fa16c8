"""Fixtures of the AWS rules added for issue #17 (access, identity, audit, lifecycle): each
rule on a compliant and a non-compliant resource, judged on the resource the flaw lives on."""

from __future__ import annotations

import json
from typing import Any

OWN = "111111111111"
FOREIGN = "999999999999"
OWN_ROLE = ("aws:iam/role:Role", {"arn": f"arn:aws:iam::{OWN}:role/deployer"})
"""A resource the stack owns: its ARN tells AWS-IAM-006 which account is ours."""

KEY = "aws:kms/key:Key"
RDS = "aws:rds/instance:Instance"
EKS = "aws:eks/cluster:Cluster"
PARAMS = "aws:rds/parameterGroup:ParameterGroup"
TRAIL = "aws:cloudtrail/trail:Trail"


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, action: Any = "kms:Decrypt", **extra: Any) -> dict[str, Any]:
    return {
        "Sid": "S",
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": "*",
        **extra,
    }


ROOT = allow({"AWS": f"arn:aws:iam::{OWN}:root"}, "kms:*")
ORG_ONLY = {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}
TLS_ONLY = {"Bool": {"aws:SecureTransport": "true"}}


def identity(*statements: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("aws:iam/rolePolicy:RolePolicy", {"role": "r", "policy": doc(*statements)})


def stmt(action: Any, resource: Any) -> dict[str, Any]:
    return {"Sid": "S", "Effect": "Allow", "Action": action, "Resource": resource}


AUDITED = [
    {"name": "shared_preload_libraries", "value": "pg_stat_statements,pgaudit"},
    {"name": "pgaudit.log", "value": "ddl,role"},
    {"name": "log_connections", "value": "1"},
    {"name": "log_disconnections", "value": "1"},
    {"name": "log_lock_waits", "value": "1"},
]

CASES = {
    "AWS-KMS-002": (
        [
            (KEY, {"policy": doc(ROOT, allow("*", "kms:Decrypt", Condition=ORG_ONLY))}),
            ("aws:kms/keyPolicy:KeyPolicy", {"keyId": "k", "policy": doc(ROOT)}),
        ],
        [
            (KEY, {"policy": doc(ROOT, allow("*", "kms:Decrypt", Condition=TLS_ONLY))}),
            ("aws:kms/keyPolicy:KeyPolicy", {"keyId": "k", "policy": doc(allow({"AWS": "*"}))}),
        ],
    ),
    "AWS-ECR-004": (
        [
            (
                "aws:ecr/repositoryPolicy:RepositoryPolicy",
                {"repository": "api", "policy": doc(allow({"AWS": f"arn:aws:iam::{OWN}:root"}))},
            )
        ],
        [
            (
                "aws:ecr/repositoryPolicy:RepositoryPolicy",
                {"repository": "api", "policy": doc(allow("*", "ecr:BatchGetImage"))},
            ),
            ("aws:ecr/registryPolicy:RegistryPolicy", {"policy": doc(allow({"AWS": "*"}))}),
        ],
    ),
    "AWS-RDS-011": (
        [("aws:rds/snapshot:Snapshot", {"dbInstanceIdentifier": "db", "sharedAccounts": [OWN]})],
        [
            ("aws:rds/snapshot:Snapshot", {"sharedAccounts": ["all"]}),
            ("aws:rds/clusterSnapshot:ClusterSnapshot", {"sharedAccounts": ["all"]}),
        ],
    ),
    "AWS-IAM-006": (
        [
            OWN_ROLE,
            (KEY, {"policy": doc(ROOT)}),
            (
                "aws:s3/bucketPolicy:BucketPolicy",
                {
                    "bucket": "b",
                    "policy": doc(
                        allow(
                            {"Service": "logging.s3.amazonaws.com"},
                            "s3:PutObject",
                            Condition={"StringEquals": {"aws:SourceAccount": OWN}},
                        )
                    ),
                },
            ),
            ("aws:rds/snapshot:Snapshot", {"sharedAccounts": [OWN]}),
        ],
        [
            OWN_ROLE,
            (KEY, {"policy": doc(ROOT, allow({"AWS": f"arn:aws:iam::{FOREIGN}:root"}))}),
            (
                "aws:s3/bucketPolicy:BucketPolicy",
                {"bucket": "b", "policy": doc(allow({"AWS": FOREIGN}, "s3:GetObject"))},
            ),
            (
                "aws:iam/role:Role",
                {
                    "assumeRolePolicy": doc(
                        allow({"AWS": f"arn:aws:iam::{FOREIGN}:role/ci"}, "sts:AssumeRole")
                    )
                },
            ),
            ("aws:rds/snapshot:Snapshot", {"sharedAccounts": [FOREIGN]}),
        ],
    ),
    "AWS-IAM-007": (
        [
            identity(
                stmt("iam:PassRole", f"arn:aws:iam::{OWN}:role/karpenter-node"),
                stmt(["ec2:DescribeSubnets"], "*"),
            )
        ],
        [
            identity(stmt("iam:PassRole", "*")),
            identity(stmt(["iam:Put*"], f"arn:aws:iam::{OWN}:role/*")),
            (
                "aws:iam/policy:Policy",
                {"policy": doc({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"})},
            ),
        ],
    ),
    "AWS-IAM-008": (
        [("aws:iam/groupPolicy:GroupPolicy", {"group": "g", "policy": doc(stmt("s3:Get*", "*"))})],
        [
            ("aws:iam/userPolicy:UserPolicy", {"user": "ci", "policy": doc(stmt("s3:*", "*"))}),
            (
                "aws:iam/userPolicyAttachment:UserPolicyAttachment",
                {"user": "ci", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            ),
            (
                "aws:iam/policyAttachment:PolicyAttachment",
                {"users": ["ci"], "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            ),
        ],
    ),
    "AWS-TRAIL-001": (
        [(TRAIL, {"isMultiRegionTrail": True, "s3BucketName": "trail"})],
        [
            (TRAIL, {"s3BucketName": "trail"}),
            (TRAIL, {"isMultiRegionTrail": True, "enableLogging": False}),
        ],
    ),
    "AWS-TRAIL-002": (
        [(TRAIL, {"enableLogFileValidation": True})],
        [(TRAIL, {"enableLogFileValidation": False})],
    ),
    "AWS-TRAIL-003": (
        [(TRAIL, {"kmsKeyId": f"arn:aws:kms:eu-west-1:{OWN}:key/k"})],
        [(TRAIL, {"s3BucketName": "trail"})],
    ),
    "AWS-GD-001": (
        [("aws:guardduty/detector:Detector", {"enable": True})],
        [
            ("aws:guardduty/detector:Detector", {"enable": False}),
            (
                "aws:guardduty/detector:Detector",
                {"datasources": {"kubernetes": {"auditLogs": {"enable": False}}}},
            ),
        ],
    ),
    "AWS-GD-002": (
        [
            (
                "aws:guardduty/detectorFeature:DetectorFeature",
                {"detectorId": "d", "name": "EKS_AUDIT_LOGS", "status": "ENABLED"},
            )
        ],
        [
            (
                "aws:guardduty/detectorFeature:DetectorFeature",
                {"detectorId": "d", "name": "S3_DATA_EVENTS", "status": "DISABLED"},
            )
        ],
    ),
    "AWS-RDS-012": (
        [
            (PARAMS, {"family": "postgres17", "parameters": AUDITED}),
            (PARAMS, {"family": "mysql8.0", "parameters": []}),
            (
                PARAMS,
                {
                    "family": "postgres14",
                    "parameters": [*AUDITED, {"name": "log_checkpoints", "value": "1"}],
                },
            ),
        ],
        [
            (PARAMS, {"family": "postgres17", "parameters": AUDITED[2:]}),
            (PARAMS, {"family": "postgres14", "parameters": AUDITED}),
            (
                "aws:rds/clusterParameterGroup:ClusterParameterGroup",
                {
                    "family": "aurora-postgresql16",
                    "parameters": [*AUDITED[:1], {"name": "pgaudit.log", "value": "none"}],
                },
            ),
        ],
    ),
    "AWS-RDS-013": (
        [(RDS, {"enabledCloudwatchLogsExports": ["postgresql", "upgrade"]})],
        [(RDS, {"enabledCloudwatchLogsExports": []})],
    ),
    "AWS-LOG-002": (
        [("aws:cloudwatch/logGroup:LogGroup", {"kmsKeyId": f"arn:aws:kms:eu-west-1:{OWN}:key/k"})],
        [("aws:cloudwatch/logGroup:LogGroup", {"retentionInDays": 30})],
    ),
    "AWS-KMS-003": (
        [(KEY, {"enableKeyRotation": True, "policy": doc(ROOT)})],
        [(KEY, {"enableKeyRotation": True})],
    ),
    "AWS-EKS-007": (
        [(EKS, {"version": "1.99"})],
        [
            (EKS, {"version": "1.31", "upgradePolicy": {"supportType": "STANDARD"}}),
            (EKS, {"version": "1.20"}),
        ],
    ),
    "AWS-RDS-014": (
        [
            (RDS, {"engine": "postgres", "engineVersion": "99"}),
            (RDS, {"engine": "mysql", "engineVersion": "5.7"}),
        ],
        [
            (RDS, {"engine": "postgres", "engineVersion": "12.22"}),
            (RDS, {"engine": "postgres", "engineVersion": "9.6"}),
        ],
    ),
    "AWS-REDIS-007": (
        [
            (
                "aws:elasticache/replicationGroup:ReplicationGroup",
                {"engine": "valkey", "engineVersion": "8.1"},
            ),
            (
                "aws:elasticache/replicationGroup:ReplicationGroup",
                {"engine": "redis", "engineVersion": "7.1"},
            ),
        ],
        [
            ("aws:elasticache/replicationGroup:ReplicationGroup", {"engineVersion": "5.0.6"}),
            ("aws:elasticache/cluster:Cluster", {"engine": "redis", "engineVersion": "4.0.10"}),
        ],
    ),
    "AWS-RDS-015": (
        [(RDS, {"monitoringInterval": 60, "monitoringRoleArn": f"arn:aws:iam::{OWN}:role/m"})],
        [(RDS, {}), (RDS, {"monitoringInterval": 30})],
    ),
    "AWS-S3-014": (
        [
            (
                "aws:s3/bucketVersioning:BucketVersioning",
                {"bucket": "b", "versioningConfiguration": {"status": "Enabled"}},
            ),
            ("aws:s3/bucket:Bucket", {"bucket": "b"}),
        ],
        [
            (
                "aws:s3/bucketVersioningV2:BucketVersioningV2",
                {"bucket": "b", "versioningConfiguration": {"status": "Suspended"}},
            ),
            ("aws:s3/bucketV2:BucketV2", {"bucket": "b", "versioning": {"enabled": False}}),
        ],
    ),
}
