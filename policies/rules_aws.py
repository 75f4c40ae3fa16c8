"""AWS rules: S3, VPC and security groups, EKS, RDS, ElastiCache, ECR, KMS, IAM, logs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from policies.model import (
    ADVISE,
    ALWAYS,
    PROD,
    WORLD,
    StackSubject,
    Subject,
    as_list,
    policy_statements,
    resource_rule,
    stack_rule,
)
from policies.rules_aws_access import open_to_everyone, public_acl_grants
from policies.rules_aws_lifecycle import eks_support_ended

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
SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
RDS = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
EKS = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ADDON = "aws:eks/addon:Addon"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
USER_POLICY = "aws:iam/userPolicy:UserPolicy"
GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"

ADMIN_PORTS = (22, 3389)
DATA_PORTS = (5432, 3306, 1433, 6379, 11211, 27017, 9200, 5439)
PUBLIC_WEB_PORTS = (80, 443)


def _names(resources: Iterable[Subject], attr: str = "bucket") -> set[str]:
    names = set()
    for r in resources:
        value = r.props.get(attr)
        if isinstance(value, str):
            names.add(value)
    return names


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


# -- network and security groups -------------------------------------------------------------------


def _covers(rule: dict[str, Any], port: int) -> bool:
    protocol = str(rule.get("protocol", rule.get("ipProtocol", "tcp")))
    if protocol in ("-1", "all"):
        return True
    low, high = rule.get("fromPort"), rule.get("toPort")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return False
    return low <= port <= high


def _world_ingress(r: Subject) -> Iterator[tuple[dict[str, Any], str]]:
    """(rule, cidr) for every ingress rule of a security group resource open to the world."""
    if r.type == SG:
        for rule in as_list(r.get("ingress")):
            for cidr in [*as_list(rule.get("cidrBlocks")), *as_list(rule.get("ipv6CidrBlocks"))]:
                if cidr in WORLD:
                    yield rule, cidr
    elif r.type == SG_RULE and r.get("type") == "ingress":
        props = dict(r.props)
        for cidr in [*as_list(props.get("cidrBlocks")), *as_list(props.get("ipv6CidrBlocks"))]:
            if cidr in WORLD:
                yield props, cidr
    elif r.type == SG_INGRESS:
        props = dict(r.props)
        for key in ("cidrIpv4", "cidrIpv6"):
            if props.get(key) in WORLD:
                yield props, str(props[key])


@resource_rule(
    "AWS-EC2-001",
    "No security group opens SSH or RDP to the internet",
    "critical",
    ALWAYS,
    [SG, SG_RULE, SG_INGRESS],
    "Remove the 0.0.0.0/0 rule; use SSM Session Manager.",
    ["CIS-AWS-1.4.0:5.2", "CIS-AWS-1.4.0:5.3"],
)
def ec2_admin_ports(r: Subject) -> Iterator[str]:
    for rule, cidr in _world_ingress(r):
        for port in ADMIN_PORTS:
            if _covers(rule, port):
                yield f"port {port} open to {cidr}"


@resource_rule(
    "AWS-EC2-002",
    "No security group opens database or cache ports to the internet",
    "critical",
    ALWAYS,
    [SG, SG_RULE, SG_INGRESS],
    "Allow the port only from the clients' security group.",
)
def ec2_data_ports(r: Subject) -> Iterator[str]:
    for rule, cidr in _world_ingress(r):
        for port in DATA_PORTS:
            if _covers(rule, port):
                yield f"port {port} open to {cidr}"


@resource_rule(
    "AWS-EC2-003",
    "Security groups open only web ports to the internet",
    "high",
    ALWAYS,
    [SG, SG_RULE, SG_INGRESS],
    "Only a public load balancer may accept 0.0.0.0/0, and only on 80/443.",
)
def ec2_world_only_web(r: Subject) -> Iterator[str]:
    for rule, cidr in _world_ingress(r):
        low, high = rule.get("fromPort"), rule.get("toPort")
        web = low == high and low in PUBLIC_WEB_PORTS
        if not web:
            protocol = rule.get("protocol", rule.get("ipProtocol"))
            yield f"ports {low}-{high} ({protocol}) open to {cidr}"


@stack_rule(
    "AWS-VPC-001",
    "Every VPC has flow logs",
    "medium",
    PROD,
    ["aws:ec2/vpc:Vpc", "aws:ec2/flowLog:FlowLog"],
    "Add an aws.ec2.FlowLog with traffic_type ALL for the VPC.",
    ["CIS-AWS-1.4.0:3.9"],
)
def vpc_flow_logs(stack: StackSubject) -> Iterator[tuple[str, str]]:
    logged = _names(stack.of_type("aws:ec2/flowLog:FlowLog"), "vpcId")
    for vpc in stack.of_type("aws:ec2/vpc:Vpc"):
        if vpc.props.get("id") not in logged:
            yield vpc.urn, "VPC has no flow log"


@stack_rule(
    "AWS-VPC-002",
    "Every VPC's default security group allows nothing",
    "medium",
    PROD,
    ["aws:ec2/vpc:Vpc", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"],
    "Manage the default SG with aws.ec2.DefaultSecurityGroup and no rules.",
    ["CIS-AWS-1.4.0:5.4"],
)
def vpc_default_sg(stack: StackSubject) -> Iterator[tuple[str, str]]:
    locked = _names(
        (
            d
            for d in stack.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
            if not d.props.get("ingress") and not d.props.get("egress")
        ),
        "vpcId",
    )
    for vpc in stack.of_type("aws:ec2/vpc:Vpc"):
        if vpc.props.get("id") not in locked:
            yield vpc.urn, "the VPC's default security group is not locked down"


@resource_rule(
    "AWS-EC2-004",
    "Subnets do not hand out public IPs",
    "medium",
    PROD,
    ["aws:ec2/subnet:Subnet"],
    "Set map_public_ip_on_launch to false; public reach goes through load balancers.",
)
def subnet_no_public_ip(r: Subject) -> Iterator[str]:
    if r.get("mapPublicIpOnLaunch") is True:
        yield "mapPublicIpOnLaunch is true"


@resource_rule(
    "AWS-EC2-005",
    "Instances and launch templates require IMDSv2",
    "high",
    ALWAYS,
    [LAUNCH_TEMPLATE, INSTANCE],
    "Set metadata_options.http_tokens to required.",
    ["CIS-AWS-3.0.0:5.6"],
)
def imdsv2(r: Subject) -> Iterator[str]:
    tokens = (r.get("metadataOptions") or {}).get("httpTokens")
    if tokens != "required":
        yield f"metadataOptions.httpTokens is {tokens!r}, must be required"


@resource_rule(
    "AWS-EC2-006",
    "Launch template volumes are encrypted",
    "high",
    ALWAYS,
    [LAUNCH_TEMPLATE],
    "Set ebs.encrypted on every block device mapping.",
    ["CIS-AWS-1.4.0:2.2.1"],
)
def ebs_encrypted(r: Subject) -> Iterator[str]:
    for mapping in as_list(r.get("blockDeviceMappings")):
        ebs = mapping.get("ebs") or {}
        if ebs and str(ebs.get("encrypted")).lower() != "true":
            yield f"{mapping.get('deviceName')} is not encrypted"


# -- EKS ----------------------------------------------------------------------------------------


@resource_rule(
    "AWS-EKS-001",
    "EKS API endpoint is private or restricted",
    "critical",
    ALWAYS,
    [EKS],
    "Set endpoint_public_access false, or list only your own ranges in public_access_cidrs.",
    ["CIS-EKS-1.4.0:5.4.1", "CIS-EKS-1.4.0:5.4.2"],
)
def eks_endpoint(r: Subject) -> Iterator[str]:
    vpc = r.get("vpcConfig") or {}
    public = vpc.get("endpointPublicAccess", True)  # AWS's default is public
    cidrs = as_list(vpc.get("publicAccessCidrs")) or ["0.0.0.0/0"]
    if public and any(c in WORLD for c in cidrs):
        yield "the Kubernetes API is reachable from the whole internet"


@resource_rule(
    "AWS-EKS-002",
    "EKS encrypts secrets with KMS",
    "high",
    ALWAYS,
    [EKS],
    "Add encryption_config with a KMS key and resources ['secrets'].",
    ["CIS-EKS-1.4.0:5.3.1"],
)
def eks_secrets_encryption(r: Subject) -> Iterator[str]:
    config = r.get("encryptionConfig") or {}
    if "secrets" not in as_list(config.get("resources")):
        yield "Kubernetes secrets are not envelope-encrypted"


@resource_rule(
    "AWS-EKS-003",
    "EKS logs every control-plane component",
    "medium",
    PROD,
    [EKS],
    "Enable api, audit, authenticator, controllerManager and scheduler logs.",
    ["CIS-EKS-1.4.0:2.1.1"],
)
def eks_logging(r: Subject) -> Iterator[str]:
    missing = {"api", "audit", "authenticator", "controllerManager", "scheduler"} - set(
        as_list(r.get("enabledClusterLogTypes"))
    )
    if missing:
        yield f"control-plane logs not enabled: {', '.join(sorted(missing))}"


@resource_rule(
    "AWS-EKS-004",
    "EKS runs a Kubernetes version AWS still supports",
    "high",
    ALWAYS,
    [EKS],
    "Pin `version` and upgrade before the end of extended support (AWS-EKS-007 warns at the "
    "end of standard support).",
    ["NIST-800-53:SI-2"],
    "Past the end of EKS extended support a version gets no patches and AWS upgrades the "
    "control plane on its own schedule; an unpinned version is whatever EKS defaults to on "
    "the day of creation. Dates: `policies/rules_aws_lifecycle.py` (EKS release calendar).",
)
def eks_version(r: Subject) -> Iterator[str]:
    version = str(r.get("version") or "")
    if not version:
        yield "version is not pinned: EKS picks its default on the day of creation"
        return
    ended = eks_support_ended(version, extended=True)
    if ended:
        yield f"Kubernetes {version} left EKS extended support on {ended}: no patches"


@resource_rule(
    "AWS-EKS-005",
    "Node groups pin their AMI type and allow no SSH",
    "medium",
    PROD,
    [NODE_GROUP],
    "Set ami_type explicitly; remove remote_access (use SSM).",
)
def eks_node_groups(r: Subject) -> Iterator[str]:
    if not r.get("amiType"):
        yield "amiType is not pinned"
    if r.get("remoteAccess"):
        yield "remoteAccess (SSH) is enabled"


@stack_rule(
    "AWS-EKS-006",
    "Pods get IAM roles of their own (EKS Pod Identity or IRSA), not the node's",
    "high",
    ALWAYS,
    [EKS, ADDON, "aws:iam/openIdConnectProvider:OpenIdConnectProvider"],
    "Install the eks-pod-identity-agent add-on and give each workload a role through an "
    "aws.eks.PodIdentityAssociation (or, for IRSA, an aws.iam.OpenIdConnectProvider for the "
    "cluster's issuer); never widen the node role.",
    ["CIS-EKS-1.4.0:5.2.1"],
)
def eks_pod_roles(stack: StackSubject) -> Iterator[tuple[str, str]]:
    agents = {
        a.props.get("clusterName")
        for a in stack.of_type(ADDON)
        if a.props.get("addonName") == "eks-pod-identity-agent"
    }
    issuers = _names(stack.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider"), "url")
    for cluster in stack.of_type(EKS):
        # an agent whose cluster name is not known yet (first preview) may be this cluster's
        if cluster.props.get("name") in agents or any(not isinstance(a, str) for a in agents):
            continue
        identities = cluster.props.get("identities")
        try:
            issuer = identities[0]["oidcs"][0]["issuer"]  # type: ignore[index]
        except (TypeError, KeyError, IndexError):
            issuer = None
        if issuer is not None and issuer in issuers:
            continue
        if issuer is None and issuers:
            continue
        yield (
            cluster.urn,
            "no eks-pod-identity-agent add-on and no IAM OIDC provider for the cluster: "
            "pods can only use the node's role",
        )


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


# -- ECR, KMS, logs -------------------------------------------------------------------------------


@resource_rule(
    "AWS-ECR-001",
    "ECR scans images on push",
    "high",
    ALWAYS,
    ["aws:ecr/repository:Repository"],
    "Set image_scanning_configuration.scan_on_push true.",
    ["CIS-EKS-1.4.0:5.1.1"],
)
def ecr_scan(r: Subject) -> Iterator[str]:
    if (r.get("imageScanningConfiguration") or {}).get("scanOnPush") is not True:
        yield "scanOnPush is not true"


@resource_rule(
    "AWS-ECR-002",
    "ECR tags are immutable",
    "medium",
    PROD,
    ["aws:ecr/repository:Repository"],
    "Set image_tag_mutability IMMUTABLE; deploy by digest.",
)
def ecr_immutable(r: Subject) -> Iterator[str]:
    if r.get("imageTagMutability", "MUTABLE") != "IMMUTABLE":
        yield "tags are mutable: a tag can be moved to another image"


@stack_rule(
    "AWS-ECR-003",
    "Every ECR repository has a lifecycle policy",
    "low",
    ADVISE,
    ["aws:ecr/repository:Repository", "aws:ecr/lifecyclePolicy:LifecyclePolicy"],
    "Add an aws.ecr.LifecyclePolicy keeping the newest images.",
)
def ecr_lifecycle(stack: StackSubject) -> Iterator[tuple[str, str]]:
    covered = _names(stack.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy"), "repository")
    for repo in stack.of_type("aws:ecr/repository:Repository"):
        if repo.props.get("name") not in covered:
            yield repo.urn, "repository has no lifecycle policy"


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


# -- IAM ----------------------------------------------------------------------------------------

IDENTITY_POLICIES = [POLICY, ROLE_POLICY, USER_POLICY, GROUP_POLICY]


def _identity_statements(r: Subject) -> Iterator[dict[str, Any]]:
    docs = [r.get("policy")]
    if r.type == ROLE:
        docs += [p.get("policy") for p in as_list(r.get("inlinePolicies"))]
    for doc in docs:
        yield from (dict(s) for s in policy_statements(doc))


@resource_rule(
    "AWS-IAM-001",
    "No IAM policy grants every action on every resource",
    "critical",
    ALWAYS,
    [*IDENTITY_POLICIES, ROLE],
    "Grant named actions on named resources.",
    ["CIS-AWS-1.4.0:1.16"],
)
def iam_no_admin(r: Subject) -> Iterator[str]:
    for stmt in _identity_statements(r):
        if stmt.get("Effect") != "Allow":
            continue
        if "*" in as_list(stmt.get("Action")) and "*" in as_list(stmt.get("Resource")):
            yield f"statement {stmt.get('Sid', '?')} allows *:* (full admin)"


RESOURCELESS_ACTIONS = re.compile(
    r"^(ec2:Describe[A-Za-z]+|iam:ListInstanceProfiles|pricing:GetProducts)$"
)
"""Actions IAM authorizes only on Resource "*" (no resource-level permissions: EC2 Describe*,
listing instance profiles, the Price List API). A statement of only these may name "*"."""


def resourceless(actions: Iterable[Any]) -> bool:
    """Every action is one IAM accepts only on Resource "*"."""
    names = [str(a) for a in actions]
    return bool(names) and all(RESOURCELESS_ACTIONS.match(a) for a in names)


@resource_rule(
    "AWS-IAM-002",
    "IAM policies name actions, not whole services",
    "high",
    PROD,
    [*IDENTITY_POLICIES, ROLE],
    "Replace `service:*` and `*` actions with the actions the "
    "workload calls; scope resources to ARNs (only actions without resource-level "
    "permissions, such as ec2:Describe*, may name Resource '*').",
)
def iam_no_wildcards(r: Subject) -> Iterator[str]:
    for stmt in _identity_statements(r):
        if stmt.get("Effect") != "Allow":
            continue
        wild = [a for a in as_list(stmt.get("Action")) if a == "*" or str(a).endswith(":*")]
        if wild:
            yield f"statement {stmt.get('Sid', '?')} allows {', '.join(map(str, wild))}"
        actions = as_list(stmt.get("Action"))
        if "*" in as_list(stmt.get("Resource")) and not wild and not resourceless(actions):
            yield f"statement {stmt.get('Sid', '?')} applies to Resource '*'"


@resource_rule(
    "AWS-IAM-003",
    "No long-lived IAM user credentials",
    "high",
    ALWAYS,
    [
        "aws:iam/accessKey:AccessKey",
        "aws:iam/serviceSpecificCredential:ServiceSpecificCredential",
        "aws:iam/signingCertificate:SigningCertificate",
    ],
    "Use roles (EKS Pod Identity, OIDC federation for CI) instead of users with access keys "
    "or service-specific credentials.",
    ["CIS-AWS-1.4.0:1.14"],
)
def iam_no_keys(r: Subject) -> Iterator[str]:
    kind = r.type.rsplit(":", 1)[-1]
    yield (
        f"an IAM {kind} of user {r.props.get('userName') or r.props.get('user') or '?'} is a "
        "long-lived credential"
    )


@resource_rule(
    "AWS-IAM-004",
    "Role trust policies are not open to everyone",
    "critical",
    ALWAYS,
    [ROLE],
    "Trust named services, accounts or one OIDC subject; web identity trust must pin `:sub`.",
)
def iam_trust(r: Subject) -> Iterator[str]:
    for stmt in policy_statements(r.get("assumeRolePolicy")):
        if stmt.get("Effect") != "Allow":
            continue
        principal = stmt.get("Principal")
        if principal == "*" or (
            isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))
        ):
            yield "any principal may assume the role"
        if "sts:AssumeRoleWithWebIdentity" in as_list(stmt.get("Action")):
            conditions = stmt.get("Condition") or {}
            keys = [k for block in conditions.values() if isinstance(block, dict) for k in block]
            if not any(k.endswith(":sub") for k in keys):
                yield (
                    "web identity trust does not pin the subject (:sub): any service account "
                    "could assume it"
                )


@resource_rule(
    "AWS-IAM-005",
    "No AdministratorAccess on roles",
    "critical",
    ALWAYS,
    [
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
    ],
    "Attach least-privilege policies instead.",
    ["CIS-AWS-1.4.0:1.16"],
)
def iam_no_admin_attachment(r: Subject) -> Iterator[str]:
    arn = str(r.get("policyArn", ""))
    if arn.endswith(":policy/AdministratorAccess"):
        yield "AdministratorAccess attached"
