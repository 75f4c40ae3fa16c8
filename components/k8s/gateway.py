"""The edge: the Gateway API, implemented by Envoy Gateway on both clouds, TLS from cert-manager
and the `dex` ClusterIssuer every certificate comes from (ACME, or a self-signed CA for dev).

What is where (docs/adr/0003-gateway-api.md says why):
- The Envoy Gateway release (`oci://docker.io/envoyproxy/gateway-helm`) in `platform`. Its `crds`
  subchart (`crds.enabled`, on by default) installs, from its `crds/` folder, the Gateway API
  CRDs (bundle v1.6.1, experimental channel: a superset of the standard one) and Envoy
  Gateway's own (`gateway.envoyproxy.io`). Helm installs `crds/` on the first install only: an
  upgrade of the chart applies the new CRDs first (docs/adr/0003-gateway-api.md). Every Gateway
  API and Envoy Gateway object of the program, and cert-manager, waits for this release.
- The Envoy proxies run in the controller's namespace (`platform`, the default: Envoy Gateway
  v1.9.0 `internal/infrastructure/kubernetes/proxy_infra.go` GetResourceNamespace), labelled
  `PROXY_LABELS`, behind one LoadBalancer Service created by the controller. Listener ports
  below 1024 listen in the pod on port + 10000 (`internal/gatewayapi/listener.go`): the
  NetworkPolicies admit 10080/10443.
- One Gateway `dex` in `platform`: an HTTPS listener per host (`api.`, `mlflow.`, `airflow.`,
  `grafana.` + domain), each admitting routes only from the namespace that serves it, with a
  certificate from an explicit cert-manager Certificate in `platform`; and an HTTP listener on
  80 that admits routes from `platform` only: the redirect to HTTPS below, and cert-manager's
  HTTP-01 solver routes (created in the Certificate's namespace, with an Exact path match on
  `/.well-known/acme-challenge/<token>`, which wins over the redirect's PathPrefix `/`).
- A ClientTrafficPolicy on the Gateway: TLS 1.2 at least. Each workload's HTTPRoute (built by
  `https_route`) sends HSTS.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.k8s.base import (
    AIRFLOW_NS,
    APPS_NS,
    MANAGED_BY,
    MLFLOW_NS,
    OBSERVABILITY_NS,
    PLATFORM_NS,
    Chart,
    helm_release,
    resources,
)
from components.options import take_depends_on

ENVOY_GATEWAY_CHART = "oci://docker.io/envoyproxy/gateway-helm"
ENVOY_GATEWAY_VERSION = "v1.9.0"
CERT_MANAGER_VERSION = "v1.21.1"
GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_GROUP = "gateway.networking.k8s.io"
ENVOY_GATEWAY_API = "gateway.envoyproxy.io/v1alpha1"
CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"
"""The controller name Envoy Gateway's chart configures (`config.envoyGateway.gateway`)."""
GATEWAY_CLASS = "dex"
GATEWAY = "dex"
GATEWAY_NS = PLATFORM_NS
PROXY_CONFIG = "dex-proxy"
"""The EnvoyProxy the GatewayClass points at: replicas, resources and Service of the proxies."""
CLUSTER_ISSUER = "dex"
"""The ClusterIssuer every certificate of the platform comes from."""
HTTP_LISTENER = "http"
PROXY_LABELS = {
    "app.kubernetes.io/name": "envoy",
    "app.kubernetes.io/component": "proxy",
    "app.kubernetes.io/managed-by": "envoy-gateway",
}
"""The labels of every Envoy proxy pod (Envoy Gateway v1.9.0
`internal/infrastructure/kubernetes/proxy/resource.go` EnvoyAppLabel)."""
CONTROLLER_LABELS = {"control-plane": "envoy-gateway"}
PROXY_PORTS = {80: 10080, 443: 10443}
"""Listener port -> the port the proxy pod listens on (privileged ports shifted by 10000)."""
XDS_PORT = 18000
"""The controller's xDS server, which the proxies connect to."""
WEBHOOK_PORT = 9443
"""The controller's topology-injector webhook, which the API server calls."""
HSTS = "max-age=31536000; includeSubDomains"
ACME_CHALLENGE_PATH = "/.well-known/acme-challenge/"
API_BODY_LIMIT = "1Mi"
"""The API's request body limit (ingress-nginx had `proxy-body-size: 1m`)."""


@dataclass(frozen=True)
class Backend:
    """One service the Gateway exposes: its host prefix, where it runs and its ports."""

    host: str
    """The host's first label: `api` serves `api.<domain>`."""
    namespace: str
    service: str
    """The Kubernetes Service the route sends to."""
    port: int
    """The Service's port."""
    pod_port: int
    """The port the pods listen on (what the NetworkPolicies see)."""
    pods: dict[str, str] | None = None
    """The backend pods' labels, where this program sets them (None: a chart's pods)."""


BACKENDS: dict[str, Backend] = {
    "api": Backend("api", APPS_NS, "api", 80, 8000, {"app.kubernetes.io/name": "api"}),
    # community-charts mlflow 1.11.5: `service.port` 80 -> `service.containerPort` 5000
    "mlflow": Backend("mlflow", MLFLOW_NS, "mlflow", 80, 5000),
    # apache-airflow chart 1.21.0: `<fullname>-api-server` on `ports.apiServer` 8080
    "airflow": Backend("airflow", AIRFLOW_NS, "airflow-api-server", 8080, 8080),
    # kube-prometheus-stack (release `kps`) -> grafana chart: `kps-grafana` 80 -> 3000
    "grafana": Backend("grafana", OBSERVABILITY_NS, "kps-grafana", 80, 3000),
}
"""Every service behind the Gateway, by host prefix."""


def listener_name(host: str) -> str:
    return f"https-{host}"


def tls_secret(host: str) -> str:
    return f"{host}-tls"


def envoy_gateway_values(replicas: int) -> dict[str, Any]:
    """The controller: its CRDs from the chart (Gateway API and Envoy Gateway), HA in prod."""
    return {
        "crds": {"enabled": True},
        "deployment": {
            "replicas": replicas,
            "envoyGateway": {"resources": resources("100m", "512Mi", "1")},
            "pod": {
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": CONTROLLER_LABELS},
                    }
                ]
            },
        },
        "podDisruptionBudget": {"minAvailable": 1 if replicas > 1 else 0},
    }


def cert_manager_values() -> dict[str, Any]:
    return {
        "crds": {"enabled": True, "keep": True},
        # Gateway API support (cert-manager v1.21.1 ControllerConfiguration `gatewayAPI.enabled`;
        # `enableGatewayAPI` is its deprecated spelling): the ACME HTTP-01 solver's HTTPRoutes.
        # The Gateway API CRDs must exist before the controller starts: the release waits for
        # Envoy Gateway's.
        "config": {"gatewayAPI": {"enabled": True}},
        "prometheus": {"enabled": True, "servicemonitor": {"enabled": True}},
        "resources": {
            "requests": {"cpu": "20m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "256Mi"},
        },
    }


def envoy_proxy_spec(replicas: int) -> dict[str, Any]:
    """The proxies: `replicas` of them across zones, the client's address kept
    (`externalTrafficPolicy: Local`), a disruption budget when there are two or more."""
    kubernetes: dict[str, Any] = {
        "envoyDeployment": {
            "replicas": replicas,
            "container": {"resources": resources("200m", "512Mi", "2")},
            "pod": {
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": PROXY_LABELS},
                    }
                ]
            },
        },
        "envoyService": {"externalTrafficPolicy": "Local"},
    }
    if replicas > 1:
        kubernetes["envoyPDB"] = {"minAvailable": 1}
    return {"provider": {"type": "Kubernetes", "kubernetes": kubernetes}}


def gateway_class_spec() -> dict[str, Any]:
    return {
        "controllerName": CONTROLLER_NAME,
        "parametersRef": {
            "group": "gateway.envoyproxy.io",
            "kind": "EnvoyProxy",
            "name": PROXY_CONFIG,
            "namespace": GATEWAY_NS,
        },
    }


def gateway_spec(domain: str) -> dict[str, Any]:
    """The `dex` Gateway: plain HTTP only for routes of its own namespace (the redirect and
    the ACME challenges), and one HTTPS listener per host that admits only the routes of the
    namespace serving that host."""
    listeners: list[dict[str, Any]] = [
        {
            "name": HTTP_LISTENER,
            "port": 80,
            "protocol": "HTTP",
            "allowedRoutes": {
                "namespaces": {"from": "Same"},
                "kinds": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}],
            },
        }
    ]
    for backend in BACKENDS.values():
        listeners.append(
            {
                "name": listener_name(backend.host),
                "hostname": f"{backend.host}.{domain}",
                "port": 443,
                "protocol": "HTTPS",
                "tls": {
                    "mode": "Terminate",
                    "certificateRefs": [
                        {"group": "", "kind": "Secret", "name": tls_secret(backend.host)}
                    ],
                },
                "allowedRoutes": {
                    "namespaces": {
                        "from": "Selector",
                        "selector": {
                            "matchLabels": {"kubernetes.io/metadata.name": backend.namespace}
                        },
                    },
                    "kinds": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}],
                },
            }
        )
    return {"gatewayClassName": GATEWAY_CLASS, "listeners": listeners}


def certificate_spec(host: str, domain: str) -> dict[str, Any]:
    """The certificate of one HTTPS listener, in the Gateway's namespace (so the listener
    references its Secret without a ReferenceGrant, and ACME challenges land where the HTTP
    listener admits them)."""
    return {
        "secretName": tls_secret(host),
        "dnsNames": [f"{host}.{domain}"],
        "issuerRef": {"name": CLUSTER_ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
    }


def gateway_listener(section: str) -> dict[str, str]:
    """A route's parent: one listener of the `dex` Gateway."""
    return {
        "group": GATEWAY_GROUP,
        "kind": "Gateway",
        "name": GATEWAY,
        "namespace": GATEWAY_NS,
        "sectionName": section,
    }


def redirect_route_spec(domain: str) -> dict[str, Any]:
    """Everything on plain HTTP answers 301 to HTTPS (cert-manager's challenge routes, with
    their Exact path, take precedence on `/.well-known/acme-challenge/<token>`). The route
    names every host, so it shares each host's virtual host with the challenge routes."""
    return {
        "parentRefs": [gateway_listener(HTTP_LISTENER)],
        "hostnames": [f"{b.host}.{domain}" for b in BACKENDS.values()],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "filters": [
                    {
                        "type": "RequestRedirect",
                        "requestRedirect": {"scheme": "https", "statusCode": 301},
                    }
                ],
            }
        ],
    }


def https_route_spec(backend: Backend, domain: str) -> dict[str, Any]:
    """One workload's route: its host on its HTTPS listener, to its Service, with HSTS."""
    return {
        "parentRefs": [gateway_listener(listener_name(backend.host))],
        "hostnames": [f"{backend.host}.{domain}"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "filters": [
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {
                            "set": [{"name": "Strict-Transport-Security", "value": HSTS}]
                        },
                    }
                ],
                "backendRefs": [
                    {"group": "", "kind": "Service", "name": backend.service, "port": backend.port}
                ],
            }
        ],
    }


def route_target(name: str) -> dict[str, str]:
    """A policy's target: the HTTPRoute `name` of the policy's own namespace."""
    return {"group": GATEWAY_GROUP, "kind": "HTTPRoute", "name": name}


def client_traffic_spec() -> dict[str, Any]:
    """TLS 1.2 at least on every HTTPS listener (Envoy Gateway's default too: explicit, so a
    change of default cannot lower it)."""
    return {
        "targetRefs": [{"group": GATEWAY_GROUP, "kind": "Gateway", "name": GATEWAY}],
        "tls": {"minVersion": "1.2"},
    }


def body_limit_spec(route: str, limit: str) -> dict[str, Any]:
    """Requests larger than `limit` are refused with 413 (Envoy's buffer filter: the proxy
    holds each request in memory up to `limit`, so only small limits are sensible)."""
    return {"targetRefs": [route_target(route)], "requestBuffer": {"limit": limit}}


def basic_auth_spec(route: str, secret: str) -> dict[str, Any]:
    """HTTP basic auth on `route`, against the htpasswd in `secret` (key `.htpasswd`)."""
    return {"targetRefs": [route_target(route)], "basicAuth": {"users": {"name": secret}}}


def htpasswd_line(user: str, password: str) -> str:
    """One htpasswd line in the only hash Envoy's basic_auth filter accepts: `{SHA}` (base64 of
    the SHA-1 digest; Envoy Gateway v1.9.0 api/v1alpha1/basic_auth_types.go). Unsalted SHA-1 is
    weak for human passwords; this one is 32 random characters (~190 bits), out of reach of a
    dictionary or brute force."""
    digest = hashlib.sha1(password.encode()).digest()  # noqa: S324 - the format Envoy reads
    return f"{user}:{{SHA}}{base64.b64encode(digest).decode()}"


def issuer_specs(tls_issuer: str, email: str | None, server: str) -> list[dict[str, Any]]:
    """The cert-manager objects behind the `dex` ClusterIssuer, in apply order."""
    if tls_issuer == "acme":
        solver = {
            "http01": {
                "gatewayHTTPRoute": {
                    "parentRefs": [
                        {
                            "group": GATEWAY_GROUP,
                            "kind": "Gateway",
                            "name": GATEWAY,
                            "namespace": GATEWAY_NS,
                            "sectionName": HTTP_LISTENER,
                        }
                    ]
                }
            }
        }
        return [
            {
                "apiVersion": "cert-manager.io/v1",
                "kind": "ClusterIssuer",
                "metadata": {"name": CLUSTER_ISSUER, "labels": MANAGED_BY},
                "spec": {
                    "acme": {
                        "email": email,
                        "server": server,
                        "privateKeySecretRef": {"name": "dex-acme-account"},
                        "solvers": [solver],
                    }
                },
            }
        ]
    # dev: a self-signed root, a CA certificate from it, and the CA issuer everything uses
    return [
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": "dex-selfsigned-root", "labels": MANAGED_BY},
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            # a ClusterIssuer's CA secret lives in cert-manager's own namespace
            "metadata": {"name": "dex-ca", "namespace": PLATFORM_NS, "labels": MANAGED_BY},
            "spec": {
                "isCA": True,
                "commonName": "dex-dev-ca",
                "secretName": "dex-ca",
                "duration": "87600h",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {
                    "name": "dex-selfsigned-root",
                    "kind": "ClusterIssuer",
                    "group": "cert-manager.io",
                },
            },
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": CLUSTER_ISSUER, "labels": MANAGED_BY},
            "spec": {"ca": {"secretName": "dex-ca"}},
        },
    ]


def custom_resource(
    name: str,
    api_version: str,
    kind: str,
    metadata: dict[str, Any],
    spec: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name, api_version=api_version, kind=kind, metadata=metadata, spec=spec, opts=opts
    )


def https_route(
    name: str,
    backend: Backend,
    domain: str,
    opts: pulumi.ResourceOptions,
    labels: dict[str, str] | None = None,
) -> k8s.apiextensions.CustomResource:
    """The HTTPRoute of one workload, in its namespace, named after its host prefix. `opts`
    must make it wait for the Envoy Gateway release (the CRDs)."""
    return custom_resource(
        name,
        GATEWAY_API,
        "HTTPRoute",
        {"name": backend.host, "namespace": backend.namespace, "labels": labels or MANAGED_BY},
        https_route_spec(backend, domain),
        opts,
    )


@dataclass(frozen=True)
class EdgeGatewayArgs:
    domain: str
    """Every host is `<backend>.<domain>`."""
    tls_issuer: str
    """`acme` or `self-signed`: what the `dex` ClusterIssuer is (`issuer_specs`)."""
    acme_email: str | None
    acme_server: str
    replicas: int
    """Replicas of the controller and of the proxies."""


ENVOY_GATEWAY = Chart(
    release="envoy-gateway",
    chart=ENVOY_GATEWAY_CHART,
    version=ENVOY_GATEWAY_VERSION,
    repo="",  # an OCI chart: the reference is the whole oci:// URL
    namespace=PLATFORM_NS,
)
CERT_MANAGER = Chart(
    release="cert-manager",
    chart="cert-manager",
    version=CERT_MANAGER_VERSION,
    repo="https://charts.jetstack.io",
    namespace=PLATFORM_NS,
)


class EdgeGateway(pulumi.ComponentResource):
    """Envoy Gateway, cert-manager, the `dex` ClusterIssuer, the `dex` Gateway with its
    certificates, the HTTP -> HTTPS redirect and the TLS policy. Type token
    `dex:k8s:EdgeGateway` (it replaces `dex:k8s:IngressTls`: cert-manager and the issuers keep
    their state through the alias the platform gives it)."""

    controller: k8s.helm.v3.Release
    cert_manager: k8s.helm.v3.Release
    issuer: pulumi.Resource
    certificates: list[k8s.apiextensions.CustomResource]
    gateway: k8s.apiextensions.CustomResource
    ready: list[pulumi.Resource]
    """What workloads and their routes wait for: the Gateway API and Envoy Gateway CRDs
    (the release) and the issuer."""

    def __init__(
        self, name: str, args: EdgeGatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        """`opts.depends_on`: what both charts need first (their namespace and policies, the
        ServiceMonitor CRD). Children do not inherit a component's `depends_on`."""
        own, depends_on = take_depends_on(opts)
        super().__init__("dex:k8s:EdgeGateway", name, None, own)
        self.controller = helm_release(
            f"{name}-envoy-gateway",
            ENVOY_GATEWAY,
            envoy_gateway_values(args.replicas),
            pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        # cert-manager watches Gateway API kinds: their CRDs first
        self.cert_manager = helm_release(
            f"{name}-cert-manager",
            CERT_MANAGER,
            cert_manager_values(),
            pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, self.controller]),
        )
        self.issuer = self._issuer(name, args)
        self._gateway(name, args)
        self.ready = [self.controller, self.issuer]
        self.register_outputs(
            {
                "gateway": f"{GATEWAY_NS}/{GATEWAY}",
                "gateway_class": GATEWAY_CLASS,
                "cluster_issuer": CLUSTER_ISSUER,
                "tls": args.tls_issuer,
                "hosts": [f"{b.host}.{args.domain}" for b in BACKENDS.values()],
            }
        )

    def _issuer(self, name: str, args: EdgeGatewayArgs) -> pulumi.Resource:
        """The cert-manager objects behind the `dex` ClusterIssuer, each after the one before
        (the first after cert-manager); returns the ClusterIssuer."""
        previous: pulumi.Resource = self.cert_manager
        for spec in issuer_specs(args.tls_issuer, args.acme_email, args.acme_server):
            meta = spec["metadata"]
            previous = custom_resource(
                f"{name}-{spec['kind'].lower()}-{meta['name']}",
                spec["apiVersion"],
                spec["kind"],
                meta,
                spec["spec"],
                pulumi.ResourceOptions(parent=self, depends_on=[previous]),
            )
        return previous

    def _edge(
        self,
        name: str,
        kind: str,
        obj_name: str,
        spec: dict[str, Any],
        wait: list[pulumi.Resource],
    ) -> k8s.apiextensions.CustomResource:
        """One object of the edge (`name`: its resource name); all wait for the release (its
        CRDs) and for `wait`."""
        api_version = {
            "EnvoyProxy": ENVOY_GATEWAY_API,
            "ClientTrafficPolicy": ENVOY_GATEWAY_API,
            "Certificate": "cert-manager.io/v1",
        }.get(kind, GATEWAY_API)
        meta: dict[str, Any] = {"name": obj_name, "labels": MANAGED_BY}
        if kind != "GatewayClass":
            meta["namespace"] = GATEWAY_NS
        return custom_resource(
            name,
            api_version,
            kind,
            meta,
            spec,
            pulumi.ResourceOptions(parent=self, depends_on=[self.controller, *wait]),
        )

    def _gateway(self, name: str, args: EdgeGatewayArgs) -> None:
        """The proxies' EnvoyProxy and GatewayClass, a certificate per host, the `dex`
        Gateway, the HTTP -> HTTPS redirect and the TLS policy."""
        domain = args.domain
        proxy = self._edge(
            f"{name}-envoy-proxy", "EnvoyProxy", PROXY_CONFIG, envoy_proxy_spec(args.replicas), []
        )
        gateway_class = self._edge(
            f"{name}-gateway-class", "GatewayClass", GATEWAY_CLASS, gateway_class_spec(), [proxy]
        )
        self.certificates = [
            self._edge(
                f"{name}-certificate-{b.host}",
                "Certificate",
                tls_secret(b.host),
                certificate_spec(b.host, domain),
                [self.issuer],
            )
            for b in BACKENDS.values()
        ]
        self.gateway = self._edge(
            f"{name}-gateway", "Gateway", GATEWAY, gateway_spec(domain), [gateway_class]
        )
        redirect = redirect_route_spec(domain)
        self._edge(f"{name}-http-redirect", "HTTPRoute", "http-to-https", redirect, [self.gateway])
        self._edge(
            f"{name}-client-tls",
            "ClientTrafficPolicy",
            "dex-tls",
            client_traffic_spec(),
            [self.gateway],
        )
