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
from components.k8s.gateway import (
    BACKENDS,
    CERT_MANAGER,
    CONTROLLER_LABELS,
    PROXY_LABELS,
    PROXY_PORTS,
    WEBHOOK_PORT,
    XDS_PORT,
    Backend,
)
from components.k8s.secrets import SEALED_SECRETS, SEALED_SECRETS_CHART

ANYWHERE = [{"ipBlock": {"cidr": "0.0.0.0/0"}}]


def _ns(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _ports(*numbers: pulumi.Input[int], protocol: str = "TCP") -> list[dict[str, Any]]:
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
HTTPS_OUT = Allow("allow-https-out", "Egress", ANYWHERE, _ports(443))
"""Object storage, cloud identity (STS / metadata token exchange), registries, ACME: public
endpoints on 443."""
KUBE_API_OUT = Allow("allow-kube-api-out", "Egress", ANYWHERE, _ports(443, 6443))
TO_MLFLOW = Allow("allow-mlflow-out", "Egress", [_ns(MLFLOW_NS)], _ports(5000))
METADATA_OUT = Allow(
    "allow-metadata-out",
    "Egress",
    [
        {"ipBlock": {"cidr": "169.254.169.254/32"}},
        {"ipBlock": {"cidr": "169.254.169.252/32"}},
        {"ipBlock": {"cidr": "169.254.170.23/32"}},
    ],
    _ports(80, 988),
)
"""GKE's metadata server (Workload Identity tokens: 169.254.169.254:80, and :988 under
Dataplane V2) and the EKS Pod Identity agent (169.254.170.23:80)."""


@dataclass(frozen=True)
class ServicePorts:
    """The managed services' ports, from the capability contracts (Memorystore with TLS
    listens on 6378, not 6379)."""

    database: pulumi.Input[int] = 5432
    cache: pulumi.Input[int] = 6379


@dataclass(frozen=True)
class Webhook:
    """A server in `platform` that the API server calls: its pods (the chart's own selector
    labels at the pinned version) and the port its container listens on."""

    name: str
    pods: dict[str, str]
    port: int


WEBHOOKS = (
    # cert-manager v1.21.1 templates/webhook-deployment.yaml; `webhook.securePort` 10250
    Webhook(
        "cert-manager",
        {
            "app.kubernetes.io/name": "webhook",
            "app.kubernetes.io/instance": CERT_MANAGER.release,
            "app.kubernetes.io/component": "webhook",
        },
        10250,
    ),
    # sealed-secrets chart 2.18.5 templates/deployment.yaml (`sealed-secrets.matchLabels`),
    # `containerPorts.http` 8080: kubeseal reaches it through the API server's service proxy
    Webhook(
        "sealed-secrets",
        {
            "app.kubernetes.io/name": SEALED_SECRETS_CHART,
            "app.kubernetes.io/instance": SEALED_SECRETS.release,
        },
        8080,
    ),
    # Envoy Gateway v1.9.0 templates/envoy-gateway-deployment.yaml: the topology injector
    # (`topologyInjector.enabled`, on by default) is served by the controller on 9443
    Webhook("envoy-gateway", CONTROLLER_LABELS, WEBHOOK_PORT),
)
"""The admission webhooks (and kubeseal's service proxy) the API server calls, each admitted
on its own pods and port only."""
KONNECTIVITY_AGENTS = {
    **_ns("kube-system"),
    "podSelector": {"matchLabels": {"k8s-app": "konnectivity-agent"}},
}
"""GKE's konnectivity agents: where the API server's calls into the cluster come from when it
reaches the nodes through Konnectivity (the call then has a pod's address, which an `ipBlock`
does not match under Dataplane V2)."""


def api_server_peers(cidrs: tuple[pulumi.Input[str], ...]) -> list[dict[str, Any]]:
    """Where the API server's calls come from: the konnectivity agents, and the control
    plane's addresses (`cidrs`; unknown when empty: any address outside the cluster)."""
    blocks = [{"ipBlock": {"cidr": c}} for c in cidrs] if cidrs else ANYWHERE
    return [KONNECTIVITY_AGENTS, *blocks]


def webhook_allows(cidrs: tuple[pulumi.Input[str], ...]) -> list[Allow]:
    """One policy per webhook: its pods admit the API server on their port."""
    peers = api_server_peers(cidrs)
    return [
        Allow(f"allow-webhook-{hook.name}", "Ingress", peers, _ports(hook.port), hook.pods)
        for hook in WEBHOOKS
    ]


BOOTSTRAP_PODS = {"app.kubernetes.io/name": "database-bootstrap"}
"""The database bootstrap Job's pods: the only ones in `platform` that reach Postgres."""
PROXIES = {**_ns(PLATFORM_NS), "podSelector": {"matchLabels": PROXY_LABELS}}
"""The Envoy proxies of the `dex` Gateway, as a peer (they run in the controller's namespace)."""


def from_gateway(backend: Backend) -> Allow:
    """The backend's pods admit the Envoy proxies, on the port they listen on."""
    return Allow("allow-from-gateway", "Ingress", [PROXIES], _ports(backend.pod_port), backend.pods)


def gateway_to(backend: Backend) -> Allow:
    """The proxies reach one backend's pods, on the port they listen on."""
    peer: dict[str, Any] = dict(_ns(backend.namespace))
    if backend.pods:
        peer["podSelector"] = {"matchLabels": backend.pods}
    return Allow(
        f"allow-gateway-to-{backend.host}", "Egress", [peer], _ports(backend.pod_port), PROXY_LABELS
    )


PROXY_TO_CONTROLLER = Allow(
    "allow-proxies-to-xds",
    "Egress",
    [{"podSelector": {"matchLabels": CONTROLLER_LABELS}}],
    _ports(XDS_PORT),
    PROXY_LABELS,
)
"""The proxies fetch their configuration from the controller's xDS server (also covered by
the namespace's own allow-same-namespace rules: explicit, so tightening those keeps it)."""


def _platform_allows(
    ports: ServicePorts, api_server_cidrs: tuple[pulumi.Input[str], ...] = ()
) -> list[Allow]:
    """`platform`: the Gateway's proxies and controller, cert-manager, sealed-secrets and the
    database bootstrap Job."""
    return [
        *SAME_NAMESPACE,
        SCRAPE,
        # the load balancer reaches the proxies on the ports the Gateway's 80/443 listen
        # on in the pod (10080/10443), from any client address (externalTrafficPolicy Local)
        Allow(
            "allow-gateway-public",
            "Ingress",
            ANYWHERE,
            _ports(*PROXY_PORTS.values()),
            PROXY_LABELS,
        ),
        *webhook_allows(api_server_cidrs),
        *(gateway_to(backend) for backend in BACKENDS.values()),
        PROXY_TO_CONTROLLER,
        HTTPS_OUT,
        # cert-manager's HTTP-01 self-check fetches the challenge through the public endpoint
        Allow("allow-http-out", "Egress", ANYWHERE, _ports(80)),
        KUBE_API_OUT,
        METADATA_OUT,
        TELEMETRY_OUT,
        Allow(
            "allow-bootstrap-database-out",
            "Egress",
            ANYWHERE,
            _ports(ports.database),
            BOOTSTRAP_PODS,
        ),
    ]


def _observability_allows() -> list[Allow]:
    return [
        *SAME_NAMESPACE,
        from_gateway(BACKENDS["grafana"]),
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
    ]


def policies(
    ports: ServicePorts, api_server_cidrs: tuple[pulumi.Input[str], ...] = ()
) -> dict[str, list[Allow]]:
    """What each namespace allows on top of its default deny. Every namespace also gets DNS."""
    database_out = Allow("allow-database-out", "Egress", ANYWHERE, _ports(ports.database))
    return {
        PLATFORM_NS: _platform_allows(ports, api_server_cidrs),
        MLFLOW_NS: [
            *SAME_NAMESPACE,
            SCRAPE,
            from_gateway(BACKENDS["mlflow"]),
            Allow(
                "allow-tracking-clients", "Ingress", [_ns(APPS_NS), _ns(AIRFLOW_NS)], _ports(5000)
            ),
            database_out,
            HTTPS_OUT,
            METADATA_OUT,
            TELEMETRY_OUT,
        ],
        AIRFLOW_NS: [
            *SAME_NAMESPACE,
            SCRAPE,
            from_gateway(BACKENDS["airflow"]),
            database_out,
            HTTPS_OUT,  # also the weather API the pipeline ingests from
            KUBE_API_OUT,  # the KubernetesExecutor launches task pods
            METADATA_OUT,
            TO_MLFLOW,
            TELEMETRY_OUT,
        ],
        APPS_NS: [
            *SAME_NAMESPACE,
            SCRAPE,
            from_gateway(BACKENDS["api"]),
            Allow("allow-cache-out", "Egress", ANYWHERE, _ports(ports.cache)),
            HTTPS_OUT,
            METADATA_OUT,
            TO_MLFLOW,
            TELEMETRY_OUT,
        ],
        OBSERVABILITY_NS: _observability_allows(),
    }


def network_policy_specs(
    namespace: str,
    ports: ServicePorts | None = None,
    api_server_cidrs: tuple[pulumi.Input[str], ...] = (),
) -> list[tuple[str, dict[str, Any]]]:
    """(name, spec) of every NetworkPolicy of one namespace, default deny first."""
    specs: list[tuple[str, dict[str, Any]]] = [
        ("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    ]
    for allow in [DNS, *policies(ports or ServicePorts(), api_server_cidrs)[namespace]]:
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


@dataclass(frozen=True)
class NamespacesArgs:
    ports: ServicePorts = ServicePorts()
    """The managed services' ports the network policies open."""
    api_server_cidrs: tuple[pulumi.Input[str], ...] = ()
    """Where the API server's calls to the webhooks come from, besides GKE's konnectivity
    agents: the GKE control plane's range (`masterIpv4CidrBlock`), or the VPC's on EKS (the
    control plane's network interfaces sit in the cluster's subnets). Defaults to none known:
    the webhooks then admit any address outside the cluster, on their own pods and ports."""


class Namespaces(pulumi.ComponentResource):
    """Every namespace of the platform with its Pod Security labels and network policies.
    Type token `dex:k8s:Namespaces`."""

    def __init__(
        self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:k8s:Namespaces", name, None, opts)
        ports = args.ports
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
            for policy, spec in network_policy_specs(ns, ports, args.api_server_cidrs):
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-{ns}-{policy}",
                    metadata=untyped({"name": policy, "namespace": ns, "labels": MANAGED_BY}),
                    spec=untyped(spec),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
                )
        self.register_outputs({"namespaces": list(NAMESPACES)})
