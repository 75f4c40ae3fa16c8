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

from components.aws.iam import bucket_access, irsa_trust
from components.aws.network import plan_subnets
from components.contracts import BUCKET_PURPOSES, WORKLOAD_SPECS, BucketGrant
from stacks.mocks import DexMocks
from stacks.plan import UNKNOWN, Plan, Resource, is_secret, parse_plan
from stacks.synth import synthesize
from tests.conftest import Synth, named, only

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
    assert eks.inputs["version"] == "1.34"
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


@pytest.mark.parametrize(("env", "batch_capacity"), [("dev", "ON_DEMAND"), ("prod", "SPOT")])
def test_node_groups(plans: dict[str, Plan], env: str, batch_capacity: str) -> None:
    plan = plans[env]
    groups = {
        g.inputs["labels"]["dex.io/pool"]: g for g in plan.of_type("aws:eks/nodeGroup:NodeGroup")
    }
    assert set(groups) == {"system", "batch"}
    assert groups["system"].inputs["capacityType"] == "ON_DEMAND"
    assert groups["batch"].inputs["capacityType"] == batch_capacity
    assert groups["batch"].inputs["taints"] == [
        {"key": "dex.io/pool", "value": "batch", "effect": "NO_SCHEDULE"}
    ]
    for g in groups.values():
        assert g.inputs["amiType"] == "AL2023_x86_64_STANDARD"  # pinned, never the default
        scaling = g.inputs["scalingConfig"]
        assert scaling["minSize"] <= scaling["desiredSize"] <= scaling["maxSize"]
        assert "scalingConfig.desiredSize" in g.raw["ignoreChanges"]
    for lt in plan.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        meta = lt.inputs["metadataOptions"]
        assert meta["httpTokens"] == "required"
        assert meta["httpPutResponseHopLimit"] == 1
        ebs = lt.inputs["blockDeviceMappings"][0]["ebs"]
        assert ebs["encrypted"] == "true"
        assert ebs["volumeType"] == "gp3"
    if env == "prod":
        assert groups["system"].inputs["scalingConfig"]["minSize"] >= 3


@pytest.mark.parametrize("env", ENVS)
def test_irsa_and_addons(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env]
    eks = only(plan, "aws:eks/cluster:Cluster")
    oidc = only(plan, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["url"] == eks.outputs["identities"][0]["oidcs"][0]["issuer"]
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    addons = {a.inputs["addonName"]: a for a in plan.of_type("aws:eks/addon:Addon")}
    assert set(addons) == {"vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver"}
    ebs_role = only(plan, "aws:iam/role:Role", "ebs-csi-role")
    assert addons["aws-ebs-csi-driver"].inputs["serviceAccountRoleArn"] == ebs_role.outputs["arn"]
    trust = json.loads(ebs_role.inputs["assumeRolePolicy"])
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:kube-system:ebs-csi-controller-sa" in cond.values()
    groups = {g.urn for g in plan.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert groups <= set(addons["coredns"].dependencies)  # scheduled once nodes exist


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
    oidc = only(plan, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["url"] == UNKNOWN


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
    oidc = only(plan, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    for spec in WORKLOAD_SPECS:
        doc = json.loads(roles[spec.name].inputs["assumeRolePolicy"])
        (stmt,) = doc["Statement"]
        assert stmt["Principal"] == {"Federated": oidc.outputs["arn"]}
        assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
        subjects = [v for k, v in stmt["Condition"]["StringEquals"].items() if k.endswith(":sub")]
        assert subjects == [f"system:serviceaccount:{spec.namespace}:{spec.service_account}"]


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
            assert "*" not in resources, policy.name
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
    listing, objects, key = doc["Statement"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["features/*"]}}
    assert objects["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert objects["Resource"] == ["arn:aws:s3:::g/features/*"]
    assert key["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]


def test_irsa_trust_document() -> None:
    doc = json.loads(irsa_trust("arn:oidc", "https://oidc.example/id/X", "ns", "sa"))
    cond = doc["Statement"][0]["Condition"]["StringEquals"]
    assert cond == {
        "oidc.example/id/X:sub": "system:serviceaccount:ns:sa",
        "oidc.example/id/X:aud": "sts.amazonaws.com",
    }


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
