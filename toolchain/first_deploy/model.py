"""What every first-deploy check shares: the finding it reports, and the resource types and
API groups it looks for."""

from __future__ import annotations

from dataclasses import dataclass

RELEASE = "kubernetes:helm.sh/v3:Release"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
NODE_CAPACITY = ("aws:eks/nodeGroup:NodeGroup", "gcp:container/nodePool:NodePool")
CLUSTERS = ("aws:eks/cluster:Cluster", "gcp:container/cluster:Cluster")
EKS_ADDON = "aws:eks/addon:Addon"
EKS_NETWORK_ADDONS = ("vpc-cni", "coredns", "kube-proxy")
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet")
BUILTIN_GROUPS = frozenset(
    {
        "core", "apps", "batch", "policy", "autoscaling", "networking.k8s.io",
        "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io",
        "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io",
        "discovery.k8s.io", "certificates.k8s.io", "flowcontrol.apiserver.k8s.io",
        "apiregistration.k8s.io", "resource.k8s.io", "events.k8s.io",
    }
)  # fmt: skip
"""API groups the API server serves itself; every other group needs a CRD first
(`gateway.networking.k8s.io` included)."""


@dataclass(frozen=True)
class Finding:
    check: str
    urn: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.urn.rsplit('::', 1)[-1]}: {self.message}"
