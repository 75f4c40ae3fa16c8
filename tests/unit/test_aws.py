"""The AWS foundation under the mock engine: every property the AWS issue asks for, asserted
on the recorded plan, for dev and prod."""

from __future__ import annotations

import importlib
import inspect
import ipaddress
import json
from functools import cache
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.aws.iam import (
    access_warning,
    bucket_access,
    pod_identity_trust,
    role_arn_of_caller,
)
from components.aws.network import plan_subnets
from components.contracts import BUCKET_PURPOSES, WORKLOAD_SPECS, BucketGrant
from contracts.deployment import UNKNOWN, Plan, Resource, is_secret, parse_plan
from policies.rules_aws import resourceless
from tests.conftest import Synth, named, only
from toolchain.mocks import DexMocks
from toolchain.synth import synthesize

pytestmark = pytest.mark.unit

ENVS = ("dev", "prod")


def children_of(plan: Plan, component_type: str) -> list[Resource]:
    parents = {r.urn for r in plan if r.type == component_type}
    return [r for r in plan if r.parent in parents]


# -- network ----------------------------------------------------------------


@given(
    prefix=st.integers(min_value=16, max_value=20),
    base=st.integers(min_value=0, max_value=2**32 - 1),
    zones=st.integers(min_value=1, max_value=4),
)
def test_subnet_plan_is_disjoint_and_inside_the_vpc(prefix: int, base: int, zones: int) -> None:
    net = ipaddress.IPv4Network((base, prefix), strict=False)
    layout = plan_subnets(str(net), zones)
    blocks = [ipaddress.IPv4Network(b) for tier in layout.values() for b in tier]
    assert len(blocks) == 3 * zones
    for i, a in enumerate(blocks):
        assert a.subnet_of(net)
        for b in blocks[i + 1 :]:
            assert not a.overlaps(b)


def test_subnet_plan_refuses_small_ranges() -> None:
    with pytest.raises(ValueError, match="/20 or larger"):
        plan_subnets("10.0.0.0/22", 3)


@pytest.mark.parametrize(("env", "nats"), [("dev", 1), ("prod", 3)])
def test_network_spans_three_zones_with_nat_per_profile(
    plans: dict[str, Plan], env: str, nats: int
) -> None:
    plan = plans[env]
    subnets = plan.of_type("aws:ec2/subnet:Subnet")
    tiers: dict[str, set[str]] = {}
    for s in subnets:
        tiers.setdefault(s.inputs["tags"]["tier"], set()).add(s.inputs["availabilityZone"])
    assert tiers == {
        t: {"eu-west-1a", "eu-west-1b", "eu-west-1c"} for t in ("public", "private", "database")
    }
    assert len(plan.of_type("aws:ec2/natGateway:NatGateway")) == nats
    assert not any(s.inputs["mapPublicIpOnLaunch"] for s in subnets)
    # EKS load balancer discovery tags
    for s in subnets:
        tier = s.inputs["tags"]["tier"]
        if tier == "public":
            assert s.inputs["tags"]["kubernetes.io/role/elb"] == "1"
        if tier == "private":
            assert s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1"
        if tier != "database":
            assert s.inputs["tags"][f"kubernetes.io/cluster/dex-{env}-eks"] == "shared"


def test_private_routes_use_their_zones_nat_in_prod(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    nat_ids = {n.id for n in plan.of_type("aws:ec2/natGateway:NatGateway")}
    used = {
        rt.inputs["routes"][0]["natGatewayId"]
        for rt in named(plan, "aws:ec2/routeTable:RouteTable", "private-rt")
    }
    assert used == nat_ids


def test_database_subnets_have_no_route_out(plans: dict[str, Plan]) -> None:
    rt = only(plans["prod"], "aws:ec2/routeTable:RouteTable", "database-rt")
    assert rt.inputs.get("routes", []) == []


@pytest.mark.parametrize("env", ENVS)
def test_flow_logs_and_endpoints(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env]
    flow = only(plan, "aws:ec2/flowLog:FlowLog")
    assert flow.inputs["trafficType"] == "ALL"
    group = only(plan, "aws:cloudwatch/logGroup:LogGroup", "flow-logs")
    assert group.inputs["retentionInDays"] == (14 if env == "dev" else 365)
    endpoints = {
        e.inputs["serviceName"].rsplit(".", 2)[-2:][-1]
        if e.inputs["vpcEndpointType"] == "Gateway"
        else e.inputs["serviceName"].split("eu-west-1.", 1)[1]: e.inputs["vpcEndpointType"]
        for e in plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert endpoints == {
        "s3": "Gateway",
        "ecr.api": "Interface",
        "ecr.dkr": "Interface",
        "sts": "Interface",
        "logs": "Interface",
    }
    default_sg = only(plan, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default_sg.inputs.get("ingress", []) == []
    assert default_sg.inputs.get("egress", []) == []


# -- cluster ----------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_eks_is_private_encrypted_and_logged(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env]
    eks = only(plan, "aws:eks/cluster:Cluster")
    assert eks.inputs["version"] == "1.35"
    vpc = eks.inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in vpc
    key = only(plan, "aws:kms/key:Key", "cluster-secrets")
    assert eks.inputs["encryptionConfig"] == {
        "provider": {"keyArn": key.outputs["arn"]},
        "resources": ["secrets"],
    }
    assert key.inputs["enableKeyRotation"] is True
    assert set(eks.inputs["enabledClusterLogTypes"]) == {
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    }
    private = {
        s.id for s in plan.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "private"
    }
    assert set(vpc["subnetIds"]) == private
    log_group = only(plan, "aws:cloudwatch/logGroup:LogGroup", "control-plane")
    assert log_group.inputs["name"] == f"/aws/eks/dex-{env}-eks/cluster"
    assert log_group.urn in eks.dependencies  # retention set before EKS creates the group


def test_public_endpoint_only_for_listed_cidrs(synth: Synth) -> None:
    plan = synth("dev", cluster={"public_access_cidrs": ["203.0.113.0/24"]})
    vpc = only(plan, "aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert vpc["endpointPrivateAccess"] is True


@pytest.mark.parametrize("env", ENVS)
def test_one_managed_system_node_group_owned_by_the_program(
    plans: dict[str, Plan], env: str
) -> None:
    plan = plans[env]
    (group,) = plan.of_type("aws:eks/nodeGroup:NodeGroup")  # batch capacity is Karpenter's
    assert group.inputs["labels"] == {"dex.io/pool": "system"}
    assert group.inputs["capacityType"] == "ON_DEMAND"
    assert group.inputs.get("taints", []) == []
    assert group.inputs["amiType"] == "AL2023_x86_64_STANDARD"  # pinned, never the default
    scaling = group.inputs["scalingConfig"]
    assert scaling["minSize"] <= scaling["desiredSize"] <= scaling["maxSize"]
    # no autoscaler resizes the managed group, so the program owns its size
    assert "scalingConfig.desiredSize" not in (group.raw.get("ignoreChanges") or [])
    for lt in plan.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        meta = lt.inputs["metadataOptions"]
        assert meta["httpTokens"] == "required"
        assert meta["httpPutResponseHopLimit"] == 1
        ebs = lt.inputs["blockDeviceMappings"][0]["ebs"]
        assert ebs["encrypted"] == "true"
        assert ebs["volumeType"] == "gp3"
    if env == "prod":
        assert scaling["minSize"] >= 3


def _addons(plan: Plan) -> dict[str, Resource]:
    return {a.inputs["addonName"]: a for a in plan.of_type("aws:eks/addon:Addon")}


@pytest.mark.parametrize("env", ENVS)
def test_addons_install_in_node_order(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env]
    addons = _addons(plan)
    assert set(addons) == {
        "vpc-cni",
        "kube-proxy",
        "eks-pod-identity-agent",
        "coredns",
        "aws-ebs-csi-driver",
        "metrics-server",
    }
    group = only(plan, "aws:eks/nodeGroup:NodeGroup")
    # the node's DaemonSets exist before the first node boots ...
    for name in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
        assert addons[name].urn in group.dependencies, name
        assert group.urn not in addons[name].dependencies, name
    # ... and what runs as a Deployment waits for the node
    for name in ("coredns", "aws-ebs-csi-driver", "metrics-server"):
        assert group.urn in addons[name].dependencies, name
    assert addons["eks-pod-identity-agent"].urn in addons["aws-ebs-csi-driver"].dependencies


@pytest.mark.parametrize("env", ENVS)
def test_vpc_cni_enforces_network_policies(plans: dict[str, Plan], env: str) -> None:
    cni = _addons(plans[env])["vpc-cni"]
    assert json.loads(cni.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}


@pytest.mark.parametrize("env", ENVS)
def test_ebs_csi_driver_uses_pod_identity_and_the_volume_key(
    plans: dict[str, Plan], env: str
) -> None:
    plan = plans[env]
    ebs = _addons(plan)["aws-ebs-csi-driver"]
    role = only(plan, "aws:iam/role:Role", "ebs-csi-role")
    assert ebs.inputs["podIdentityAssociations"] == [
        {"roleArn": role.outputs["arn"], "serviceAccount": "ebs-csi-controller-sa"}
    ]
    assert "serviceAccountRoleArn" not in ebs.inputs
    assert json.loads(role.inputs["assumeRolePolicy"]) == json.loads(pod_identity_trust())
    attached = {
        a.inputs["policyArn"]
        for a in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == role.outputs["name"]
    }
    assert attached == {"arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"}
    key = only(plan, "aws:kms/key:Key", "cluster-volumes")
    assert key.inputs["enableKeyRotation"] is True
    policy = only(plan, "aws:iam/rolePolicy:RolePolicy", "ebs-csi-volume-key")
    by_sid = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert by_sid["GrantsForEbs"]["Resource"] == key.outputs["arn"]
    assert by_sid["GrantsForEbs"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert "kms:GenerateDataKey*" in by_sid["UseVolumeKey"]["Action"]


def test_no_oidc_provider_once_everything_uses_pod_identity(plans: dict[str, Plan]) -> None:
    for env in ENVS:
        assert plans[env].of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider") == []


_ADMIN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
_VIEW = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy"


def _access(plan: Plan) -> dict[str, str]:
    """principal ARN -> associated access policy ARN."""
    entries = {e.inputs["principalArn"]: e for e in plan.of_type("aws:eks/accessEntry:AccessEntry")}
    out = {}
    for assoc in plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        assert assoc.inputs["accessScope"] == {"type": "cluster"}
        assert entries[assoc.inputs["principalArn"]].inputs["type"] == "STANDARD"
        out[assoc.inputs["principalArn"]] = assoc.inputs["policyArn"]
    return out


def test_access_is_by_explicit_entries_only(plans: dict[str, Plan]) -> None:
    eks = only(plans["dev"], "aws:eks/cluster:Cluster")
    assert eks.inputs["accessConfig"] == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": False,
    }
    # no admin roles configured: the principal running `pulumi up` administers the cluster
    assert _access(plans["dev"]) == {"arn:aws:iam::123456789012:role/deployer": _ADMIN}


def test_configured_admin_and_view_roles_get_access_entries(synth: Synth) -> None:
    deploy = "arn:aws:iam::123456789012:role/dex-deploy"
    drift = "arn:aws:iam::123456789012:role/ci/dex-drift"
    plan = synth("prod", cluster={"admin_role_arns": [deploy], "view_role_arns": [drift]})
    assert _access(plan) == {deploy: _ADMIN, drift: _VIEW}
    provider = only(plan, "pulumi:providers:kubernetes")
    ready = set(provider.dependencies)
    # the Kubernetes provider authenticates as the deploy role: its access must exist first
    for assoc in plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        if assoc.inputs["principalArn"] == deploy:
            assert assoc.urn in ready


def test_kubernetes_provider_waits_for_nodes_and_addons(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    provider = only(plan, "pulumi:providers:kubernetes")
    needed = {only(plan, "aws:eks/nodeGroup:NodeGroup").urn} | {
        a.urn for a in plan.of_type("aws:eks/addon:Addon")
    }
    assert needed <= set(provider.dependencies)


# -- Karpenter ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "batch_capacity"), [("dev", ["on-demand"]), ("prod", ["spot", "on-demand"])]
)
def test_karpenter_aws_side(plans: dict[str, Plan], env: str, batch_capacity: list[str]) -> None:
    plan = plans[env]
    cluster_name = f"dex-{env}-eks"
    controller = only(plan, "aws:iam/role:Role", "karpenter-controller")
    assert json.loads(controller.inputs["assumeRolePolicy"]) == json.loads(pod_identity_trust())
    association = only(
        plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "karpenter-controller"
    )
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == (
        "kube-system",
        "karpenter",
    )
    assert association.inputs["roleArn"] == controller.outputs["arn"]
    node_role = only(plan, "aws:iam/role:Role", "karpenter-node-role")
    entry = only(plan, "aws:eks/accessEntry:AccessEntry", "karpenter-node")
    assert entry.inputs["type"] == "EC2_LINUX"
    assert entry.inputs["principalArn"] == node_role.outputs["arn"]
    profile = only(plan, "aws:iam/instanceProfile:InstanceProfile")
    assert profile.inputs["role"] == node_role.outputs["name"]
    queue = only(plan, "aws:sqs/queue:Queue")
    assert queue.inputs["sqsManagedSseEnabled"] is True
    queue_policy = json.loads(only(plan, "aws:sqs/queuePolicy:QueuePolicy").inputs["policy"])
    assert {"aws:SecureTransport": "false"} in [
        s.get("Condition", {}).get("Bool") for s in queue_policy["Statement"]
    ]
    rules = {
        json.loads(r.inputs["eventPattern"])["detail-type"][0]
        for r in plan.of_type("aws:cloudwatch/eventRule:EventRule")
    }
    assert rules == {
        "AWS Health Event",
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification",
        "EC2 Capacity Reservation Instance Interruption Warning",
    }
    targets = plan.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert {t.inputs["arn"] for t in targets} == {queue.outputs["arn"]}
    policy = json.loads(
        only(plan, "aws:iam/rolePolicy:RolePolicy", "karpenter-controller").inputs["policy"]
    )
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["AllowPassingInstanceRole"]["Resource"] == node_role.outputs["arn"]
    assert by_sid["AllowInterruptionQueueActions"]["Resource"] == queue.outputs["arn"]
    assert by_sid["AllowScopedDeletion"]["Condition"]["StringEquals"] == {
        f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"
    }
    # IAM's limit on a role's inline policies (10,240 characters, whitespace excluded)
    assert len(json.dumps(policy, separators=(",", ":"))) < 10_240
    private = [
        s for s in plan.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "private"
    ]
    assert all(s.inputs["tags"]["karpenter.sh/discovery"] == cluster_name for s in private)
    sg_tag = only(plan, "aws:ec2/tag:Tag", "karpenter-discovery")
    eks = only(plan, "aws:eks/cluster:Cluster")
    assert sg_tag.inputs == {
        "key": "karpenter.sh/discovery",
        "value": cluster_name,
        "resourceId": eks.outputs["vpcConfig"]["clusterSecurityGroupId"],
    }
    del batch_capacity  # pools are asserted on the component (test below)


def test_karpenter_spec_for_the_kubernetes_side() -> None:
    from components.aws.karpenter import CHART, pools
    from components.contracts import NodePoolArgs

    system = NodePoolArgs(["m6i.large"], 3, 3, 6, 100, False)
    batch = NodePoolArgs(["m6i.2xlarge", "m5.2xlarge"], 0, 0, 10, 200, True)
    sys_pool, batch_pool = pools(system, batch)
    assert CHART == "oci://public.ecr.aws/karpenter/karpenter"
    assert (sys_pool.name, sys_pool.capacity_types, sys_pool.max_nodes) == (
        "system",
        ("on-demand",),
        3,
    )
    assert batch_pool.capacity_types == ("spot", "on-demand")
    assert batch_pool.taints == (("dex.io/pool", "batch", "NoSchedule"),)
    assert batch_pool.labels == {"dex.io/pool": "batch"}
    assert batch_pool.instance_types == ("m6i.2xlarge", "m5.2xlarge")
    on_demand = pools(system, NodePoolArgs(["m6i.large"], 0, 0, 3, 100, False))[1]
    assert on_demand.capacity_types == ("on-demand",)


def test_kubernetes_provider_takes_the_cluster_kubeconfig(plans: dict[str, Plan]) -> None:
    provider = only(plans["prod"], "pulumi:providers:kubernetes")
    assert is_secret(provider.inputs["kubeconfig"])
    eks = only(plans["prod"], "aws:eks/cluster:Cluster")
    assert provider.raw["propertyDependencies"]["kubeconfig"] == [eks.urn]
    assert provider.inputs["enableServerSideApply"] == "true"


class _FirstPreviewMocks(DexMocks):
    """A first `pulumi preview`: the cluster does not exist, so its endpoint and CA are unknown."""

    def new_resource(self, args: Any) -> tuple[str | None, dict[str, Any]]:
        rid, state = super().new_resource(args)
        if args.typ == "aws:eks/cluster:Cluster":
            state = {
                **state,
                "endpoint": UNKNOWN,
                "certificateAuthority": UNKNOWN,
                "identities": UNKNOWN,
            }
        return rid, state


def test_preview_before_the_cluster_exists_keeps_the_kubernetes_provider_working() -> None:
    plan = parse_plan(synthesize("dev", mocks=_FirstPreviewMocks("dev")))
    provider = only(plan, "pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"]["ciphertext"] == "[unknown]"


# -- object store ----------------------------------------------------------------


def _bucket_children(plan: Plan, type_: str) -> dict[str, Resource]:
    buckets = {b.id: b.inputs["tags"]["purpose"] for b in plan.of_type("aws:s3/bucket:Bucket")}
    return {buckets[r.inputs["bucket"]]: r for r in plan.of_type(type_)}


@pytest.mark.parametrize("env", ENVS)
def test_every_bucket_is_encrypted_versioned_private_and_tls_only(
    plans: dict[str, Plan], env: str
) -> None:
    plan = plans[env]
    purposes = {b.inputs["tags"]["purpose"] for b in plan.of_type("aws:s3/bucket:Bucket")}
    expected = set(BUCKET_PURPOSES) | ({"access-logs"} if env == "prod" else set())
    assert purposes == expected
    key_arn = only(plan, "aws:kms/key:Key", "storage-key").outputs["arn"]
    sse = _bucket_children(
        plan,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )
    versioning = _bucket_children(plan, "aws:s3/bucketVersioning:BucketVersioning")
    blocks = _bucket_children(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    ownership = _bucket_children(plan, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    policies = _bucket_children(plan, "aws:s3/bucketPolicy:BucketPolicy")
    for purpose in expected:
        rule = sse[purpose].inputs["rules"][0]["applyServerSideEncryptionByDefault"]
        if purpose == "access-logs":
            assert rule == {"sseAlgorithm": "AES256"}  # what S3 log delivery supports
        else:
            assert rule == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key_arn}
        assert versioning[purpose].inputs["versioningConfiguration"]["status"] == "Enabled"
        assert all(
            blocks[purpose].inputs[k] is True
            for k in (
                "blockPublicAcls",
                "blockPublicPolicy",
                "ignorePublicAcls",
                "restrictPublicBuckets",
            )
        )
        assert ownership[purpose].inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"
        doc = json.loads(policies[purpose].inputs["policy"])
        deny = [s for s in doc["Statement"] if s["Effect"] == "Deny"]
        assert {"aws:SecureTransport": "false"} in [s["Condition"].get("Bool") for s in deny]
        assert blocks[purpose].urn in policies[purpose].dependencies


def test_no_deprecated_bucket_resources(plans: dict[str, Plan]) -> None:
    for plan in (plans["dev"], plans["prod"]):
        assert not [r.type for r in plan if r.type.startswith("aws:s3/") and "V2" in r.type]


@pytest.mark.parametrize("env", ENVS)
def test_lifecycle_per_layer(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env]
    rules = {
        p: {rule["id"]: rule for rule in r.inputs["rules"]}
        for p, r in _bucket_children(
            plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
        ).items()
    }
    raw = rules["raw"]["tier-raw"]["transitions"]
    assert [t["storageClass"] for t in raw] == ["STANDARD_IA", "GLACIER_IR"]
    assert raw[0]["days"] == 30
    assert raw[1]["days"] == (90 if env == "dev" else 180)
    for purpose, by_id in rules.items():
        assert by_id["expire-noncurrent-versions"]["noncurrentVersionExpiration"][
            "noncurrentDays"
        ] == (7 if env == "dev" else 90), purpose
        assert "abort-incomplete-uploads" in by_id
    assert "expire-logs" in rules["airflow-logs"]


def test_access_logging_only_in_prod(plans: dict[str, Plan]) -> None:
    assert plans["dev"].of_type("aws:s3/bucketLogging:BucketLogging") == []
    logging = _bucket_children(plans["prod"], "aws:s3/bucketLogging:BucketLogging")
    assert set(logging) == set(BUCKET_PURPOSES)
    log_bucket = next(
        b
        for b in plans["prod"].of_type("aws:s3/bucket:Bucket")
        if b.inputs["tags"]["purpose"] == "access-logs"
    )
    assert {r.inputs["targetBucket"] for r in logging.values()} == {log_bucket.id}


# -- database ----------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_rds_is_private_encrypted_and_tls_only(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env]
    rds = only(plan, "aws:rds/instance:Instance")
    i = rds.inputs
    assert i["engine"] == "postgres"
    assert i["engineVersion"] == "17"
    assert i["publiclyAccessible"] is False
    assert i["storageEncrypted"] is True
    assert i["kmsKeyId"] == only(plan, "aws:kms/key:Key", "database-key").outputs["arn"]
    assert i["iamDatabaseAuthenticationEnabled"] is True
    assert is_secret(i["password"])
    subnet_group = only(plan, "aws:rds/subnetGroup:SubnetGroup")
    database_subnets = {
        s.id
        for s in plan.of_type("aws:ec2/subnet:Subnet")
        if s.inputs["tags"]["tier"] == "database"
    }
    assert set(subnet_group.inputs["subnetIds"]) == database_subnets
    assert i["dbSubnetGroupName"] == subnet_group.outputs["name"]
    params = only(plan, "aws:rds/parameterGroup:ParameterGroup")
    assert params.inputs["family"] == "postgres17"
    settings = {p["name"]: p["value"] for p in params.inputs["parameters"]}
    assert settings["rds.force_ssl"] == "1"
    assert settings["ssl_min_protocol_version"] == "TLSv1.2"
    assert i["parameterGroupName"] == params.outputs["name"]


def test_rds_profiles(plans: dict[str, Plan]) -> None:
    dev = only(plans["dev"], "aws:rds/instance:Instance")
    prod = only(plans["prod"], "aws:rds/instance:Instance")
    assert (dev.inputs["multiAz"], prod.inputs["multiAz"]) == (False, True)
    assert (dev.inputs["deletionProtection"], prod.inputs["deletionProtection"]) == (False, True)
    assert dev.inputs["skipFinalSnapshot"] is True
    assert prod.inputs["skipFinalSnapshot"] is False
    assert prod.inputs["finalSnapshotIdentifier"] == "dex-prod-postgres-final"
    assert (dev.inputs["backupRetentionPeriod"], prod.inputs["backupRetentionPeriod"]) == (1, 14)
    assert prod.inputs["performanceInsightsEnabled"] is True
    assert (dev.protect, prod.protect) == (False, True)


def test_app_database_passwords_are_generated_secrets(plans: dict[str, Plan]) -> None:
    names = {r.name for r in plans["prod"].of_type("random:index/randomPassword:RandomPassword")}
    assert {
        "dex-prod-database-admin-password",
        "dex-prod-database-mlflow-password",
        "dex-prod-database-airflow-password",
    } <= names


# -- cache ----------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_redis_tls_auth_and_ha(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env]
    rg = only(plan, "aws:elasticache/replicationGroup:ReplicationGroup").inputs
    assert rg["transitEncryptionEnabled"] is True
    assert rg["transitEncryptionMode"] == "required"
    assert rg["atRestEncryptionEnabled"] is True
    assert is_secret(rg["authToken"])
    ha = env == "prod"
    assert rg["automaticFailoverEnabled"] is ha
    assert rg["multiAzEnabled"] is ha
    assert rg["numCacheClusters"] == (2 if ha else 1)


@pytest.mark.parametrize("env", ENVS)
def test_database_and_cache_ports_open_only_to_the_cluster(
    plans: dict[str, Plan], env: str
) -> None:
    plan = plans[env]
    cluster_sg = only(plan, "aws:eks/cluster:Cluster").outputs["vpcConfig"][
        "clusterSecurityGroupId"
    ]
    rules = plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert {(r.inputs["fromPort"], r.inputs["referencedSecurityGroupId"]) for r in rules} == {
        (5432, cluster_sg),
        (6379, cluster_sg),
    }
    for r in rules:
        assert "cidrIpv4" not in r.inputs
    for sg in plan.of_type("aws:ec2/securityGroup:SecurityGroup"):
        for rule in sg.inputs.get("ingress", []):
            assert "0.0.0.0/0" not in rule.get("cidrBlocks", []), sg.name


# -- registry and identity ----------------------------------------------------------------


@pytest.mark.parametrize(("env", "keep"), [("dev", 10), ("prod", 30)])
def test_ecr_repositories(plans: dict[str, Plan], env: str, keep: int) -> None:
    plan = plans[env]
    repos = plan.of_type("aws:ecr/repository:Repository")
    assert {r.inputs["name"] for r in repos} == {
        f"dex-{env}/{a}" for a in ("api", "pipelines", "training")
    }
    for r in repos:
        assert r.inputs["imageTagMutability"] == "IMMUTABLE"
        assert r.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    for lp in plan.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy"):
        rules = json.loads(lp.inputs["policy"])["rules"]
        assert rules[-1]["selection"]["countNumber"] == keep


@pytest.mark.parametrize("env", ENVS)
def test_one_role_per_workload_trusted_only_by_its_service_account(
    plans: dict[str, Plan], env: str
) -> None:
    plan = plans[env]
    roles = {
        r.inputs["tags"]["workload"]: r
        for r in plan.of_type("aws:iam/role:Role")
        if "workload" in r.inputs["tags"]
    }
    assert set(roles) == {w.name for w in WORKLOAD_SPECS}
    eks = only(plan, "aws:eks/cluster:Cluster")
    associations = {
        a.inputs["tags"]["workload"]: a
        for a in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if "workload" in a.inputs.get("tags", {})
    }
    assert set(associations) == set(roles)
    for spec in WORKLOAD_SPECS:
        doc = json.loads(roles[spec.name].inputs["assumeRolePolicy"])
        (stmt,) = doc["Statement"]
        assert stmt["Principal"] == {"Service": "pods.eks.amazonaws.com"}
        assert stmt["Action"] == ["sts:AssumeRole", "sts:TagSession"]
        # which pod gets the role is the association's, and only this one names it
        association = associations[spec.name].inputs
        assert association["clusterName"] == eks.outputs["name"]
        assert (association["namespace"], association["serviceAccount"]) == (
            spec.namespace,
            spec.service_account,
        )
        assert association["roleArn"] == roles[spec.name].outputs["arn"]


def test_contract_bindings_ready_and_storage_class(
    synth: Synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What components/k8s receives: no annotations (Pod Identity needs none), the
    associations as bindings, the nodes/add-ons/access as `ready`, the gp3 StorageClass."""
    from stacks.platform import build_platform

    seen: dict[str, Any] = {}

    def spy(cfg: Any, **kw: Any) -> dict[str, Any]:
        seen.update(kw)
        return build_platform(cfg, **kw)

    monkeypatch.setattr("stacks.aws.build_platform", spy)
    synth("dev")
    identity = seen["identity"]
    assert {type(b).__name__ for b in identity.bindings} == {"PodIdentityAssociation"}
    assert len(identity.bindings) == len(WORKLOAD_SPECS)
    assert set(identity.service_account_annotations) == {w.name for w in WORKLOAD_SPECS}
    cluster = seen["cluster"]
    kinds = [type(r).__name__ for r in cluster.ready]
    assert kinds.count("NodeGroup") == 1
    assert kinds.count("Addon") == 6
    assert {"AccessEntry", "AccessPolicyAssociation", "PodIdentityAssociation"} <= set(kinds)
    storage = cluster.default_storage_class
    assert (storage.name, storage.provisioner) == ("gp3", "ebs.csi.aws.com")
    assert storage.parameters == {
        "type": "gp3",
        "encrypted": "true",
        "kmsKeyId": "arn:aws:kms:eu-west-1:123456789012:alias/dex-dev-cluster-volumes",
    }


@pytest.mark.parametrize("env", ENVS)
def test_workload_policies_are_least_privilege(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env]
    arns = {
        b.inputs["tags"]["purpose"]: b.outputs["arn"] for b in plan.of_type("aws:s3/bucket:Bucket")
    }
    lake_key = only(plan, "aws:kms/key:Key", "storage-key").outputs["arn"]
    specs = {s.name: s for s in WORKLOAD_SPECS}
    for policy in plan.of_type("aws:iam/rolePolicy:RolePolicy"):
        doc = json.loads(policy.inputs["policy"])
        for stmt in doc["Statement"]:
            actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
            resources = (
                stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
            )
            assert stmt["Effect"] == "Allow"
            assert not any(a == "*" or a.endswith(":*") for a in actions), policy.name
            assert "*" not in resources or resourceless(actions), policy.name
        if not policy.name.endswith("-buckets"):
            continue
        workload = policy.name.removeprefix(f"dex-{env}-identity-").removesuffix("-buckets")
        allowed = {arns[g.purpose] for g in specs[workload].grants}
        touched = set()
        for stmt in doc["Statement"]:
            resources = (
                stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
            )
            for res in resources:
                touched.add(lake_key if res == lake_key else res.split("/", 1)[0])
        assert touched == allowed | {lake_key}, workload
    api = next(
        p for p in plan.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-api-buckets")
    )
    raw_objects = next(
        s for s in json.loads(api.inputs["policy"])["Statement"] if s["Sid"] == "ObjectsRaw"
    )
    assert raw_objects["Resource"] == [f"{arns['raw']}/predictions/*"]


def test_bucket_access_document() -> None:
    doc = json.loads(
        bucket_access(
            [BucketGrant("gold", "read", ("features/",))],
            {"gold": "arn:aws:s3:::g"},
            "arn:aws:kms:r:1:key/k",
        )
    )
    bucket, listing, objects, key = doc["Statement"]
    # GetBucketLocation carries no s3:prefix: under the prefix condition it was denied
    assert bucket == {
        "Sid": "BucketGold",
        "Effect": "Allow",
        "Action": ["s3:GetBucketLocation"],
        "Resource": "arn:aws:s3:::g",
    }
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["features/*"]}}
    assert objects["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert objects["Resource"] == ["arn:aws:s3:::g/features/*"]
    assert key["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]


def test_whole_bucket_grants_list_and_locate_without_condition() -> None:
    doc = json.loads(
        bucket_access([BucketGrant("gold", "write")], {"gold": "arn:aws:s3:::g"}, "arn:k")
    )
    bucket, objects, _ = doc["Statement"]
    assert bucket["Action"] == ["s3:ListBucket", "s3:GetBucketLocation"]
    assert "Condition" not in bucket
    assert objects["Resource"] == ["arn:aws:s3:::g/*"]


def test_no_bucket_location_call_is_conditioned_on_a_prefix(plans: dict[str, Plan]) -> None:
    for env in ENVS:
        for policy in plans[env].of_type("aws:iam/rolePolicy:RolePolicy"):
            for stmt in json.loads(policy.inputs["policy"])["Statement"]:
                actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
                if "s3:GetBucketLocation" in actions:
                    assert "Condition" not in stmt, policy.name


def test_pod_identity_trust_document() -> None:
    (stmt,) = json.loads(pod_identity_trust())["Statement"]
    assert stmt["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert stmt["Action"] == ["sts:AssumeRole", "sts:TagSession"]


@pytest.mark.parametrize(
    ("caller", "principal"),
    [
        (
            "arn:aws:sts::123456789012:assumed-role/dex-deploy/gh-run-1",
            "arn:aws:iam::123456789012:role/dex-deploy",
        ),
        (
            "arn:aws-us-gov:sts::123456789012:assumed-role/r/s",
            "arn:aws-us-gov:iam::123456789012:role/r",
        ),
        ("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice"),
    ],
)
def test_the_caller_becomes_an_access_entry_principal(caller: str, principal: str) -> None:
    assert role_arn_of_caller(caller) == principal


def test_a_run_by_a_principal_without_access_is_warned() -> None:
    deploy = "arn:aws:iam::123456789012:role/ci/dex-deploy"
    drift = "arn:aws:iam::123456789012:role/dex-drift"
    session = "arn:aws:sts::123456789012:assumed-role/{}/run-7"
    # the session ARN has no path: the role is recognised by its name
    assert access_warning(session.format("dex-deploy"), [deploy], [drift]) == ""
    assert "read-only" in access_warning(session.format("dex-drift"), [deploy], [drift])
    assert "not in dex:cluster.admin_role_arns" in access_warning(
        session.format("someone"), [deploy], [drift]
    )


# -- tags and protection ----------------------------------------------------------------


@cache
def _takes_tags(type_: str) -> bool:
    package, rest = type_.split(":", 1)
    module, cls = rest.split(":")
    mod = importlib.import_module(f"pulumi_{package}.{module.split('/')[0]}")
    klass = getattr(mod, cls)
    return "tags" in inspect.signature(klass._internal_init).parameters


@pytest.mark.parametrize("env", ENVS)
def test_every_taggable_resource_is_tagged(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env]
    provider = only(plan, "pulumi:providers:aws")
    # Provider configuration travels JSON-encoded, as in a real checkpoint.
    defaults = json.loads(provider.inputs["defaultTags"])["tags"]
    assert defaults == {
        "project": "dex",
        "environment": env,
        "owner": "platform-team",
        "managed-by": "pulumi",
    }
    checked = 0
    for res in plan:
        if res.custom and res.type.startswith("aws:") and _takes_tags(res.type):
            assert "component" in res.inputs.get("tags", {}), res.urn
            checked += 1
    assert checked > 50


def test_stateful_resources_are_protected_in_prod_only(plans: dict[str, Plan]) -> None:
    def protected(plan: Plan) -> set[str]:
        return {r.type for r in plan if r.protect}

    assert protected(plans["dev"]) == set()
    assert protected(plans["prod"]) >= {
        "aws:rds/instance:Instance",
        "aws:kms/key:Key",
        "aws:s3/bucket:Bucket",
        "aws:eks/cluster:Cluster",
        "aws:elasticache/replicationGroup:ReplicationGroup",
    }
    lake = [
        b
        for b in plans["prod"].of_type("aws:s3/bucket:Bucket")
        if b.inputs["tags"]["purpose"] in ("raw", "gold")
    ]
    assert all(b.protect for b in lake)
    assert all(k.protect for k in plans["prod"].of_type("aws:kms/key:Key"))


def test_children_are_parented_and_prefixed(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    components = {r.urn: r for r in plan if r.type.startswith("dex:")}
    assert {c.type for c in components.values() if c.type.startswith("dex:aws:")} == {
        "dex:aws:Network",
        "dex:aws:Cluster",
        "dex:aws:ObjectStore",
        "dex:aws:Database",
        "dex:aws:Cache",
        "dex:aws:Registry",
        "dex:aws:WorkloadIdentity",
    }
    for res in plan:
        if res.custom and res.type.startswith(("aws:", "random:", "kubernetes:", "tls:")):
            assert res.parent in components, res.urn
            assert res.name.startswith(components[res.parent].name), res.urn
    for comp in components.values():
        assert comp.outputs, f"{comp.type} registered no outputs"


def test_the_subnet_plan_docstring_example_runs() -> None:
    """plan_subnets' docstring example is executed, so the documented layout cannot drift."""
    import doctest

    from components.aws import network

    result = doctest.testmod(network, verbose=False)
    assert result.attempted >= 1
    assert result.failed == 0


def test_environment_differences_are_config_knobs(synth: Synth) -> None:
    """What used to follow `environment == prod` follows its own key: a dev stack told to keep
    5 days of cache snapshots, size Karpenter like upstream and run two replicas of the
    platform services with 30 days of metrics gets exactly that."""
    plan = synth(
        "dev",
        cache={"snapshot_retention_days": 5},
        cluster={"karpenter_controller_size": "upstream"},
        platform={"service_replicas": 2, "metrics_retention_days": 30},
    )
    group = only(plan, "aws:elasticache/replicationGroup:ReplicationGroup")
    assert group.inputs["snapshotRetentionLimit"] == 5
    releases = {
        r.inputs.get("chart"): r.inputs for r in plan.of_type("kubernetes:helm.sh/v3:Release")
    }
    karpenter = releases["oci://public.ecr.aws/karpenter/karpenter"]["values"]
    assert karpenter["controller"]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    prometheus = releases["kube-prometheus-stack"]["values"]["prometheus"]["prometheusSpec"]
    assert (prometheus["replicas"], prometheus["retention"]) == (2, "30d")
    assert releases["mlflow"]["values"]["replicaCount"] == 2
