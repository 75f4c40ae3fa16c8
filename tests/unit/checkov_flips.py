"""Insecure edits of converted resources, one per mapped type family (tests/unit/test_checkov.py):
each takes a resource of a synthesized stack, sets one property (in Pulumi's names and shapes,
so the edit goes through the conversion) and names the Checkov check that must go from pass
on the original to fail on the edit."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

Props = dict[str, Any]
ADMIN = {"Effect": "Allow", "Action": "*", "Resource": "*"}


class Flip(NamedTuple):
    stack: str
    type: str
    check: str
    edit: Callable[[Props], None]


def _set(path: str, value: Any) -> Callable[[Props], None]:
    """An edit setting `a.b.c` (creating the objects on the way) to `value`."""

    def edit(props: Props) -> None:
        *head, last = path.split(".")
        node = props
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value

    return edit


def _drop(key: str) -> Callable[[Props], None]:
    return lambda props: props.pop(key, None)


def _first(path: str, key: str, value: Any) -> Callable[[Props], None]:
    """Set `key` on the first element of the list at `path`."""

    def edit(props: Props) -> None:
        node: Any = props
        for part in path.split("."):
            node = node[part]
        node[0][key] = value

    return edit


FLIPS = [
    # AWS
    Flip(
        "prod",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "CKV_AWS_53",
        _set("blockPublicAcls", False),
    ),
    Flip("prod", "aws:rds/instance:Instance", "CKV_AWS_16", _set("storageEncrypted", False)),
    Flip(
        "prod",
        "aws:eks/cluster:Cluster",
        "CKV_AWS_39",
        _set("vpcConfig.endpointPublicAccess", True),
    ),
    Flip("prod", "aws:eks/cluster:Cluster", "CKV_AWS_58", _drop("encryptionConfig")),
    Flip("prod", "aws:kms/key:Key", "CKV_AWS_7", _set("enableKeyRotation", False)),
    Flip(
        "prod",
        "aws:elasticache/replicationGroup:ReplicationGroup",
        "CKV_AWS_30",
        _set("transitEncryptionEnabled", False),
    ),
    Flip(
        "prod", "aws:ecr/repository:Repository", "CKV_AWS_51", _set("imageTagMutability", "MUTABLE")
    ),
    Flip("prod", "aws:cloudwatch/logGroup:LogGroup", "CKV_AWS_158", _drop("kmsKeyId")),
    Flip(
        "prod",
        "aws:sqs/queue:Queue",
        "CKV_AWS_27",
        lambda p: [p.pop("kmsMasterKeyId", None), p.pop("sqsManagedSseEnabled", None)],
    ),
    Flip(
        "prod",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "CKV_AWS_79",
        _set("metadataOptions.httpTokens", "optional"),
    ),
    Flip(
        "prod",
        "aws:iam/rolePolicy:RolePolicy",
        "CKV_AWS_290",
        _set(
            "policy",
            json.dumps({"Version": "2012-10-17", "Statement": [ADMIN]}),
        ),
    ),
    # GCP
    Flip(
        "gcp-prod",
        "gcp:storage/bucket:Bucket",
        "CKV_GCP_29",
        _set("uniformBucketLevelAccess", False),
    ),
    Flip(
        "gcp-prod",
        "gcp:sql/databaseInstance:DatabaseInstance",
        "CKV_GCP_60",
        _set("settings.ipConfiguration.ipv4Enabled", True),
    ),
    Flip(
        "gcp-prod",
        "gcp:sql/databaseInstance:DatabaseInstance",
        "CKV_GCP_14",
        _set("settings.backupConfiguration.enabled", False),
    ),
    Flip("gcp-prod", "gcp:container/cluster:Cluster", "CKV_GCP_64", _drop("privateClusterConfig")),
    Flip(
        "gcp-prod",
        "gcp:container/nodePool:NodePool",
        "CKV_GCP_9",
        _set("management.autoRepair", False),
    ),
    Flip(
        "gcp-prod",
        "gcp:container/nodePool:NodePool",
        "CKV_GCP_68",
        _set("nodeConfig.shieldedInstanceConfig.enableSecureBoot", False),
    ),
    Flip(
        "gcp-prod",
        "gcp:compute/subnetwork:Subnetwork",
        "CKV_GCP_74",
        _set("privateIpGoogleAccess", False),
    ),
    Flip("gcp-prod", "gcp:compute/subnetwork:Subnetwork", "CKV_GCP_26", _drop("logConfig")),
    Flip("gcp-prod", "gcp:kms/cryptoKey:CryptoKey", "CKV_GCP_43", _drop("rotationPeriod")),
    Flip("gcp-prod", "gcp:redis/instance:Instance", "CKV_GCP_95", _set("authEnabled", False)),
    Flip(
        "gcp-prod",
        "gcp:redis/instance:Instance",
        "CKV_GCP_97",
        _set("transitEncryptionMode", "DISABLED"),
    ),
    Flip(
        "gcp-prod",
        "gcp:compute/firewall:Firewall",
        "CKV_GCP_2",
        lambda p: p.update(
            direction="INGRESS",
            sourceRanges=["0.0.0.0/0"],
            allows=[{"protocol": "tcp", "ports": ["22"]}],
            denies=[],
        ),
    ),
    Flip(
        "gcp-prod", "gcp:projects/iAMMember:IAMMember", "CKV_GCP_117", _set("role", "roles/owner")
    ),
    Flip(
        "gcp-prod", "gcp:artifactregistry/repository:Repository", "CKV_GCP_84", _drop("kmsKeyName")
    ),
    # Kubernetes
    Flip(
        "prod",
        "kubernetes:apps/v1:Deployment",
        "CKV_K8S_16",
        _first("spec.template.spec.containers", "securityContext", {"privileged": True}),
    ),
    Flip(
        "prod",
        "kubernetes:batch/v1:CronJob",
        "CKV_K8S_20",
        lambda p: p["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0][
            "securityContext"
        ].update(allowPrivilegeEscalation=True),
    ),
    Flip(
        "prod",
        "kubernetes:batch/v1:Job",
        "CKV_K8S_22",
        lambda p: p["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(
            readOnlyRootFilesystem=False
        ),
    ),
]
