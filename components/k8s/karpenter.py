"""Karpenter's Kubernetes side (EKS only): the controller's Helm release, one EC2NodeClass and
one NodePool per pool the AWS side describes (components/aws/karpenter.py, `KarpenterSpec`).

Every field below was read at aws/karpenter-provider-aws tag v1.14.1 (the chart is published
as 1.14.1 from that tag; its Chart.yaml there still says 1.13.0 until the release job stamps
it): `charts/karpenter/values.yaml` and `templates/`, and the CRDs `pkg/apis/crds/
karpenter.sh_nodepools.yaml` and `karpenter.k8s.aws_ec2nodeclasses.yaml` (which the chart's
`crds/` links to).

- The release (`oci://public.ecr.aws/karpenter/karpenter`) installs the CRDs from its `crds/`
  folder before its templates. Helm never upgrades `crds/`: a chart upgrade that changes the
  CRDs needs them applied first (upstream's upgrade guide: the `karpenter-crd` chart).
- The chart creates the controller's service account (`serviceAccount.create`, default true)
  under the name the Pod Identity association already names (`kube-system/karpenter`); the
  association exists before the release (`spec.ready`), so the first pod gets credentials.
- The controller runs on the system managed node group only: `nodeSelector` `dex.io/pool:
  system` (the managed group's label) and the chart's default affinity, kept as it is, which
  requires `karpenter.sh/nodepool` DoesNotExist (never a node Karpenter launched itself, such
  as the `system` NodePool's, which carry the same `dex.io/pool` label) and one replica per
  host. The chart's PodDisruptionBudget (maxUnavailable 1) keeps one running during drains.
- The container's securityContext is fixed by the chart's template (uid 65532, read-only
  root, no privilege escalation, all capabilities dropped); the values can only add a seccomp
  profile, set here, with the pod's `runAsNonRoot`.
- The EC2NodeClass names the instance profile the AWS side made (`spec.instanceProfile`,
  exclusive with `spec.role`: the controller has no right to create profiles), an AL2023 AMI
  pinned by release (`al2023@vYYYYMMDD`: `@latest` drifts every node on each AMI release),
  subnets and security groups by the discovery tag, an encrypted gp3 root volume of the pool's
  size, and IMDSv2 only with hop limit 1 (pods cannot reach the node's credentials).
- Each NodePool: instance types, capacity types, amd64, linux; the pool's labels and taints;
  `limits.nodes` (counted and enforced by the scheduler of sigs.k8s.io/karpenter v1.14.1,
  `addToNewNodeClaim`) for the pool's maximum; consolidation WhenEmptyOrUnderutilized, at
  most one node disrupted at a time.

Objects of the custom kinds wait for the release (their CRDs); on destroy they go first, while
the controller still runs to remove its finalizers and terminate the instances.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import pulumi
import pulumi_kubernetes as k8s

from components.k8s.base import (
    BATCH_POOL_LABEL,
    MANAGED_BY,
    RUNTIME_DEFAULT,
    Chart,
    helm_release,
)

RELEASE = "karpenter"
"""The Helm release name; the chart's fullname (Deployment, Service, PDB) is the same."""
CONTROLLER_UID = 65532
"""The uid/gid the chart's template runs the controller as (distroless `nonroot`)."""
NODE_POOL_API = "karpenter.sh/v1"
NODE_CLASS_API = "karpenter.k8s.aws/v1"
NODE_CLASS_GROUP = "karpenter.k8s.aws"
NODE_CLASS_KIND = "EC2NodeClass"
AMI_ALIAS = "al2023@v20260714"
"""EKS-optimized AL2023 release v20260714 (awslabs/amazon-eks-ami CHANGELOG: built for
Kubernetes 1.32-1.36, `amazon-eks-node-al2023-x86_64-standard-<k8s>-v20260714`). Karpenter
resolves it through the SSM parameter of the cluster's Kubernetes version. Bump it on purpose:
every node of the pool is replaced (drift)."""
ROOT_DEVICE = "/dev/xvda"
"""The AL2023 AMIs' root device."""
EXPIRE_AFTER = "720h"
"""Nodes are replaced after 30 days (the CRD's default, written down)."""
CONSOLIDATE_AFTER = "1m"
DISRUPTION_BUDGET = "1"
"""At most one node of a pool is disrupted (consolidated, drifted, expired) at a time."""
RESTRICTED_TAGS = (
    "eks:eks-cluster-name",
    "kubernetes.io/cluster",
    "karpenter.sh/nodepool",
    "karpenter.sh/nodeclaim",
    "karpenter.k8s.aws/ec2nodeclass",
)
"""EC2NodeClass `spec.tags` keys the CRD rejects (Karpenter sets them itself)."""


class KarpenterPoolLike(Protocol):
    """One NodePool to create (components/aws/karpenter.py `KarpenterPool` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def instance_types(self) -> tuple[str, ...]: ...
    @property
    def capacity_types(self) -> tuple[str, ...]: ...
    @property
    def max_nodes(self) -> int: ...
    @property
    def disk_size_gib(self) -> int: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def taints(self) -> tuple[tuple[str, str, str], ...]: ...


class KarpenterSpecLike(Protocol):
    """What the AWS side provides (components/aws/karpenter.py `KarpenterSpec` is one);
    components/k8s takes it by shape, never by import."""

    @property
    def chart(self) -> str: ...
    @property
    def chart_version(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def service_account(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def cluster_name(self) -> pulumi.Input[str]: ...
    @property
    def cluster_endpoint(self) -> pulumi.Input[str]: ...
    @property
    def interruption_queue(self) -> pulumi.Input[str]: ...
    @property
    def instance_profile(self) -> pulumi.Input[str]: ...
    @property
    def discovery_tag(self) -> tuple[str, str]: ...
    @property
    def pools(self) -> tuple[KarpenterPoolLike, ...]: ...
    @property
    def ready(self) -> tuple[pulumi.Resource, ...]: ...


def controller_replicas(system_nodes: int) -> int:
    """The chart's default is 2 replicas, each on its own host (required anti-affinity) of
    the managed node group: as many as the group has nodes, at least one, at most two."""
    return max(1, min(2, system_nodes))


def controller_resources(size: Literal["small", "upstream"]) -> dict[str, Any]:
    """`upstream`: the getting-started sizing (1 CPU, 1Gi, limits equal; prod's default);
    `small`: a quarter CPU (dev's, where two small system nodes run every platform service).
    Memory limit = request (the chart hands `limits.memory` to the controller as its memory
    limit)."""
    if size == "upstream":
        return {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    return {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }


@dataclass(frozen=True)
class KarpenterArgs:
    spec: KarpenterSpecLike
    replicas: int
    """Controller replicas (`controller_replicas`)."""
    resources: Mapping[str, Any]
    """Controller container resources (`controller_resources`)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on what Karpenter launches (EC2NodeClass `spec.tags`): the provider's default
    tags do not reach instances the controller creates."""
    ami_alias: str = AMI_ALIAS
    timeout: int = 600
    """Seconds Helm waits for the controller to become ready."""


def release_chart(args: KarpenterArgs) -> Chart:
    """The controller's release, from the chart the AWS side names (an OCI chart: the
    reference is the whole oci:// URL)."""
    return Chart(
        release=RELEASE,
        chart=args.spec.chart,
        version=args.spec.chart_version,
        repo="",
        namespace=args.spec.namespace,
        timeout=args.timeout,
    )


def release_values(args: KarpenterArgs) -> dict[str, Any]:
    """The chart's values (keys as in its values.yaml at v1.14.1)."""
    spec = args.spec
    return {
        "settings": {
            "clusterName": spec.cluster_name,
            "clusterEndpoint": spec.cluster_endpoint,
            "interruptionQueue": spec.interruption_queue,
        },
        "serviceAccount": {"create": True, "name": spec.service_account},
        "replicas": args.replicas,
        "podSecurityContext": {
            "fsGroup": CONTROLLER_UID,
            "runAsNonRoot": True,
            "runAsUser": CONTROLLER_UID,
            "runAsGroup": CONTROLLER_UID,
            "seccompProfile": RUNTIME_DEFAULT,
        },
        # Helm merges maps: the chart's `kubernetes.io/os: linux` stays; its default affinity
        # (not Karpenter's own nodes; one replica per host) is left as it is.
        "nodeSelector": {"kubernetes.io/os": "linux", BATCH_POOL_LABEL: "system"},
        "controller": {
            # without it the controller asks IMDS, which hop limit 1 keeps from pods
            "env": [{"name": "AWS_REGION", "value": spec.region}],
            "resources": dict(args.resources),
            "securityContext": {"seccompProfile": RUNTIME_DEFAULT},
        },
    }


def _tags(tags: Mapping[str, str]) -> dict[str, str]:
    for key in tags:
        if any(key == r or key.startswith(r) for r in RESTRICTED_TAGS):
            raise ValueError(
                f"EC2NodeClass tag {key!r} is reserved by Karpenter (restricted: "
                f"{', '.join(RESTRICTED_TAGS)})"
            )
    return dict(tags)


def node_class_spec(args: KarpenterArgs, pool: KarpenterPoolLike) -> dict[str, Any]:
    """EC2NodeClass `spec` (karpenter.k8s.aws/v1) of one pool."""
    key, value = args.spec.discovery_tag
    return {
        "instanceProfile": args.spec.instance_profile,
        "amiSelectorTerms": [{"alias": args.ami_alias}],
        "subnetSelectorTerms": [{"tags": {key: value}}],
        "securityGroupSelectorTerms": [{"tags": {key: value}}],
        "blockDeviceMappings": [
            {
                "deviceName": ROOT_DEVICE,
                "ebs": {
                    "volumeSize": f"{pool.disk_size_gib}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
        ],
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "tags": {**_tags(args.tags), BATCH_POOL_LABEL: pool.name},
    }


def node_pool_spec(pool: KarpenterPoolLike, node_class: str) -> dict[str, Any]:
    """NodePool `spec` (karpenter.sh/v1) of one pool."""
    template_spec: dict[str, Any] = {
        "nodeClassRef": {"group": NODE_CLASS_GROUP, "kind": NODE_CLASS_KIND, "name": node_class},
        "requirements": [
            {
                "key": "node.kubernetes.io/instance-type",
                "operator": "In",
                "values": list(pool.instance_types),
            },
            {
                "key": "karpenter.sh/capacity-type",
                "operator": "In",
                "values": list(pool.capacity_types),
            },
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        ],
        "expireAfter": EXPIRE_AFTER,
    }
    if pool.taints:
        template_spec["taints"] = [
            {"key": key, "value": value, "effect": effect} for key, value, effect in pool.taints
        ]
    return {
        "template": {"metadata": {"labels": dict(pool.labels)}, "spec": template_spec},
        # `nodes` is a quantity: a string, as the API server stores it (no diff on refresh)
        "limits": {"nodes": str(pool.max_nodes)},
        "disruption": {
            "consolidationPolicy": "WhenEmptyOrUnderutilized",
            "consolidateAfter": CONSOLIDATE_AFTER,
            "budgets": [{"nodes": DISRUPTION_BUDGET}],
        },
    }


class Karpenter(pulumi.ComponentResource):
    """Karpenter's controller, EC2NodeClasses and NodePools. Type token `dex:k8s:Karpenter`.
    Give it the Kubernetes provider in `opts`."""

    release: k8s.helm.v3.Release
    node_classes: dict[str, k8s.apiextensions.CustomResource]
    node_pools: dict[str, k8s.apiextensions.CustomResource]

    def __init__(
        self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:k8s:Karpenter", name, None, opts)
        spec = args.spec
        self.release = helm_release(
            f"{name}-release",
            release_chart(args),
            release_values(args),
            pulumi.ResourceOptions(parent=self, depends_on=list(spec.ready)),
        )
        self.node_classes = {}
        self.node_pools = {}
        for pool in spec.pools:
            labels = {**MANAGED_BY, BATCH_POOL_LABEL: pool.name}
            node_class = k8s.apiextensions.CustomResource(
                f"{name}-{pool.name}-nodeclass",
                api_version=NODE_CLASS_API,
                kind=NODE_CLASS_KIND,
                metadata={"name": pool.name, "labels": labels},
                spec=node_class_spec(args, pool),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
            )
            self.node_classes[pool.name] = node_class
            self.node_pools[pool.name] = k8s.apiextensions.CustomResource(
                f"{name}-{pool.name}-nodepool",
                api_version=NODE_POOL_API,
                kind="NodePool",
                metadata={"name": pool.name, "labels": labels},
                spec=node_pool_spec(pool, pool.name),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release, node_class]),
            )
        self.register_outputs(
            {
                "release": self.release.name,
                "node_pools": sorted(self.node_pools),
            }
        )
