"""What both clouds' compositions share once the capability contracts exist."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from components.contracts import ClusterOutputs


def kubernetes_provider(cluster: ClusterOutputs) -> k8s.Provider:
    """The Kubernetes provider for components/k8s, from the cluster contract. During a first
    preview the kubeconfig is unknown; the provider then defers Kubernetes resources instead
    of failing. Server-side apply lets large CRDs (kube-prometheus-stack) apply."""
    return k8s.Provider(
        "k8s",
        kubeconfig=cluster.kubeconfig,
        enable_server_side_apply=True,
        delete_unreachable=False,
    )
