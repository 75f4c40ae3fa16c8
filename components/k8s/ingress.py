"""Ingress and TLS: ingress-nginx behind the cloud's load balancer, cert-manager, and the
ClusterIssuer every Ingress asks for a certificate from (ACME, or a self-signed CA for dev).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.k8s.base import MANAGED_BY, PLATFORM_NS, helm_release

INGRESS_NGINX_VERSION = "4.15.1"
CERT_MANAGER_VERSION = "v1.21.1"
INGRESS_CLASS = "nginx"
CLUSTER_ISSUER = "dex"
"""The ClusterIssuer every Ingress names (`cert-manager.io/cluster-issuer`)."""


def ingress_nginx_values(replicas: int) -> dict[str, Any]:
    return {
        "controller": {
            "replicaCount": replicas,
            "minAvailable": 1,
            "ingressClassResource": {"name": INGRESS_CLASS, "default": True},
            "allowSnippetAnnotations": False,
            "config": {
                "ssl-redirect": "true",
                "force-ssl-redirect": "true",
                "hsts": "true",
                "hsts-include-subdomains": "true",
                "ssl-protocols": "TLSv1.2 TLSv1.3",
                "server-tokens": "false",
                "use-forwarded-headers": "false",
                "enable-opentelemetry": "false",
                "log-format-escape-json": "true",
            },
            "service": {"externalTrafficPolicy": "Local"},
            "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"},
            },
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "controller"}},
                }
            ],
        }
    }


def cert_manager_values() -> dict[str, Any]:
    return {
        "crds": {"enabled": True, "keep": True},
        "prometheus": {"enabled": True, "servicemonitor": {"enabled": True}},
        "resources": {
            "requests": {"cpu": "20m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "256Mi"},
        },
    }


def issuer_specs(tls_issuer: str, email: str | None, server: str) -> list[dict[str, Any]]:
    """The cert-manager objects behind the `dex` ClusterIssuer, in apply order."""
    if tls_issuer == "acme":
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
                        "solvers": [{"http01": {"ingress": {"ingressClassName": INGRESS_CLASS}}}],
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


def tls_annotations() -> dict[str, str]:
    """What every Ingress of the platform carries: a certificate from the dex issuer, and
    HTTPS only."""
    return {
        "cert-manager.io/cluster-issuer": CLUSTER_ISSUER,
        "nginx.ingress.kubernetes.io/ssl-redirect": "true",
        "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
    }


class IngressTls(pulumi.ComponentResource):
    """ingress-nginx, cert-manager and the dex ClusterIssuer. Type token `dex:k8s:IngressTls`."""

    def __init__(
        self,
        name: str,
        tls_issuer: str,
        acme_email: str | None,
        acme_server: str,
        replicas: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dex:k8s:IngressTls", name, None, opts)
        self.controller = helm_release(
            f"{name}-ingress-nginx",
            release="ingress-nginx",
            chart="ingress-nginx",
            version=INGRESS_NGINX_VERSION,
            repo="https://kubernetes.github.io/ingress-nginx",
            namespace=PLATFORM_NS,
            values=ingress_nginx_values(replicas),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.cert_manager = helm_release(
            f"{name}-cert-manager",
            release="cert-manager",
            chart="cert-manager",
            version=CERT_MANAGER_VERSION,
            repo="https://charts.jetstack.io",
            namespace=PLATFORM_NS,
            values=cert_manager_values(),
            opts=pulumi.ResourceOptions(parent=self),
        )
        previous: list[pulumi.Resource] = [self.cert_manager]
        for spec in issuer_specs(tls_issuer, acme_email, acme_server):
            meta = spec["metadata"]
            obj = k8s.apiextensions.CustomResource(
                f"{name}-{spec['kind'].lower()}-{meta['name']}",
                api_version=spec["apiVersion"],
                kind=spec["kind"],
                metadata=meta,
                spec=spec["spec"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=previous),
            )
            previous = [obj]
        self.issuer = previous[0]
        self.ready: list[pulumi.Resource] = [self.controller, self.issuer]
        self.register_outputs(
            {"ingress_class": INGRESS_CLASS, "cluster_issuer": CLUSTER_ISSUER, "tls": tls_issuer}
        )
