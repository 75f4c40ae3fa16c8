"""Karpenter's Kubernetes side (components/k8s/karpenter.py) in the synthesized stacks: the
Helm release and its values, one EC2NodeClass and one NodePool per pool, what each waits
for, and a hand check of their fields against the upstream CRDs (no CRD schema is vendored:
toolchain/validate.py `UNVENDORED_CRDS`)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema
import pytest

from components.k8s.karpenter import (
    AMI_ALIAS,
    KarpenterArgs,
    controller_replicas,
    controller_resources,
    node_class_spec,
)
from contracts.deployment import Plan, Resource, parse_plan
from tests.conftest import only
from toolchain import first_deploy
from toolchain.validate import UNVENDORED_CHARTS, UNVENDORED_CRDS, validate_plan

pytestmark = pytest.mark.unit

CHART = "oci://public.ecr.aws/karpenter/karpenter"
VERSION = "1.14.1"
RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
COMPONENT = "dex:k8s:Karpenter"
AWS = ("dev", "prod")


# -- the hand check of the CRDs ---------------------------------------------------------------
#
# Read from aws/karpenter-provider-aws at tag v1.14.1 (commit bde00654), the CRDs the chart's
# `crds/` folder links to:
#   pkg/apis/crds/karpenter.sh_nodepools.yaml         (NodePool, version v1, served + storage)
#   pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml (EC2NodeClass, v1, served + storage)
# Field names, `required` lists and enums are the CRDs'; the CEL rules the fields we set can
# break are checked in `_cel_problems`. Only the branches this program writes are spelled out;
# every object level is closed (`additionalProperties: false`), as the API server's structural
# pruning would silently drop an unknown field.


def _closed(properties: Mapping[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(required),
        "additionalProperties": False,
    }


ANY: dict[str, Any] = {}
QUANTITY = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"  # noqa: E501
DURATION_OR_NEVER = r"^(([0-9]+(s|m|h))+|Never)$"
METADATA = _closed({"name": {"type": "string"}, "labels": {"type": "object"}}, ("name",))

TAINT = _closed(
    {
        "key": {"type": "string", "minLength": 1},
        "value": {"type": "string"},
        "effect": {"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
        "timeAdded": {"type": "string"},
    },
    ("effect", "key"),
)
NODE_POOL_SCHEMA = _closed(
    {
        "apiVersion": {"const": "karpenter.sh/v1"},
        "kind": {"const": "NodePool"},
        "metadata": METADATA,
        "spec": _closed(
            {
                "template": _closed(
                    {
                        "metadata": _closed(
                            {
                                "labels": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string", "maxLength": 63},
                                },
                                "annotations": {"type": "object"},
                            }
                        ),
                        "spec": _closed(
                            {
                                "nodeClassRef": _closed(
                                    {
                                        "group": {"type": "string", "minLength": 1},
                                        "kind": {"type": "string", "minLength": 1},
                                        "name": {"type": "string", "minLength": 1},
                                    },
                                    ("group", "kind", "name"),
                                ),
                                "requirements": {
                                    "type": "array",
                                    "maxItems": 100,
                                    "items": _closed(
                                        {
                                            "key": {"type": "string", "maxLength": 316},
                                            "operator": {
                                                "enum": [
                                                    "Gte",
                                                    "Lte",
                                                    "In",
                                                    "NotIn",
                                                    "Exists",
                                                    "DoesNotExist",
                                                    "Gt",
                                                    "Lt",
                                                ]
                                            },
                                            "values": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                            },
                                            "minValues": {
                                                "type": "integer",
                                                "minimum": 1,
                                                "maximum": 50,
                                            },
                                        },
                                        ("key", "operator"),
                                    ),
                                },
                                "taints": {"type": "array", "items": TAINT},
                                "startupTaints": {"type": "array", "items": TAINT},
                                "expireAfter": {"type": "string", "pattern": DURATION_OR_NEVER},
                                "terminationGracePeriod": {
                                    "type": "string",
                                    "pattern": r"^([0-9]+(s|m|h))+$",
                                },
                            },
                            ("nodeClassRef", "requirements"),
                        ),
                    },
                    ("spec",),
                ),
                "limits": {
                    "type": "object",
                    "additionalProperties": {
                        "anyOf": [
                            {"type": "integer"},
                            {"type": "string", "pattern": QUANTITY},
                        ]
                    },
                },
                "disruption": _closed(
                    {
                        "consolidateAfter": {"type": "string", "pattern": DURATION_OR_NEVER},
                        "consolidationPolicy": {
                            "enum": ["WhenEmpty", "WhenEmptyOrUnderutilized", "Balanced"]
                        },
                        "budgets": {
                            "type": "array",
                            "maxItems": 50,
                            "items": _closed(
                                {
                                    "nodes": {
                                        "type": "string",
                                        "pattern": r"^((100|[0-9]{1,2})%|[0-9]+)$",
                                    },
                                    "schedule": {"type": "string"},
                                    "duration": {"type": "string"},
                                    "reasons": {
                                        "type": "array",
                                        "items": {"enum": ["Underutilized", "Empty", "Drifted"]},
                                    },
                                },
                                ("nodes",),
                            ),
                        },
                    },
                    ("consolidateAfter",),
                ),
                "replicas": {"type": "integer", "minimum": 0},
                "weight": {"type": "integer", "minimum": 1, "maximum": 100},
            },
            ("template",),
        ),
    },
    ("spec",),
)

TAGS = {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}}
EC2_NODE_CLASS_SCHEMA = _closed(
    {
        "apiVersion": {"const": "karpenter.k8s.aws/v1"},
        "kind": {"const": "EC2NodeClass"},
        "metadata": METADATA,
        "spec": _closed(
            {
                "amiFamily": {
                    "enum": [
                        "AL2",
                        "AL2023",
                        "Bottlerocket",
                        "Custom",
                        "Windows2019",
                        "Windows2022",
                        "Windows2025",
                    ]
                },
                "amiSelectorTerms": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 30,
                    "items": _closed(
                        {
                            "alias": {"type": "string", "maxLength": 30},
                            "id": {"type": "string", "pattern": "ami-[0-9a-z]+"},
                            "name": {"type": "string"},
                            "owner": {"type": "string"},
                            "ssmParameter": {"type": "string"},
                            "tags": TAGS,
                        }
                    ),
                },
                "subnetSelectorTerms": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 30,
                    "items": _closed(
                        {"id": {"type": "string", "pattern": "subnet-[0-9a-z]+"}, "tags": TAGS}
                    ),
                },
                "securityGroupSelectorTerms": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 30,
                    "items": _closed(
                        {
                            "id": {"type": "string", "pattern": "sg-[0-9a-z]+"},
                            "name": {"type": "string"},
                            "tags": TAGS,
                        }
                    ),
                },
                "instanceProfile": {"type": "string", "minLength": 1},
                "role": {"type": "string", "minLength": 1},
                "blockDeviceMappings": {
                    "type": "array",
                    "maxItems": 50,
                    "items": _closed(
                        {
                            "deviceName": {"type": "string"},
                            "rootVolume": {"type": "boolean"},
                            "ebs": _closed(
                                {
                                    "deleteOnTermination": {"type": "boolean"},
                                    "encrypted": {"type": "boolean"},
                                    "iops": {"type": "integer"},
                                    "kmsKeyID": {"type": "string"},
                                    "snapshotID": {"type": "string"},
                                    "throughput": {"type": "integer"},
                                    "volumeInitializationRate": {"type": "integer"},
                                    "volumeSize": {
                                        "type": "string",
                                        "pattern": (
                                            r"^((?:[1-9][0-9]{0,3}|[1-4][0-9]{4}|[5][0-8][0-9]{3}"
                                            r"|59000)Gi|(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}"
                                            r"|[6][0-3][0-9]{3}|64000)G|([1-9]||[1-5][0-7]|58)Ti"
                                            r"|([1-9]||[1-5][0-9]|6[0-3]|64)T)$"
                                        ),
                                    },
                                    "volumeType": {
                                        "enum": [
                                            "standard",
                                            "io1",
                                            "io2",
                                            "gp2",
                                            "sc1",
                                            "st1",
                                            "gp3",
                                        ]
                                    },
                                }
                            ),
                        }
                    ),
                },
                "metadataOptions": _closed(
                    {
                        "httpEndpoint": {"enum": ["enabled", "disabled"]},
                        "httpProtocolIPv6": {"enum": ["enabled", "disabled"]},
                        "httpPutResponseHopLimit": {"type": "integer", "minimum": 1, "maximum": 64},
                        "httpTokens": {"enum": ["required", "optional"]},
                    }
                ),
                "tags": TAGS,
                # fields this program does not write: present in the CRD, not spelled out here
                **dict.fromkeys(
                    (
                        "associatePublicIPAddress",
                        "capacityReservationSelectorTerms",
                        "connectionTracking",
                        "context",
                        "cpuOptions",
                        "detailedMonitoring",
                        "instanceStorePolicy",
                        "ipPrefixCount",
                        "kubelet",
                        "networkInterfaces",
                        "placementGroupSelector",
                        "userData",
                    ),
                    ANY,
                ),
            },
            ("amiSelectorTerms", "securityGroupSelectorTerms", "subnetSelectorTerms"),
        ),
    },
)
ALIAS_FAMILIES = ("al2", "al2023", "bottlerocket", "windows2019", "windows2022", "windows2025")
RESTRICTED_TAG_PREFIXES = (
    "eks:eks-cluster-name",
    "kubernetes.io/cluster",
    "karpenter.sh/nodepool",
    "karpenter.sh/nodeclaim",
    "karpenter.k8s.aws/ec2nodeclass",
)
RESTRICTED_LABELS = ("karpenter.sh/nodepool", "kubernetes.io/hostname")


def _cel_problems(obj: Mapping[str, Any]) -> list[str]:
    """The CRDs' `x-kubernetes-validations` rules that the fields this program sets can
    break (the API server evaluates them; jsonschema cannot)."""
    spec = obj.get("spec") or {}
    out: list[str] = []
    if obj.get("kind") == "EC2NodeClass":
        if ("role" in spec) == ("instanceProfile" in spec):
            out.append("spec: must specify exactly one of ['role', 'instanceProfile']")
        terms = spec.get("amiSelectorTerms") or []
        aliases = [t["alias"] for t in terms if "alias" in t]
        if aliases and (len(terms) != 1 or len(terms[0]) != 1):
            out.append("amiSelectorTerms: 'alias' is mutually exclusive")
        for alias in aliases:
            family, _, version = alias.partition("@")
            if not re.match(r"^[a-zA-Z0-9]+@.+$", alias) or family not in ALIAS_FAMILIES:
                out.append(f"amiSelectorTerms: alias {alias!r} is not family@version")
            elif family.startswith("windows") and version != "latest":
                out.append("amiSelectorTerms: windows families may only specify 'latest'")
        if not aliases and "amiFamily" not in spec:
            out.append("spec: must specify amiFamily if amiSelectorTerms has no alias")
        for key in spec.get("tags") or {}:
            if any(key.startswith(p) for p in RESTRICTED_TAG_PREFIXES):
                out.append(f"spec.tags: restricted tag {key!r}")
        for bdm in spec.get("blockDeviceMappings") or []:
            ebs = bdm.get("ebs") or {}
            if ebs and "snapshotID" not in ebs and "volumeSize" not in ebs:
                out.append("blockDeviceMappings: snapshotID or volumeSize must be defined")
    if obj.get("kind") == "NodePool":
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        for req in (template.get("spec") or {}).get("requirements") or []:
            if req.get("operator") == "In" and not req.get("values"):
                out.append(f"requirements: {req.get('key')} In needs values")
            if req.get("key") in RESTRICTED_LABELS:
                out.append(f"requirements: label {req.get('key')!r} is restricted")
        for key in labels:
            if key in RESTRICTED_LABELS or key.split("/")[0].endswith("karpenter.sh"):
                out.append(f"template.metadata.labels: {key!r} is restricted")
        for budget in (spec.get("disruption") or {}).get("budgets") or []:
            if ("schedule" in budget) != ("duration" in budget):
                out.append("budgets: 'schedule' must be set with 'duration'")
    return out


def crd_problems(obj: Mapping[str, Any]) -> list[str]:
    """Every problem of one NodePool or EC2NodeClass (empty when it is valid)."""
    schema = NODE_POOL_SCHEMA if obj.get("kind") == "NodePool" else EC2_NODE_CLASS_SCHEMA
    errors = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(obj)
    ]
    return sorted(errors) + _cel_problems(obj)


# -- helpers ----------------------------------------------------------------------------------


def _one(plan: Plan, type_: str, name_part: str) -> Resource:
    return only(plan, type_, name_part)


def _release(plan: Plan) -> Resource:
    (release,) = [r for r in plan.of_type(RELEASE) if r.inputs.get("chart") == CHART]
    return release


def _obj(res: Resource) -> dict[str, Any]:
    return json.loads(json.dumps(res.inputs))  # type: ignore[no-any-return]


def _karpenter_objects(plan: Plan) -> list[Resource]:
    return [*plan.of_type(NODE_POOL), *plan.of_type(NODE_CLASS)]


# -- the release --------------------------------------------------------------------------


@pytest.mark.parametrize("env", AWS)
def test_release_installs_the_pinned_chart_with_its_settings(
    plans: dict[str, Plan], env: str
) -> None:
    plan = plans[env]
    release = _release(plan)
    cluster = _one(plan, "aws:eks/cluster:Cluster", "eks")
    queue = _one(plan, "aws:sqs/queue:Queue", "karpenter-interruptions")
    inputs = release.inputs
    assert (inputs["chart"], inputs["version"], inputs["namespace"]) == (
        CHART,
        VERSION,
        "kube-system",
    )
    assert inputs["name"] == "karpenter"
    assert inputs["atomic"] is True
    assert inputs.get("skipCrds") is not True  # the chart's crds/ are installed first
    values = inputs["values"]
    assert values["settings"] == {
        "clusterName": cluster.inputs["name"],
        "clusterEndpoint": cluster.outputs["endpoint"],
        "interruptionQueue": queue.inputs["name"],
    }
    # the chart creates the service account the Pod Identity association names
    association = _one(
        plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "karpenter-controller"
    )
    assert values["serviceAccount"] == {"create": True, "name": "karpenter"}
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == (
        inputs["namespace"],
        values["serviceAccount"]["name"],
    )
    assert values["controller"]["env"] == [{"name": "AWS_REGION", "value": "eu-west-1"}]


@pytest.mark.parametrize(
    ("env", "replicas", "cpu", "memory"), [("dev", 2, "250m", "512Mi"), ("prod", 2, "1", "1Gi")]
)
def test_controller_runs_hardened_on_the_system_node_group(
    plans: dict[str, Plan], env: str, replicas: int, cpu: str, memory: str
) -> None:
    values = _release(plans[env]).inputs["values"]
    assert values["replicas"] == replicas
    resources = values["controller"]["resources"]
    assert resources["requests"] == {"cpu": cpu, "memory": memory}
    assert resources["limits"]["memory"] == memory  # the chart passes it as MEMORY_LIMIT
    pod = values["podSecurityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == pod["runAsGroup"] == pod["fsGroup"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert values["controller"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    # the managed node group's label; the chart's default affinity (karpenter.sh/nodepool
    # DoesNotExist, one replica per host) stays: never overridden
    assert values["nodeSelector"] == {"kubernetes.io/os": "linux", "dex.io/pool": "system"}
    assert "affinity" not in values
    assert "tolerations" not in values


def test_controller_sizing() -> None:
    assert [controller_replicas(n) for n in (0, 1, 2, 3, 6)] == [1, 1, 2, 2, 2]
    prod = controller_resources("upstream")
    assert prod["requests"] == prod["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert controller_resources("small")["requests"] == {"cpu": "250m", "memory": "512Mi"}


@pytest.mark.parametrize("env", AWS)
def test_release_waits_for_the_aws_side(plans: dict[str, Plan], env: str) -> None:
    """`spec.ready`: the Pod Identity association, the node role's access entry, the queue's
    policy and the security group's discovery tag exist before the controller starts."""
    plan = plans[env]
    deps = set(_release(plan).dependencies)
    for type_, part in (
        ("aws:eks/podIdentityAssociation:PodIdentityAssociation", "karpenter-controller"),
        ("aws:eks/accessEntry:AccessEntry", "karpenter-node"),
        ("aws:sqs/queuePolicy:QueuePolicy", "karpenter-interruptions"),
        ("aws:ec2/tag:Tag", "karpenter-discovery"),
    ):
        assert _one(plan, type_, part).urn in deps, (type_, part)
    # and through its provider, the node group and the network/DNS add-ons
    graph = first_deploy.Graph(plan)
    before = graph.before(_release(plan).urn)
    assert any(u.endswith("system-nodes") for u in before)


# -- EC2NodeClass and NodePools ---------------------------------------------------------------


@pytest.mark.parametrize(("env", "disks"), [("dev", (50, 100)), ("prod", (100, 200))])
def test_node_classes(plans: dict[str, Plan], env: str, disks: tuple[int, int]) -> None:
    plan = plans[env]
    profile = _one(plan, "aws:iam/instanceProfile:InstanceProfile", "karpenter-node-profile")
    cluster_name = f"dex-{env}-eks"
    classes = {r.inputs["metadata"]["name"]: r for r in plan.of_type(NODE_CLASS)}
    assert sorted(classes) == ["batch", "system"]
    for pool, disk in zip(("system", "batch"), disks, strict=True):
        obj = _obj(classes[pool])
        spec = obj["spec"]
        assert crd_problems(obj) == [], pool
        assert spec["instanceProfile"] == profile.outputs["name"]
        assert "role" not in spec
        assert spec["amiSelectorTerms"] == [{"alias": AMI_ALIAS}]
        assert re.fullmatch(r"al2023@v\d{8}", AMI_ALIAS)  # pinned, not @latest
        discovery = [{"tags": {"karpenter.sh/discovery": cluster_name}}]
        assert spec["subnetSelectorTerms"] == spec["securityGroupSelectorTerms"] == discovery
        assert spec["blockDeviceMappings"] == [
            {
                "deviceName": "/dev/xvda",
                "ebs": {
                    "volumeSize": f"{disk}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
        ]
        assert spec["metadataOptions"]["httpTokens"] == "required"
        assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert spec["tags"]["environment"] == env
        assert spec["tags"]["dex.io/pool"] == pool


@pytest.mark.parametrize(
    ("env", "batch_capacity", "system_max", "batch_max"),
    [("dev", ["on-demand"], "1", "3"), ("prod", ["spot", "on-demand"], "3", "10")],
)
def test_node_pools(
    plans: dict[str, Plan], env: str, batch_capacity: list[str], system_max: str, batch_max: str
) -> None:
    plan = plans[env]
    pools = {r.inputs["metadata"]["name"]: _obj(r) for r in plan.of_type(NODE_POOL)}
    assert sorted(pools) == ["batch", "system"]
    for name, obj in pools.items():
        assert crd_problems(obj) == [], name
        template = obj["spec"]["template"]
        assert template["metadata"]["labels"] == {"dex.io/pool": name}
        assert template["spec"]["nodeClassRef"] == {
            "group": "karpenter.k8s.aws",
            "kind": "EC2NodeClass",
            "name": name,
        }
        assert obj["spec"]["disruption"] == {
            "consolidationPolicy": "WhenEmptyOrUnderutilized",
            "consolidateAfter": "1m",
            "budgets": [{"nodes": "1"}],
        }

    def requirements(name: str) -> dict[str, list[str]]:
        reqs = pools[name]["spec"]["template"]["spec"]["requirements"]
        assert all(r["operator"] == "In" for r in reqs)
        return {r["key"]: r["values"] for r in reqs}

    system, batch = requirements("system"), requirements("batch")
    for reqs in (system, batch):
        assert reqs["kubernetes.io/arch"] == ["amd64"]
        assert reqs["kubernetes.io/os"] == ["linux"]
    assert system["karpenter.sh/capacity-type"] == ["on-demand"]
    assert batch["karpenter.sh/capacity-type"] == batch_capacity
    config_system = _one(plan, "aws:eks/nodeGroup:NodeGroup", "system-nodes")
    assert system["node.kubernetes.io/instance-type"] == config_system.inputs["instanceTypes"]
    assert batch["node.kubernetes.io/instance-type"]
    assert "taints" not in pools["system"]["spec"]["template"]["spec"]
    assert pools["batch"]["spec"]["template"]["spec"]["taints"] == [
        {"key": "dex.io/pool", "value": "batch", "effect": "NoSchedule"}
    ]
    assert pools["system"]["spec"]["limits"] == {"nodes": system_max}
    assert pools["batch"]["spec"]["limits"] == {"nodes": batch_max}


@pytest.mark.parametrize("env", AWS)
def test_custom_resources_wait_for_the_release(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env]
    release = _release(plan)
    component = _one(plan, COMPONENT, "karpenter")
    provider = release.provider
    assert provider
    assert "pulumi:providers:kubernetes" in provider
    for res in _karpenter_objects(plan):
        assert release.urn in res.dependencies, res.name
        assert res.parent == component.urn
        assert res.provider == provider
    for pool in plan.of_type(NODE_POOL):
        name = pool.inputs["metadata"]["name"]
        node_class = _one(plan, NODE_CLASS, f"{name}-nodeclass")
        assert node_class.urn in pool.dependencies
    assert release.parent == component.urn


def test_gcp_stacks_have_no_karpenter(plans: dict[str, Plan]) -> None:
    for env in ("gcp-dev", "gcp-prod"):
        plan = plans[env]
        assert not plan.of_type(COMPONENT)
        assert not _karpenter_objects(plan)
        assert not [r for r in plan.of_type(RELEASE) if "karpenter" in str(r.inputs["chart"])]


def test_restricted_node_class_tags_are_refused() -> None:
    class Spec:
        discovery_tag = ("karpenter.sh/discovery", "c")
        instance_profile = "p"

    class Pool:
        name = "batch"
        disk_size_gib = 100

    args = KarpenterArgs(
        spec=Spec(),  # type: ignore[arg-type]
        replicas=1,
        resources={},
        tags={"kubernetes.io/cluster/c": "owned"},
    )
    with pytest.raises(ValueError, match=r"kubernetes\.io/cluster/c"):
        node_class_spec(args, Pool())  # type: ignore[arg-type]


# -- the hand check catches mistakes; the validators and the first deploy see the objects ------


def _typo(obj: dict[str, Any], path: list[str], old: str, new: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    node = out
    for part in path:
        node = node[part]
    node[new] = node.pop(old)
    return out


@pytest.mark.parametrize(
    ("kind", "path", "old", "new", "needle"),
    [
        ("NodePool", ["spec", "template", "spec"], "nodeClassRef", "nodeClasRef", "nodeClasRef"),
        ("NodePool", ["spec"], "limits", "limit", "limit"),
        ("NodePool", ["spec", "disruption"], "consolidationPolicy", "consolidatePolicy", "consol"),
        ("EC2NodeClass", ["spec"], "instanceProfile", "instanceProfle", "instanceProf"),
        ("EC2NodeClass", ["spec", "metadataOptions"], "httpTokens", "httpToken", "httpToken"),
        ("EC2NodeClass", ["spec"], "subnetSelectorTerms", "subnetSelectors", "subnetSelector"),
    ],
)
def test_hand_check_catches_a_typo(
    plans: dict[str, Plan], kind: str, path: list[str], old: str, new: str, needle: str
) -> None:
    type_ = NODE_POOL if kind == "NodePool" else NODE_CLASS
    good = _obj(_one(plans["prod"], type_, "batch"))
    assert crd_problems(good) == []
    problems = crd_problems(_typo(good, path, old, new))
    assert problems
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize(
    ("kind", "change", "needle"),
    [
        ("EC2NodeClass", lambda s: s.update(role="KarpenterNodeRole"), "exactly one of"),
        ("EC2NodeClass", lambda s: s["amiSelectorTerms"][0].update(alias="al2023"), "alias"),
        (
            "EC2NodeClass",
            lambda s: s["blockDeviceMappings"][0]["ebs"].update(volumeSize="100"),
            "100",
        ),
        ("EC2NodeClass", lambda s: s["tags"].update({"karpenter.sh/nodepool": "x"}), "restricted"),
        ("NodePool", lambda s: s["disruption"]["budgets"][0].update(nodes="ten"), "ten"),
        ("NodePool", lambda s: s["limits"].update(nodes="many"), "many"),
        (
            "NodePool",
            lambda s: s["template"]["spec"]["requirements"][0].update(operator="in"),
            "in",
        ),
        (
            "NodePool",
            lambda s: s["template"]["spec"]["taints"][0].update(effect="NoScheduleX"),
            "NoScheduleX",
        ),
    ],
)
def test_hand_check_catches_a_bad_value(
    plans: dict[str, Plan], kind: str, change: Callable[[dict[str, Any]], None], needle: str
) -> None:
    type_ = NODE_POOL if kind == "NodePool" else NODE_CLASS
    obj = _obj(_one(plans["prod"], type_, "batch"))
    change(obj["spec"])
    problems = crd_problems(obj)
    assert any(needle in p for p in problems), problems


def _doc_with(plan: Plan, edit: Callable[[dict[str, Any]], None]) -> Plan:
    """A copy of `plan` with `edit` applied to every raw resource."""
    resources = [copy.deepcopy(dict(r.raw)) for r in plan]
    for raw in resources:
        edit(raw)
    return parse_plan({"version": 3, "deployment": {"resources": resources}}, str(plan.stack))


def test_validate_plan_lists_karpenter_kinds_and_still_reports_unlisted_ones(
    plans: dict[str, Plan],
) -> None:
    assert {k: v for k, v in UNVENDORED_CRDS.items() if "karpenter" in k[0]} == {
        ("karpenter.sh/v1", "NodePool"): VERSION,
        ("karpenter.k8s.aws/v1", "EC2NodeClass"): VERSION,
    }
    assert UNVENDORED_CHARTS[CHART] == VERSION
    for env in AWS:
        assert validate_plan(plans[env]) == [], env

    def unlisted_kind(raw: dict[str, Any]) -> None:
        if raw["type"] == NODE_POOL and "batch" in raw["urn"]:
            raw["inputs"]["kind"] = "NodeClaim"

    def other_version(raw: dict[str, Any]) -> None:
        if raw["type"] == RELEASE and raw["inputs"].get("chart") == CHART:
            raw["inputs"]["version"] = "1.13.0"

    findings = validate_plan(_doc_with(plans["prod"], unlisted_kind))
    assert [(f.check, "NodeClaim" in f.message) for f in findings] == [("schema", True)]
    findings = validate_plan(_doc_with(plans["prod"], other_version))
    assert [f.check for f in findings] == ["helm"]
    assert "'1.14.1'" in findings[0].message


def test_first_deploy_sees_the_crd_order(plans: dict[str, Plan]) -> None:
    """The first-deploy check finds the release that installs the Karpenter CRDs (the chart's
    OCI reference, toolchain/charts.py) and flags a NodeClass that does not wait for it."""
    for env in AWS:
        order = [f for f in first_deploy.creation_order(plans[env]) if "karpenter" in f.urn]
        assert order == [], [str(f) for f in order]
    release = _release(plans["prod"]).urn

    def no_wait(raw: dict[str, Any]) -> None:
        if raw["type"] == NODE_CLASS and "batch" in raw["urn"]:
            raw["dependencies"] = [d for d in raw.get("dependencies", []) if d != release]

    findings = first_deploy.creation_order(_doc_with(plans["prod"], no_wait))
    assert [f.urn.rsplit("::", 1)[-1] for f in findings] == ["dex-prod-karpenter-batch-nodeclass"]
    assert "without waiting for its CRD" in findings[0].message
