"""Namespaces with Pod Security admission labels, and the network policies: each namespace
denies everything by default, then allows exactly what its workloads need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.k8s.base import (
    AIRFLOW_NS,
    APPS_NS,
    MANAGED_BY,
    MLFLOW_NS,
    NAMESPACES,
    OBSERVABILITY_NS,
    PLATFORM_NS,
    untyped,
)

ANYWHERE = [{"ipBlock": {"cidr": "0.0.0.0/0"}}]


def _ns(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _ports(*numbers: int, protocol: str = "TCP") -> list[dict[str, Any]]:
    return [{"port": n, "protocol": protocol} for n in numbers]


@dataclass(frozen=True)
class Allow:
    """One allow rule: a name, its direction, its peers and ports (empty: any port)."""

    name: str
    direction: str  # "Ingress" | "Egress"
    peers: list[dict[str, Any]]
    ports: list[dict[str, Any]]
    pods: dict[str, str] | None = None
    """Pods of the namespace the rule applies to (labels); None: every pod."""


DNS = Allow(
    "allow-dns",
    "Egress",
    [
        {
            **_ns("kube-system"),
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    _ports(53, protocol="UDP") + _ports(53),
)
SAME_NAMESPACE = [
    Allow("allow-same-namespace-in", "Ingress", [{"podSelector": {}}], []),
    Allow("allow-same-namespace-out", "Egress", [{"podSelector": {}}], []),
]
SCRAPE = Allow("allow-prometheus-scrape", "Ingress", [_ns(OBSERVABILITY_NS)], [])
TELEMETRY_OUT = Allow(
    "allow-telemetry-out", "Egress", [_ns(OBSERVABILITY_NS)], _ports(4317, 4318, 9091)
)
FROM_INGRESS = Allow("allow-from-ingress-controller", "Ingress", [_ns(PLATFORM_NS)], [])
HTTPS_OUT = Allow("allow-https-out", "Egress", ANYWHERE, _ports(443))
"""Object storage, cloud identity (STS / metadata token exchange), registries, ACME: public
endpoints on 443."""
KUBE_API_OUT = Allow("allow-kube-api-out", "Egress", ANYWHERE, _ports(443, 6443))
DATABASE_OUT = Allow("allow-database-out", "Egress", ANYWHERE, _ports(5432))
REDIS_OUT = Allow("allow-redis-out", "Egress", ANYWHERE, _ports(6379))
TO_MLFLOW = Allow("allow-mlflow-out", "Egress", [_ns(MLFLOW_NS)], _ports(5000))
METADATA_OUT = Allow(
    "allow-metadata-out",
    "Egress",
    [{"ipBlock": {"cidr": "169.254.169.254/32"}}, {"ipBlock": {"cidr": "169.254.169.252/32"}}],
    _ports(80, 988),
)
"""GKE's metadata server (Workload Identity tokens) and the EKS Pod Identity agent."""

POLICIES: dict[str, list[Allow]] = {
    PLATFORM_NS: [
        *SAME_NAMESPACE,
        SCRAPE,
        # the ingress controller's 80/443 from the load balancer; admission webhooks
        # (ingress-nginx 8443, cert-manager 10250, sealed-secrets 8080) from the API server
        Allow("allow-public-ingress", "Ingress", ANYWHERE, _ports(80, 443, 8443, 10250, 8080)),
        Allow(
            "allow-ingress-to-backends",
            "Egress",
            [_ns(APPS_NS), _ns(MLFLOW_NS), _ns(AIRFLOW_NS), _ns(OBSERVABILITY_NS)],
            [],
        ),
        HTTPS_OUT,
        # cert-manager's HTTP-01 self-check fetches the challenge through the public endpoint
        Allow("allow-http-out", "Egress", ANYWHERE, _ports(80)),
        KUBE_API_OUT,
        METADATA_OUT,
        TELEMETRY_OUT,
    ],
    MLFLOW_NS: [
        *SAME_NAMESPACE,
        SCRAPE,
        FROM_INGRESS,
        Allow("allow-tracking-clients", "Ingress", [_ns(APPS_NS), _ns(AIRFLOW_NS)], _ports(5000)),
        DATABASE_OUT,
        HTTPS_OUT,
        METADATA_OUT,
        TELEMETRY_OUT,
    ],
    AIRFLOW_NS: [
        *SAME_NAMESPACE,
        SCRAPE,
        FROM_INGRESS,
        DATABASE_OUT,
        HTTPS_OUT,  # also the weather API the pipeline ingests from
        KUBE_API_OUT,  # the KubernetesExecutor launches task pods
        METADATA_OUT,
        TO_MLFLOW,
        TELEMETRY_OUT,
    ],
    APPS_NS: [
        *SAME_NAMESPACE,
        SCRAPE,
        FROM_INGRESS,
        REDIS_OUT,
        HTTPS_OUT,
        METADATA_OUT,
        TO_MLFLOW,
        TELEMETRY_OUT,
    ],
    OBSERVABILITY_NS: [
        *SAME_NAMESPACE,
        FROM_INGRESS,
        Allow(
            "allow-telemetry-in",
            "Ingress",
            [{"namespaceSelector": {}}],
            _ports(4317, 4318, 9091),
        ),
        # Prometheus scrapes every namespace and the nodes (kubelet, node exporter)
        Allow("allow-scrape-out", "Egress", [{"namespaceSelector": {}}, *ANYWHERE], []),
        HTTPS_OUT,
        KUBE_API_OUT,
        METADATA_OUT,
    ],
}
"""What each namespace allows on top of its default deny. Every namespace also gets DNS."""


def network_policy_specs(namespace: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, spec) of every NetworkPolicy of one namespace, default deny first."""
    specs: list[tuple[str, dict[str, Any]]] = [
        ("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    ]
    for allow in [DNS, *POLICIES[namespace]]:
        peer_key = "from" if allow.direction == "Ingress" else "to"
        rule: dict[str, Any] = {peer_key: allow.peers}
        if allow.ports:
            rule["ports"] = allow.ports
        pods = {"matchLabels": allow.pods} if allow.pods else {}
        specs.append(
            (
                allow.name,
                {
                    "podSelector": pods,
                    "policyTypes": [allow.direction],
                    allow.direction.lower(): [rule],
                },
            )
        )
    return specs


class Namespaces(pulumi.ComponentResource):
    """Every namespace of the platform with its Pod Security labels and network policies.
    Type token `dex:k8s:Namespaces`."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dex:k8s:Namespaces", name, None, opts)
        self.namespaces: dict[str, k8s.core.v1.Namespace] = {}
        for ns, level in NAMESPACES.items():
            psa = {
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/enforce-version": "latest",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
            }
            namespace = k8s.core.v1.Namespace(
                f"{name}-{ns}",
                metadata=untyped({"name": ns, "labels": {**MANAGED_BY, **psa}}),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.namespaces[ns] = namespace
            for policy, spec in network_policy_specs(ns):
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-{ns}-{policy}",
                    metadata=untyped({"name": policy, "namespace": ns, "labels": MANAGED_BY}),
                    spec=untyped(spec),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
                )
        self.register_outputs({"namespaces": list(NAMESPACES)})
