"""The policy pack: every rule proven on a compliant and a non-compliant fixture (through the
offline runner and through the CrossGuard adapter), the runner's formats and exit codes, and
the shipped stacks (prod: zero mandatory violations)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import (
    PolicyProviderResource,
    PolicyResource,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.policy import PolicyCustomTimeouts, PolicyResourceOptions
from typer.testing import CliRunner

from contracts.deployment import Plan
from dex.cli import app
from policies import all_rules
from policies.crossguard import build_policies, pack_config_file
from policies.model import ALWAYS, UNKNOWN, PackConfig
from policies.runner import check, render_markdown, render_sarif
from tests.conftest import ROOT
from tests.unit.policy_cases import collected

pytestmark = pytest.mark.unit

Res = tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], dict[str, Any]]

DIGEST = "registry.example/api@sha256:" + "a" * 64
GOOD_CONTAINER = {
    "name": "app",
    "image": DIGEST,
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "resources": {"limits": {"cpu": "1", "memory": "512Mi"}},
    "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8000}},
    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8000}},
}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def deployment(container: dict[str, Any] | None = None, **pod: Any) -> Res:
    c = {**GOOD_CONTAINER, **(container or {})}
    return (
        DEPLOYMENT,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "apps"},
            "spec": {
                "selector": {"matchLabels": {"app": "api"}},
                "template": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {"containers": [c], **pod},
                },
            },
        },
    )


def ctx(**changes: Any) -> dict[str, Any]:
    return {"securityContext": {**GOOD_CONTAINER["securityContext"], **changes}}


def doc_policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


DENY_HTTP = doc_policy(
    {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
)
READ_B = doc_policy({"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*"})
PAB_ALL = {
    "bucket": "b",
    "blockPublicAcls": True,
    "blockPublicPolicy": True,
    "ignorePublicAcls": True,
    "restrictPublicBuckets": True,
}
B = ("aws:s3/bucket:Bucket", {"bucket": "b"})
SG = "aws:ec2/securityGroup:SecurityGroup"
RDS = "aws:rds/instance:Instance"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
EKS = "aws:eks/cluster:Cluster"
GKE = "gcp:container/cluster:Cluster"
POOL = "gcp:container/nodePool:NodePool"
SQL = "gcp:sql/databaseInstance:DatabaseInstance"
GCS = "gcp:storage/bucket:Bucket"
MEMO = "gcp:redis/instance:Instance"
FW = "gcp:compute/firewall:Firewall"
PIAM = "gcp:projects/iAMMember:IAMMember"
NS = "kubernetes:core/v1:Namespace"
ALL_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
SHIELDED = {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
TAGS = json.dumps({"tags": {"project": "dex", "environment": "prod", "owner": "team"}})

GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
CLIENT_TRAFFIC = "kubernetes:gateway.envoyproxy.io/v1alpha1:ClientTrafficPolicy"
HTTP_LISTENER = {
    "name": "http",
    "port": 80,
    "protocol": "HTTP",
    "allowedRoutes": {"namespaces": {"from": "Same"}},
}
HTTPS_LISTENER = {
    "name": "https-api",
    "hostname": "api.example.com",
    "port": 443,
    "protocol": "HTTPS",
    "tls": {"mode": "Terminate", "certificateRefs": [{"name": "api-tls"}]},
    "allowedRoutes": {
        "namespaces": {
            "from": "Selector",
            "selector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}},
        }
    },
}
REDIRECT = {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
HSTS = {
    "type": "ResponseHeaderModifier",
    "responseHeaderModifier": {
        "set": [
            {"name": "Strict-Transport-Security", "value": "max-age=31536000; includeSubDomains"}
        ]
    },
}
BACKEND = {"name": "api", "port": 80}

# rule id -> (compliant resources, non-compliant resources[, pack config])
CASES: dict[
    str, tuple[Sequence[Res], Sequence[Res]] | tuple[Sequence[Res], Sequence[Res], PackConfig]
] = {
    "AWS-EC2-001": (
        [
            (
                SG,
                {
                    "ingress": [
                        {
                            "protocol": "tcp",
                            "fromPort": 443,
                            "toPort": 443,
                            "cidrBlocks": ["0.0.0.0/0"],
                        }
                    ]
                },
            )
        ],
        [
            (
                SG,
                {
                    "ingress": [
                        {
                            "protocol": "tcp",
                            "fromPort": 22,
                            "toPort": 22,
                            "cidrBlocks": ["0.0.0.0/0"],
                        }
                    ]
                },
            )
        ],
    ),
    "AWS-EC2-002": (
        [
            (
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                {
                    "ipProtocol": "tcp",
                    "fromPort": 5432,
                    "toPort": 5432,
                    "referencedSecurityGroupId": "sg-1",
                },
            )
        ],
        [
            (
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                {"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432, "cidrIpv4": "0.0.0.0/0"},
            )
        ],
    ),
    "AWS-EC2-003": (
        [
            (
                SG,
                {
                    "ingress": [
                        {
                            "protocol": "tcp",
                            "fromPort": 8080,
                            "toPort": 8080,
                            "cidrBlocks": ["10.0.0.0/16"],
                        }
                    ]
                },
            )
        ],
        [
            (
                "aws:ec2/securityGroupRule:SecurityGroupRule",
                {
                    "type": "ingress",
                    "protocol": "-1",
                    "fromPort": 0,
                    "toPort": 0,
                    "cidrBlocks": ["0.0.0.0/0"],
                },
            )
        ],
    ),
    "AWS-EC2-004": (
        [("aws:ec2/subnet:Subnet", {"mapPublicIpOnLaunch": False})],
        [("aws:ec2/subnet:Subnet", {"mapPublicIpOnLaunch": True})],
    ),
    "AWS-EC2-005": (
        [
            (
                "aws:ec2/launchTemplate:LaunchTemplate",
                {"metadataOptions": {"httpTokens": "required"}},
            )
        ],
        [("aws:ec2/instance:Instance", {"metadataOptions": {"httpTokens": "optional"}})],
    ),
    "AWS-EC2-006": (
        [
            (
                "aws:ec2/launchTemplate:LaunchTemplate",
                {
                    "blockDeviceMappings": [
                        {"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}}
                    ]
                },
            )
        ],
        [
            (
                "aws:ec2/launchTemplate:LaunchTemplate",
                {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 50}}]},
            )
        ],
    ),
    "AWS-ECR-001": (
        [("aws:ecr/repository:Repository", {"imageScanningConfiguration": {"scanOnPush": True}})],
        [("aws:ecr/repository:Repository", {})],
    ),
    "AWS-ECR-002": (
        [("aws:ecr/repository:Repository", {"imageTagMutability": "IMMUTABLE"})],
        [("aws:ecr/repository:Repository", {})],
    ),
    "AWS-ECR-003": (
        [
            ("aws:ecr/repository:Repository", {"name": "r"}),
            ("aws:ecr/lifecyclePolicy:LifecyclePolicy", {"repository": "r"}),
        ],
        [("aws:ecr/repository:Repository", {"name": "r"})],
    ),
    # the insecure default: an EKS cluster with no vpcConfig flags is public to the world
    "AWS-EKS-001": (
        [
            (
                EKS,
                {
                    "vpcConfig": {
                        "endpointPublicAccess": True,
                        "publicAccessCidrs": ["203.0.113.0/24"],
                    }
                },
            )
        ],
        [(EKS, {"vpcConfig": {"subnetIds": ["s"]}})],
    ),
    "AWS-EKS-002": (
        [(EKS, {"encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "k"}}})],
        [(EKS, {})],
    ),
    "AWS-EKS-003": (
        [(EKS, {"enabledClusterLogTypes": ALL_LOGS})],
        [(EKS, {"enabledClusterLogTypes": ["api"]})],
    ),
    "AWS-EKS-004": ([(EKS, {"version": "1.34"})], [(EKS, {"version": "1.27"})]),
    "AWS-EKS-005": (
        [("aws:eks/nodeGroup:NodeGroup", {"amiType": "AL2023_x86_64_STANDARD"})],
        [
            (
                "aws:eks/nodeGroup:NodeGroup",
                {"amiType": "AL2023_x86_64_STANDARD", "remoteAccess": {"ec2SshKey": "k"}},
            )
        ],
    ),
    "AWS-EKS-006": (
        [
            (EKS, {"name": "c", "identities": [{"oidcs": [{"issuer": "https://oidc/x"}]}]}),
            ("aws:eks/addon:Addon", {"clusterName": "c", "addonName": "eks-pod-identity-agent"}),
        ],
        [
            (EKS, {"name": "c", "identities": [{"oidcs": [{"issuer": "https://oidc/x"}]}]}),
            (
                "aws:eks/addon:Addon",
                {"clusterName": "other", "addonName": "eks-pod-identity-agent"},
            ),
            ("aws:eks/addon:Addon", {"clusterName": "c", "addonName": "vpc-cni"}),
        ],
    ),
    "AWS-IAM-001": (
        [("aws:iam/policy:Policy", {"policy": READ_B})],
        [
            (
                "aws:iam/policy:Policy",
                {"policy": doc_policy({"Effect": "Allow", "Action": "*", "Resource": "*"})},
            )
        ],
    ),
    "AWS-IAM-002": (
        [("aws:iam/rolePolicy:RolePolicy", {"policy": READ_B})],
        [
            (
                "aws:iam/rolePolicy:RolePolicy",
                {
                    "policy": doc_policy(
                        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}
                    )
                },
            )
        ],
    ),
    "AWS-IAM-003": ([("aws:iam/role:Role", {})], [("aws:iam/accessKey:AccessKey", {"user": "ci"})]),
    "AWS-IAM-004": (
        [
            (
                "aws:iam/role:Role",
                {
                    "assumeRolePolicy": doc_policy(
                        {
                            "Effect": "Allow",
                            "Principal": {"Federated": "arn:oidc"},
                            "Action": "sts:AssumeRoleWithWebIdentity",
                            "Condition": {
                                "StringEquals": {"oidc/x:sub": "system:serviceaccount:a:b"}
                            },
                        }
                    )
                },
            )
        ],
        [
            (
                "aws:iam/role:Role",
                {
                    "assumeRolePolicy": doc_policy(
                        {
                            "Effect": "Allow",
                            "Principal": {"Federated": "arn:oidc"},
                            "Action": "sts:AssumeRoleWithWebIdentity",
                        }
                    )
                },
            )
        ],
    ),
    "AWS-IAM-005": (
        [
            (
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                {"policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            )
        ],
        [
            (
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            )
        ],
    ),
    "AWS-KMS-001": ([("aws:kms/key:Key", {"enableKeyRotation": True})], [("aws:kms/key:Key", {})]),
    "AWS-LOG-001": (
        [("aws:cloudwatch/logGroup:LogGroup", {"retentionInDays": 30})],
        [("aws:cloudwatch/logGroup:LogGroup", {})],
    ),
    "AWS-RDS-001": ([(RDS, {"storageEncrypted": True})], [(RDS, {})]),
    # the insecure default real projects ship: a public RDS with no final snapshot
    "AWS-RDS-002": (
        [(RDS, {"publiclyAccessible": False})],
        [(RDS, {"publiclyAccessible": True, "skipFinalSnapshot": True})],
    ),
    "AWS-RDS-003": ([(RDS, {"backupRetentionPeriod": 14})], [(RDS, {"backupRetentionPeriod": 1})]),
    "AWS-RDS-004": ([(RDS, {"multiAz": True})], [(RDS, {"multiAz": False})]),
    "AWS-RDS-005": (
        [(RDS, {"deletionProtection": True, "skipFinalSnapshot": False})],
        [(RDS, {"publiclyAccessible": True, "skipFinalSnapshot": True})],
    ),
    "AWS-RDS-006": (
        [(RDS, {"parameterGroupName": "dex-params"})],
        [(RDS, {"parameterGroupName": "default.postgres17"})],
    ),
    "AWS-RDS-007": (
        [
            (
                "aws:rds/parameterGroup:ParameterGroup",
                {"family": "postgres17", "parameters": [{"name": "rds.force_ssl", "value": "1"}]},
            )
        ],
        [("aws:rds/parameterGroup:ParameterGroup", {"family": "postgres17", "parameters": []})],
    ),
    "AWS-RDS-008": (
        [(RDS, {"autoMinorVersionUpgrade": True})],
        [(RDS, {"autoMinorVersionUpgrade": False})],
    ),
    "AWS-RDS-009": (
        [
            (
                RDS,
                {
                    "iamDatabaseAuthenticationEnabled": True,
                    "enabledCloudwatchLogsExports": ["postgresql"],
                },
            )
        ],
        [(RDS, {})],
    ),
    "AWS-RDS-010": (
        [(RDS, {"instanceClass": "db.t4g.medium"})],
        [(RDS, {"instanceClass": "db.x2iedn.32xlarge"})],
        PackConfig(allowed_instance_classes=("db.t4g.medium", "db.r7g.large")),
    ),
    # the insecure default: a Redis with neither TLS nor auth
    "AWS-REDIS-001": (
        [(REDIS, {"transitEncryptionEnabled": True, "transitEncryptionMode": "required"})],
        [(REDIS, {"engine": "redis"})],
    ),
    "AWS-REDIS-002": ([(REDIS, {"atRestEncryptionEnabled": True})], [(REDIS, {})]),
    "AWS-REDIS-003": (
        [
            (
                REDIS,
                {
                    "authToken": {
                        "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
                        "ciphertext": "x",
                    }
                },
            )
        ],
        [(REDIS, {"engine": "redis"})],
    ),
    "AWS-REDIS-004": (
        [(REDIS, {"automaticFailoverEnabled": True, "multiAzEnabled": True})],
        [(REDIS, {})],
    ),
    "AWS-REDIS-005": ([(REDIS, {"snapshotRetentionLimit": 7})], [(REDIS, {})]),
    # the provider's default engine is Redis OSS
    "AWS-REDIS-006": ([(REDIS, {"engine": "valkey"})], [(REDIS, {}), (REDIS, {"engine": "redis"})]),
    "AWS-S3-001": (
        [("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", PAB_ALL)],
        [
            (
                "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                {**PAB_ALL, "blockPublicPolicy": False},
            )
        ],
    ),
    "AWS-S3-002": ([B, ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", PAB_ALL)], [B]),
    "AWS-S3-003": (
        [
            (
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                {
                    "bucket": "b",
                    "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}],
                },
            ),
            (
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                {
                    "bucket": "logs",
                    "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
                },
            ),
            ("aws:s3/bucketLogging:BucketLogging", {"bucket": "b", "targetBucket": "logs"}),
        ],
        [
            (
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                {
                    "bucket": "b",
                    "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
                },
            )
        ],
    ),
    "AWS-S3-004": (
        [
            B,
            (
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                {"bucket": "b", "rules": []},
            ),
        ],
        [B],
    ),
    "AWS-S3-005": (
        [
            B,
            (
                "aws:s3/bucketVersioning:BucketVersioning",
                {"bucket": "b", "versioningConfiguration": {"status": "Enabled"}},
            ),
        ],
        [
            B,
            (
                "aws:s3/bucketVersioning:BucketVersioning",
                {"bucket": "b", "versioningConfiguration": {"status": "Suspended"}},
            ),
        ],
    ),
    "AWS-S3-006": (
        [B, ("aws:s3/bucketPolicy:BucketPolicy", {"bucket": "b", "policy": DENY_HTTP})],
        [B],
    ),
    # the insecure default: a public-read bucket
    "AWS-S3-007": (
        [("aws:s3/bucket:Bucket", {"bucket": "b", "acl": "private"})],
        [("aws:s3/bucket:Bucket", {"bucket": "b", "acl": "public-read"})],
    ),
    "AWS-S3-008": (
        [("aws:s3/bucketPolicy:BucketPolicy", {"bucket": "b", "policy": DENY_HTTP})],
        [
            (
                "aws:s3/bucketPolicy:BucketPolicy",
                {
                    "bucket": "b",
                    "policy": doc_policy(
                        {
                            "Effect": "Allow",
                            "Principal": "*",
                            "Action": "s3:GetObject",
                            "Resource": "arn:aws:s3:::b/*",
                        }
                    ),
                },
            )
        ],
    ),
    "AWS-S3-009": (
        [
            (
                "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
                {"rule": {"objectOwnership": "BucketOwnerEnforced"}},
            )
        ],
        [
            (
                "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
                {"rule": {"objectOwnership": "ObjectWriter"}},
            )
        ],
    ),
    "AWS-S3-010": (
        [
            B,
            (
                "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                {"bucket": "b", "rules": []},
            ),
        ],
        [B],
    ),
    "AWS-S3-011": (
        [
            B,
            ("aws:s3/bucket:Bucket", {"bucket": "logs"}),
            ("aws:s3/bucketLogging:BucketLogging", {"bucket": "b", "targetBucket": "logs"}),
        ],
        [B],
    ),
    "AWS-S3-012": (
        [("aws:s3/bucket:Bucket", {"bucket": "b", "forceDestroy": False})],
        [("aws:s3/bucket:Bucket", {"bucket": "b", "forceDestroy": True})],
    ),
    "AWS-VPC-001": (
        [("aws:ec2/vpc:Vpc", {"id": "vpc-1"}), ("aws:ec2/flowLog:FlowLog", {"vpcId": "vpc-1"})],
        [("aws:ec2/vpc:Vpc", {"id": "vpc-1"})],
    ),
    "AWS-VPC-002": (
        [
            ("aws:ec2/vpc:Vpc", {"id": "vpc-1"}),
            ("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", {"vpcId": "vpc-1"}),
        ],
        [
            ("aws:ec2/vpc:Vpc", {"id": "vpc-1"}),
            (
                "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
                {"vpcId": "vpc-1", "ingress": [{"protocol": "-1", "self": True}]},
            ),
        ],
    ),
    "GCP-AR-001": (
        [
            (
                "gcp:artifactregistry/repository:Repository",
                {"format": "DOCKER", "dockerConfig": {"immutableTags": True}},
            )
        ],
        [("gcp:artifactregistry/repository:Repository", {"format": "DOCKER"})],
    ),
    "GCP-GCS-001": ([(GCS, {"uniformBucketLevelAccess": True})], [(GCS, {})]),
    "GCP-GCS-002": (
        [(GCS, {"publicAccessPrevention": "enforced"})],
        [(GCS, {"publicAccessPrevention": "inherited"})],
    ),
    "GCP-GCS-003": (
        [
            (
                "gcp:storage/bucketIAMMember:BucketIAMMember",
                {
                    "member": "serviceAccount:a@p.iam.gserviceaccount.com",
                    "role": "roles/storage.objectViewer",
                },
            )
        ],
        [
            (
                "gcp:storage/bucketIAMBinding:BucketIAMBinding",
                {"members": ["allUsers"], "role": "roles/storage.objectViewer"},
            )
        ],
    ),
    "GCP-GCS-004": ([(GCS, {"versioning": {"enabled": True}})], [(GCS, {})]),
    "GCP-GCS-005": (
        [(GCS, {"encryption": {"defaultKmsKeyName": "k"}})],
        [(GCS, {"labels": {"purpose": "raw"}})],
    ),
    "GCP-GCS-006": (
        [(GCS, {"lifecycleRules": [{"action": {"type": "Delete"}, "condition": {"age": 7}}]})],
        [(GCS, {})],
    ),
    "GCP-GCS-007": ([(GCS, {"logging": {"logBucket": "logs"}})], [(GCS, {})]),
    "GCP-GKE-001": ([(GKE, {"privateClusterConfig": {"enablePrivateNodes": True}})], [(GKE, {})]),
    "GCP-GKE-002": (
        [(GKE, {"privateClusterConfig": {"enablePrivateEndpoint": True}})],
        [(GKE, {"masterAuthorizedNetworksConfig": {"cidrBlocks": [{"cidrBlock": "0.0.0.0/0"}]}})],
    ),
    "GCP-GKE-003": (
        [(GKE, {"workloadIdentityConfig": {"workloadPool": "p.svc.id.goog"}})],
        [(GKE, {})],
    ),
    "GCP-GKE-004": (
        [(GKE, {"enableShieldedNodes": True})],
        [(GKE, {"enableShieldedNodes": False})],
    ),
    "GCP-GKE-005": (
        [
            (
                GKE,
                {
                    "enableLegacyAbac": False,
                    "masterAuth": {"clientCertificateConfig": {"issueClientCertificate": False}},
                },
            )
        ],
        [
            (
                GKE,
                {
                    "enableLegacyAbac": True,
                    "masterAuth": {"clientCertificateConfig": {"issueClientCertificate": True}},
                },
            )
        ],
    ),
    "GCP-GKE-006": ([(GKE, {"datapathProvider": "ADVANCED_DATAPATH"})], [(GKE, {})]),
    "GCP-GKE-007": (
        [(GKE, {"databaseEncryption": {"state": "ENCRYPTED", "keyName": "k"}})],
        [(GKE, {})],
    ),
    "GCP-GKE-008": (
        [(GKE, {"releaseChannel": {"channel": "STABLE"}})],
        [(GKE, {"releaseChannel": {"channel": "UNSPECIFIED"}})],
    ),
    "GCP-GKE-009": ([(GKE, {"removeDefaultNodePool": True})], [(GKE, {})]),
    "GCP-GKE-010": (
        [(GKE, {"loggingService": "logging.googleapis.com/kubernetes"})],
        [(GKE, {"loggingService": "none"})],
    ),
    "GCP-GKE-011": (
        [(POOL, {"nodeConfig": {"shieldedInstanceConfig": SHIELDED}})],
        [(POOL, {"nodeConfig": {}})],
    ),
    "GCP-GKE-012": (
        [(POOL, {"nodeConfig": {"workloadMetadataConfig": {"mode": "GKE_METADATA"}}})],
        [(POOL, {"nodeConfig": {}})],
    ),
    "GCP-GKE-013": (
        [(POOL, {"nodeConfig": {"serviceAccount": "nodes@p.iam.gserviceaccount.com"}})],
        [(POOL, {"nodeConfig": {"serviceAccount": "1234-compute@developer.gserviceaccount.com"}})],
    ),
    "GCP-GKE-014": (
        [(POOL, {"management": {"autoRepair": True, "autoUpgrade": True}})],
        [(POOL, {"management": {"autoRepair": True, "autoUpgrade": False}})],
    ),
    "GCP-GKE-S01": ([(GKE, {"name": "c"}), (POOL, {"cluster": "c"})], [(GKE, {"name": "c"})]),
    "GCP-IAM-001": (
        [("gcp:serviceaccount/account:Account", {"accountId": "a"})],
        [("gcp:serviceaccount/key:Key", {"serviceAccountId": "a"})],
    ),
    "GCP-IAM-002": (
        [(PIAM, {"role": "roles/viewer", "member": "group:ops@x"})],
        [(PIAM, {"role": "roles/owner", "member": "user:a@x"})],
    ),
    "GCP-IAM-003": (
        [(PIAM, {"role": "roles/logging.logWriter", "member": "serviceAccount:a"})],
        [(PIAM, {"role": "roles/iam.serviceAccountUser", "member": "user:a@x"})],
    ),
    "GCP-IAM-004": (
        [(PIAM, {"role": "roles/logging.logWriter", "member": "serviceAccount:a"})],
        [(PIAM, {"role": "roles/storage.admin", "member": "serviceAccount:a"})],
    ),
    "GCP-KMS-001": (
        [("gcp:kms/cryptoKey:CryptoKey", {"rotationPeriod": "7776000s"})],
        [("gcp:kms/cryptoKey:CryptoKey", {"rotationPeriod": "31536000s"})],
    ),
    "GCP-NET-001": (
        [(FW, {"sourceRanges": ["10.0.0.0/8"], "allows": [{"protocol": "tcp", "ports": ["22"]}]})],
        [
            (
                FW,
                {
                    "sourceRanges": ["0.0.0.0/0"],
                    "allows": [{"protocol": "tcp", "ports": ["20-30"]}],
                },
            )
        ],
    ),
    "GCP-NET-002": (
        [
            (
                FW,
                {"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp", "ports": ["443"]}]},
            ),
            (
                FW,
                {"sourceRanges": ["0.0.0.0/0"], "denies": [{"protocol": "all"}], "priority": 65534},
            ),
        ],
        [(FW, {"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp", "ports": ["8080"]}]})],
    ),
    "GCP-NET-003": (
        [
            (
                "gcp:compute/subnetwork:Subnetwork",
                {"logConfig": {"metadata": "INCLUDE_ALL_METADATA"}, "privateIpGoogleAccess": True},
            )
        ],
        [("gcp:compute/subnetwork:Subnetwork", {})],
    ),
    "GCP-NET-004": (
        [("gcp:compute/network:Network", {"autoCreateSubnetworks": False})],
        [("gcp:compute/network:Network", {})],
    ),
    "GCP-REDIS-001": ([(MEMO, {"authEnabled": True})], [(MEMO, {})]),
    "GCP-REDIS-002": (
        [(MEMO, {"transitEncryptionMode": "SERVER_AUTHENTICATION"})],
        [(MEMO, {"transitEncryptionMode": "DISABLED"})],
    ),
    "GCP-REDIS-003": ([(MEMO, {"tier": "STANDARD_HA"})], [(MEMO, {"tier": "BASIC"})]),
    "GCP-SQL-001": (
        [(SQL, {"settings": {"ipConfiguration": {"ipv4Enabled": False}}})],
        [(SQL, {"settings": {}})],
    ),
    "GCP-SQL-002": (
        [(SQL, {"settings": {"ipConfiguration": {"sslMode": "ENCRYPTED_ONLY"}}})],
        [(SQL, {"settings": {"ipConfiguration": {"sslMode": "ALLOW_UNENCRYPTED_AND_ENCRYPTED"}}})],
    ),
    "GCP-SQL-003": (
        [
            (
                SQL,
                {
                    "settings": {
                        "ipConfiguration": {"authorizedNetworks": [{"value": "203.0.113.0/24"}]}
                    }
                },
            )
        ],
        [
            (
                SQL,
                {"settings": {"ipConfiguration": {"authorizedNetworks": [{"value": "0.0.0.0/0"}]}}},
            )
        ],
    ),
    "GCP-SQL-004": (
        [
            (
                SQL,
                {
                    "settings": {
                        "backupConfiguration": {"enabled": True, "pointInTimeRecoveryEnabled": True}
                    }
                },
            )
        ],
        [(SQL, {"settings": {"backupConfiguration": {"enabled": True}}})],
    ),
    "GCP-SQL-005": (
        [(SQL, {"settings": {"availabilityType": "REGIONAL"}})],
        [(SQL, {"settings": {"availabilityType": "ZONAL"}})],
    ),
    "GCP-SQL-006": (
        [(SQL, {"deletionProtection": True, "settings": {"deletionProtectionEnabled": True}})],
        [(SQL, {"deletionProtection": False, "settings": {}})],
    ),
    "GCP-SQL-007": (
        [
            (
                SQL,
                {
                    "databaseVersion": "POSTGRES_17",
                    "settings": {
                        "databaseFlags": [
                            {"name": "log_connections", "value": "on"},
                            {"name": "log_disconnections", "value": "on"},
                        ]
                    },
                },
            )
        ],
        [(SQL, {"databaseVersion": "POSTGRES_17", "settings": {}})],
    ),
    # the gcp-dev profile before issue 14: one backup, one day of logs
    "GCP-SQL-009": (
        [
            (
                SQL,
                {
                    "settings": {
                        "backupConfiguration": {
                            "transactionLogRetentionDays": 1,
                            "backupRetentionSettings": {"retainedBackups": 2},
                        }
                    }
                },
            ),
            (SQL, {"settings": {"backupConfiguration": {"transactionLogRetentionDays": 6}}}),
        ],
        [
            (
                SQL,
                {
                    "settings": {
                        "backupConfiguration": {
                            "transactionLogRetentionDays": 1,
                            "backupRetentionSettings": {"retainedBackups": 1},
                        }
                    }
                },
            )
        ],
    ),
    "GCP-SQL-008": (
        [(SQL, {"settings": {"tier": "db-custom-2-7680"}})],
        [(SQL, {"settings": {"tier": "db-custom-96-624640"}})],
        PackConfig(allowed_instance_classes=("db-custom-2-7680",)),
    ),
    "K8S-001": ([deployment()], [deployment(ctx(runAsNonRoot=None, runAsUser=None))]),
    "K8S-002": ([deployment()], [deployment(ctx(allowPrivilegeEscalation=True))]),
    # the insecure default: a privileged pod
    "K8S-003": ([deployment()], [deployment(ctx(privileged=True))]),
    "K8S-004": ([deployment()], [deployment(ctx(readOnlyRootFilesystem=False))]),
    "K8S-005": ([deployment()], [deployment(ctx(capabilities={"drop": ["NET_RAW"]}))]),
    "K8S-006": (
        [deployment(ctx(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}))],
        [deployment(ctx(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}))],
    ),
    "K8S-007": ([deployment()], [deployment({"resources": {"requests": {"cpu": "1"}}})]),
    "K8S-008": (
        [deployment(volumes=[{"name": "tmp", "emptyDir": {}}])],
        [deployment(volumes=[{"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}}])],
    ),
    "K8S-009": ([deployment()], [deployment(hostNetwork=True)]),
    "K8S-010": (
        [deployment({"ports": [{"containerPort": 8000}]})],
        [deployment({"ports": [{"containerPort": 8000, "hostPort": 8000}]})],
    ),
    "K8S-011": ([deployment()], [deployment({"image": "nginx:latest"})]),
    "K8S-012": ([deployment()], [deployment({"readinessProbe": None})]),
    "K8S-013": ([deployment()], [deployment(ctx(seccompProfile={"type": "Unconfined"}))]),
    "K8S-014": (
        [
            ("kubernetes:core/v1:Service", {"spec": {"type": "ClusterIP"}}),
            (
                "kubernetes:core/v1:Service",
                {
                    "metadata": {
                        "annotations": {
                            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"
                        }
                    },
                    "spec": {"type": "LoadBalancer"},
                },
            ),
        ],
        [
            (
                "kubernetes:core/v1:Service",
                {"metadata": {"name": "db"}, "spec": {"type": "LoadBalancer"}},
            )
        ],
    ),
    "K8S-015": (
        [
            (
                "kubernetes:networking.k8s.io/v1:Ingress",
                {"spec": {"tls": [{"hosts": ["a"], "secretName": "a-tls"}]}},
            )
        ],
        [("kubernetes:networking.k8s.io/v1:Ingress", {"spec": {"rules": []}})],
    ),
    # a listener per TLS host, plain HTTP for the Gateway's own routes only; the insecure
    # variants: an HTTPS listener without a certificate, plain HTTP open to other namespaces
    "K8S-018": (
        [(GATEWAY, {"spec": {"listeners": [HTTP_LISTENER, HTTPS_LISTENER]}})],
        [
            (GATEWAY, {"spec": {"listeners": [{**HTTPS_LISTENER, "tls": {"mode": "Terminate"}}]}}),
            (
                GATEWAY,
                {
                    "spec": {
                        "listeners": [
                            {**HTTP_LISTENER, "allowedRoutes": {"namespaces": {"from": "All"}}}
                        ]
                    }
                },
            ),
        ],
    ),
    "K8S-019": (
        [
            (ROUTE, {"spec": {"rules": [{"filters": [REDIRECT]}]}}),
            (ROUTE, {"spec": {"rules": [{"filters": [HSTS], "backendRefs": [BACKEND]}]}}),
        ],
        [
            (ROUTE, {"spec": {"rules": [{"backendRefs": [BACKEND]}]}}),
            (
                ROUTE,
                {
                    "spec": {
                        "rules": [
                            {
                                "filters": [
                                    {
                                        "type": "ResponseHeaderModifier",
                                        "responseHeaderModifier": {
                                            "set": [
                                                {
                                                    "name": "Strict-Transport-Security",
                                                    "value": "max-age=300",
                                                }
                                            ]
                                        },
                                    }
                                ],
                                "backendRefs": [BACKEND],
                            }
                        ]
                    }
                },
            ),
        ],
    ),
    "K8S-020": (
        [
            (CLIENT_TRAFFIC, {"spec": {"tls": {"minVersion": "1.2"}}}),
            (CLIENT_TRAFFIC, {"spec": {"tls": {"minVersion": "1.3"}}}),
        ],
        [(CLIENT_TRAFFIC, {"spec": {"tls": {"minVersion": "1.0"}}})],
    ),
    "K8S-016": (
        [
            (
                NS,
                {
                    "metadata": {
                        "name": "apps",
                        "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
                    }
                },
            )
        ],
        [
            (
                NS,
                {
                    "metadata": {
                        "name": "apps",
                        "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
                    }
                },
            )
        ],
    ),
    "K8S-017": (
        [deployment()],
        [
            (
                DEPLOYMENT,
                {
                    "metadata": {"name": "x"},
                    "spec": {"template": {"spec": {"containers": [GOOD_CONTAINER]}}},
                },
            )
        ],
    ),
    "K8S-S01": (
        [
            deployment(),
            (
                "kubernetes:policy/v1:PodDisruptionBudget",
                {
                    "metadata": {"name": "api", "namespace": "apps"},
                    "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}},
                },
            ),
        ],
        [
            deployment(),
            (
                "kubernetes:policy/v1:PodDisruptionBudget",
                {
                    "metadata": {"name": "api", "namespace": "other"},
                    "spec": {"selector": {"matchLabels": {"app": "api"}}},
                },
            ),
        ],
    ),
    "K8S-S02": (
        [
            (NS, {"metadata": {"name": "apps"}}),
            (
                "kubernetes:networking.k8s.io/v1:NetworkPolicy",
                {
                    "metadata": {"name": "deny", "namespace": "apps"},
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
                },
            ),
        ],
        [
            (NS, {"metadata": {"name": "apps"}}),
            (
                "kubernetes:networking.k8s.io/v1:NetworkPolicy",
                {
                    "metadata": {"name": "web", "namespace": "apps"},
                    "spec": {
                        "podSelector": {"matchLabels": {"app": "web"}},
                        "policyTypes": ["Ingress"],
                    },
                },
            ),
        ],
    ),
    "TAG-001": (
        [("aws:ec2/vpc:Vpc", {"tags": {"component": "network"}}, {"defaultTags": TAGS})],
        [("aws:ec2/vpc:Vpc", {"tags": {"project": "dex"}}, {})],
    ),
    "TAG-002": (
        [
            (
                GCS,
                {"labels": {"component": "x"}},
                {
                    "defaultLabels": json.dumps(
                        {"project": "dex", "environment": "prod", "owner": "t"}
                    )
                },
            )
        ],
        [
            (
                SQL,
                {"settings": {"userLabels": {"component": "db"}}},
                {
                    "defaultLabels": json.dumps(
                        {"project": "dex", "environment": "prod", "owner": "t"}
                    )
                },
            )
        ],
    ),
}

_MORE = collected()
assert not set(_MORE) & set(CASES), set(_MORE) & set(CASES)
CASES.update(_MORE)


def build_doc(resources: Sequence[Res]) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for i, res in enumerate(resources):
        type_, props = res[0], res[1]
        entry: dict[str, Any] = {
            "urn": f"urn:pulumi:t::dex::{type_}::r{i}",
            "type": type_,
            "custom": True,
            "id": f"id{i}",
            "inputs": props,
            "outputs": {},
        }
        if len(res) == 3:
            provider = f"urn:pulumi:t::dex::pulumi:providers:x::p{i}"
            out.append(
                {
                    "urn": provider,
                    "type": "pulumi:providers:x",
                    "custom": True,
                    "id": f"pid{i}",
                    "inputs": res[2],
                }
            )
            entry["provider"] = f"{provider}::pid{i}"
        out.append(entry)
    return {"version": 3, "deployment": {"resources": out}}


RULES = {r.id: r for r in all_rules()}


def test_at_least_sixty_rules_with_complete_metadata() -> None:
    assert len(RULES) >= 60
    for rule in RULES.values():
        assert all((rule.title, rule.description, rule.remediation)), rule.id
        assert rule.severity in ("low", "medium", "high", "critical")
        assert set(rule.enforcement) == {"dev", "prod"}
        assert rule.types, rule.id
    security = [r for r in RULES.values() if r.severity in ("critical", "high")]
    assert all(
        r.enforcement["prod"] == "mandatory" for r in security if not r.id.startswith("AWS-EKS-004")
    )
    assert sum(1 for r in RULES.values() if r.frameworks) >= 40


def test_every_rule_has_fixtures() -> None:
    assert set(CASES) == set(RULES), (
        f"missing: {set(RULES) - set(CASES)}, extra: {set(CASES) - set(RULES)}"
    )


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_compliant_and_non_compliant(rule_id: str) -> None:
    good, bad, *rest = CASES[rule_id]
    config = rest[0] if rest else PackConfig()
    rule = RULES[rule_id]
    ok = check(build_doc(good), "prod", config, rules=[rule])
    assert ok.violations == (), [v.message for v in ok.violations]
    ko = check(build_doc(bad), "prod", config, rules=[rule])
    assert ko.violations, f"{rule_id} found nothing in its non-compliant fixture"
    assert {v.policy_id for v in ko.violations} == {rule_id}
    assert all(v.enforcement == rule.enforcement["prod"] for v in ko.violations)


def _policy_resource(i: int, res: Res) -> PolicyResource:
    provider = (
        PolicyProviderResource("pulumi:providers:x", res[2], f"urn:p{i}", f"p{i}")
        if len(res) == 3
        else None
    )
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    return PolicyResource(
        res[0], res[1], f"urn:pulumi:t::dex::{res[0]}::r{i}", f"r{i}", opts, provider, None, [], {}
    )


def _crossguard_messages(rule_id: str, resources: Sequence[Res], config: PackConfig) -> list[str]:
    (policy,) = [p for p in build_policies("prod") if p.name == rule_id.lower()]
    found: list[str] = []
    raw_config = {
        "requiredTags": list(config.required_tags),
        "allowedInstanceClasses": list(config.allowed_instance_classes),
    }
    report = lambda message, urn=None: found.append(message)  # noqa: E731
    if RULES[rule_id].scope == "stack":
        policy.validate(
            StackValidationArgs(
                [_policy_resource(i, r) for i, r in enumerate(resources)], raw_config
            ),
            report,
        )  # type: ignore[call-arg, arg-type]
    else:
        for i, res in enumerate(resources):
            pr = _policy_resource(i, res)
            args = ResourceValidationArgs(
                res[0], res[1], pr.urn, pr.name, pr.opts, pr.provider, raw_config
            )
            policy.validate(args, report)  # type: ignore[call-arg, arg-type]
    return found


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_crossguard_pack_agrees_with_the_runner(rule_id: str) -> None:
    good, bad, *rest = CASES[rule_id]
    config = rest[0] if rest else PackConfig()
    assert _crossguard_messages(rule_id, good, config) == []
    assert _crossguard_messages(rule_id, bad, config)


def test_crossguard_enforcement_follows_environment() -> None:
    dev = {p.name: p.enforcement_level.value for p in build_policies("dev")}
    prod = {p.name: p.enforcement_level.value for p in build_policies("prod")}
    assert dev["aws-rds-004"] == "advisory"
    assert prod["aws-rds-004"] == "mandatory"
    assert dev["aws-s3-007"] == prod["aws-s3-007"] == "mandatory"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_shipped_pack_config_files_match_the_rules(env: str) -> None:
    shipped = json.loads((ROOT / "policies" / "config" / f"{env}.json").read_text())
    assert shipped == pack_config_file(env)  # type: ignore[arg-type]


def test_unknown_values_defer_the_check() -> None:
    doc = build_doc([(RDS, {"storageEncrypted": UNKNOWN})])
    report = check(doc, "prod", rules=[RULES["AWS-RDS-001"]])
    assert report.violations == ()
    assert report.unknown == (("AWS-RDS-001", "urn:pulumi:t::dex::aws:rds/instance:Instance::r0"),)


# -- the shipped stacks ---------------------------------------------------------------------------


def _doc(plan: Plan) -> dict[str, Any]:
    return plan.document()


@pytest.mark.parametrize("stack", ["prod", "gcp-prod"])
def test_prod_stacks_have_no_mandatory_violation(plans: dict[str, Plan], stack: str) -> None:
    report = check(_doc(plans[stack]), "prod")
    assert report.mandatory == [], [f"{v.policy_id} {v.urn}: {v.message}" for v in report.mandatory]


# What dev accepts, and why (docs/policies.md lists the same findings with the reasons).
EVERYWHERE_ACCEPTED = {"HELM-008"}
"""Advisory findings every stack keeps, prod included (docs/policies.md says why)."""

DEV_ACCEPTED = {
    "dev": {"AWS-RDS-003", "AWS-RDS-004", "AWS-RDS-005", "AWS-REDIS-004", "AWS-S3-011"}
    | EVERYWHERE_ACCEPTED,
    "gcp-dev": EVERYWHERE_ACCEPTED
    | {
        "GCP-GKE-007",
        "GCP-REDIS-003",
        "GCP-SQL-005",
        "GCP-SQL-006",
        "GCP-GCS-005",
        "GCP-GCS-007",
        "GCP-SQL-012",
        "GCP-REDIS-004",
        "GCP-AR-002",
    },
}


@pytest.mark.parametrize("stack", ["prod", "gcp-prod"])
def test_prod_stacks_have_only_the_findings_every_stack_accepts(
    plans: dict[str, Plan], stack: str
) -> None:
    report = check(_doc(plans[stack]), "prod")
    assert {v.policy_id for v in report.violations} == EVERYWHERE_ACCEPTED
    assert all(v.enforcement == "advisory" for v in report.violations)
    readme = (ROOT / "docs" / "policies.md").read_text()
    for policy_id in EVERYWHERE_ACCEPTED:
        assert f"| every stack | `{policy_id}` |" in readme


@pytest.mark.parametrize("stack", ["dev", "gcp-dev"])
def test_dev_stacks_have_only_the_accepted_advisory_findings(
    plans: dict[str, Plan], stack: str
) -> None:
    report = check(_doc(plans[stack]), "dev")
    assert report.mandatory == []
    assert {v.policy_id for v in report.violations} == DEV_ACCEPTED[stack]
    readme = (ROOT / "docs" / "policies.md").read_text()
    for policy_id in DEV_ACCEPTED[stack]:
        assert f"`{policy_id}`" in readme, f"docs/policies.md: why is {policy_id} accepted in dev?"


def test_readme_lists_every_rule() -> None:
    readme = (ROOT / "docs" / "policies.md").read_text()
    for rule in RULES.values():
        assert f"| `{rule.id}` | {rule.title} |" in readme, rule.id


# -- the runner's formats and the CLI ------------------------------------------------------------

runner = CliRunner()


def test_cli_exit_codes_and_formats(tmp_path: Path) -> None:
    insecure = build_doc([("aws:s3/bucket:Bucket", {"bucket": "b", "acl": "public-read"})])
    path = tmp_path / "insecure.json"
    path.write_text(json.dumps(insecure))
    res = runner.invoke(app, ["policy", "check", str(path), "--env", "dev", "--format", "json"])
    assert res.exit_code == 1
    out = json.loads(res.output)
    assert {"policy_id", "severity", "enforcement", "urn", "type", "message"} <= set(
        out["violations"][0]
    )
    assert out["summary"]["mandatory"] >= 1
    assert out["summary"]["passed"] is False

    res = runner.invoke(app, ["policy", "check", "prod"])
    assert res.exit_code == 0, res.output
    assert "PASSED" in res.output

    res = runner.invoke(app, ["policy", "check", str(tmp_path / "missing.json")])
    assert res.exit_code == 2
    assert "no such file" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1}')
    res = runner.invoke(app, ["policy", "check", str(bad), "--env", "prod"])
    assert res.exit_code == 2
    assert "version 3" in res.output
    res = runner.invoke(app, ["policy", "check", str(ROOT / "tests/fixtures/export-small.json")])
    assert res.exit_code == 2
    assert "--env" in res.output
    res = runner.invoke(
        app, ["policy", "check", str(ROOT / "tests/fixtures/export-small.json"), "--env", "prod"]
    )
    assert (
        res.exit_code == 1
    )  # a real export: the RDS there has no Multi-AZ, no deletion protection
    assert "AWS-RDS-004" in res.output


def test_markdown_and_sarif() -> None:
    doc = build_doc([("aws:s3/bucket:Bucket", {"bucket": "b", "acl": "public-read"}), (RDS, {})])
    report = check(doc, "prod")
    md = render_markdown(report, "prod")
    assert md.startswith("### prod: ❌ failed")
    assert md.index("| severity | mandatory | advisory |") < md.index("<details>")
    assert len(render_markdown(report, limit=1200)) <= 1200
    sarif = json.loads(render_sarif(report, "Pulumi.prod.yaml"))
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert len(ids) == len(RULES)
    for result in run["results"]:
        assert ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("error", "warning")
        assert (
            result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            == "Pulumi.prod.yaml"
        )


def test_rules_enforced_always_include_public_exposure() -> None:
    for rule_id in (
        "AWS-S3-007",
        "AWS-EKS-001",
        "AWS-RDS-002",
        "AWS-REDIS-003",
        "K8S-003",
        "GCP-SQL-001",
    ):
        assert RULES[rule_id].enforcement == ALWAYS


def test_readme_rules_table_is_generated_from_the_rules() -> None:
    from policies.runner import rules_markdown

    readme = (ROOT / "docs" / "policies.md").read_text()
    start, end = "<!-- policy-rules -->\n", "<!-- /policy-rules -->"
    assert readme[readme.index(start) + len(start) : readme.index(end)] == rules_markdown(), (
        "docs/policies.md rules table is stale: paste `dex policy rules`"
    )


def test_resource_star_only_for_actions_without_resource_level_permissions() -> None:
    """EC2 Describe* (Karpenter's discovery) is authorized only on Resource "*": AWS-IAM-002
    accepts it there, and still flags any other action on "*"."""
    rule = RULES["AWS-IAM-002"]

    def role_policy(*actions: str) -> Res:
        stmt = {"Sid": "S", "Effect": "Allow", "Action": list(actions), "Resource": "*"}
        return ("aws:iam/rolePolicy:RolePolicy", {"policy": doc_policy(stmt)})

    fine = role_policy("ec2:DescribeSubnets", "ec2:DescribeImages", "pricing:GetProducts")
    assert check(build_doc([fine]), "prod", PackConfig(), rules=[rule]).violations == ()
    for bad in (
        role_policy("ec2:DescribeSubnets", "ec2:RunInstances"),
        role_policy("s3:GetObject"),
    ):
        assert check(build_doc([bad]), "prod", PackConfig(), rules=[rule]).violations
