"""Reachability: every connection a workload needs (Postgres and the cache on their real
ports, MLflow, OTLP, the Pushgateway, DNS, cloud APIs, the identity agent) and every call the
API server makes to a webhook is allowed by the NetworkPolicies at both ends, and the cluster
enforces NetworkPolicies at all."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from contracts.deployment import Plan
from toolchain.first_deploy.model import EKS_ADDON, HTTP_ROUTE, Finding
from toolchain.first_deploy.netpol import (
    Connection,
    Endpoint,
    allowed,
    namespace_labels,
    network_policies,
)
from toolchain.first_deploy.objects import component_output


def _int(value: Any, default: int) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default


def required_connections(plan: Plan) -> list[Connection]:
    """What the workloads of this plan must be able to reach, with the ports the plan's own
    contracts say (the database's and the cache's component outputs)."""
    db_port = _int(component_output(plan, ":Database", "port"), 5432)
    cache_port = _int(component_output(plan, ":Cache", "port"), 6379)
    vpc = "10.0.0.10"  # any address outside the cluster: managed services, the VPC
    internet = "203.0.113.10"
    kube_dns = Endpoint("kube-system", {"k8s-app": "kube-dns"})
    api = Endpoint("apps", {"app.kubernetes.io/name": "api"})
    training = Endpoint("apps", {"app.kubernetes.io/name": "training"})
    model_ops = Endpoint("apps", {"app.kubernetes.io/name": "model-ops"})
    bootstrap = Endpoint("platform", {"app.kubernetes.io/name": "database-bootstrap"})
    mlflow = Endpoint("mlflow", {})
    airflow = Endpoint("airflow", {})
    tempo = Endpoint("observability", {})
    pushgateway = Endpoint("observability", {"app.kubernetes.io/name": "pushgateway"})
    # the node-local agent that hands out cloud credentials: EKS Pod Identity's, or GKE's
    # metadata server (IRSA needs none: its tokens are projected and exchanged over HTTPS)
    pod_identity = bool(plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation"))
    gke = bool(plan.of_type("gcp:container/cluster:Cluster"))
    agent = "169.254.170.23" if pod_identity else "169.254.169.254" if gke else None
    conns = [
        Connection("bootstrap Job -> Postgres", bootstrap, vpc, db_port),
        Connection("MLflow -> Postgres", mlflow, vpc, db_port),
        Connection("Airflow -> Postgres", airflow, vpc, db_port),
        Connection("API -> cache", api, vpc, cache_port),
        Connection("API -> MLflow", api, mlflow, 5000),
        Connection("training -> MLflow", training, mlflow, 5000),
        Connection("pipeline tasks -> MLflow", airflow, mlflow, 5000),
        Connection("API -> OTLP", api, tempo, 4318),
        Connection("training -> Pushgateway", training, pushgateway, 9091),
        Connection("model-ops -> MLflow", model_ops, mlflow, 5000),
        Connection("model-ops -> Pushgateway", model_ops, pushgateway, 9091),
        Connection("pipeline tasks -> Pushgateway", airflow, pushgateway, 9091),
    ]
    for who in (api, training, model_ops, mlflow, airflow):
        conns.append(Connection(f"{who.namespace} -> cloud APIs (HTTPS)", who, internet, 443))
        if agent is not None:
            conns.append(Connection(f"{who.namespace} -> identity agent", who, agent, 80))
    for who in (api, training, model_ops, bootstrap, mlflow, airflow):
        conns.append(Connection(f"{who.namespace} -> DNS", who, kube_dns, 53, "UDP"))
    if plan.of_type(HTTP_ROUTE):
        conns += _gateway_connections(internet)
    present = namespace_labels(plan)
    conns = [
        c
        for c in conns
        if (c.source.namespace if isinstance(c.source, Endpoint) else "platform") in present
    ]
    if "platform" in present:
        conns += _webhook_connections(plan)
    return conns


KONNECTIVITY_AGENT = Endpoint("kube-system", {"k8s-app": "konnectivity-agent"})
"""GKE's konnectivity agents, through which the API server may reach the cluster."""
UNKNOWN_API_SERVER = "192.0.2.1"
"""The API server's address where the plan holds no cluster (an address outside the cluster)."""


def api_server_sources(plan: Plan) -> list[Endpoint | str]:
    """Where the API server's calls into the cluster come from: on GKE the control plane's
    range (`privateClusterConfig.masterIpv4CidrBlock`) and, through Konnectivity, the
    konnectivity agents' pods; on EKS the control plane's network interfaces, in the cluster's
    subnets (an address of the VPC)."""
    sources: list[Endpoint | str] = []
    for res in plan.of_type("gcp:container/cluster:Cluster"):
        cidr = (res.inputs.get("privateClusterConfig") or {}).get("masterIpv4CidrBlock")
        if isinstance(cidr, str):
            sources.append(str(next(ipaddress.ip_network(cidr).hosts())))
        sources.append(KONNECTIVITY_AGENT)
    if plan.of_type("aws:eks/cluster:Cluster"):
        for vpc in plan.of_type("aws:ec2/vpc:Vpc"):
            cidr = vpc.inputs.get("cidrBlock")
            if isinstance(cidr, str):
                sources.append(str(ipaddress.ip_network(cidr).network_address + 10))
    return sources or [UNKNOWN_API_SERVER]


def _webhook_connections(plan: Plan) -> list[Connection]:
    """The API server calls each webhook (and kubeseal's proxy) on its pods' own port, from
    every address it may call from."""
    from components.k8s.namespaces import WEBHOOKS

    return [
        Connection(f"API server -> {hook.name} webhook", source, Endpoint("platform", hook.pods),
                   hook.port)
        for hook in WEBHOOKS
        for source in api_server_sources(plan)
    ]  # fmt: skip


def _gateway_connections(internet: str) -> list[Connection]:
    """The Gateway's proxies reach each backend on its pod port; the load balancer the
    proxies (privileged listener ports are shifted by 10000 in the pod)."""
    from components.k8s.gateway import BACKENDS, PROXY_LABELS, PROXY_PORTS

    proxies = Endpoint("platform", PROXY_LABELS)
    conns: list[Connection] = []
    for backend in BACKENDS.values():
        pods = Endpoint(backend.namespace, backend.pods or {})
        conns.append(Connection(f"Gateway -> {backend.host}", proxies, pods, backend.pod_port))
    for port in PROXY_PORTS.values():
        conns.append(Connection("load balancer -> Gateway", internet, proxies, port))
    return conns


def network_policy_enforced(plan: Plan) -> list[Finding]:
    findings: list[Finding] = []
    for res in plan.of_type("aws:eks/cluster:Cluster"):
        cni = [a for a in plan.of_type(EKS_ADDON) if a.inputs.get("addonName") == "vpc-cni"]
        settings: Any = {}
        if cni:
            raw = cni[0].inputs.get("configurationValues")
            settings = json.loads(raw) if isinstance(raw, str) else {}
        if str(settings.get("enableNetworkPolicy", "")).lower() != "true":
            findings.append(
                Finding(
                    "reach", (cni[0] if cni else res).urn,
                    "the vpc-cni add-on does not enforce NetworkPolicies "
                    "(configurationValues enableNetworkPolicy: \"true\"): every policy, "
                    "default deny included, does nothing",
                )
            )  # fmt: skip
    for res in plan.of_type("gcp:container/cluster:Cluster"):
        dataplane_v2 = res.inputs.get("datapathProvider") == "ADVANCED_DATAPATH"
        calico = bool((res.inputs.get("networkPolicy") or {}).get("enabled"))
        if not (dataplane_v2 or calico):
            findings.append(
                Finding(
                    "reach", res.urn,
                    "GKE enforces NetworkPolicies only with Dataplane V2 (datapathProvider "
                    "ADVANCED_DATAPATH) or network policy enabled",
                )
            )  # fmt: skip
    return findings


def reachability(plan: Plan) -> list[Finding]:
    policies = network_policies(plan)
    ns_labels = namespace_labels(plan)
    findings = network_policy_enforced(plan)
    for conn in required_connections(plan):
        if isinstance(conn.source, Endpoint) and not allowed(
            policies, ns_labels, conn.source, "Egress", conn.target, conn.port, conn.protocol
        ):
            findings.append(
                Finding(
                    "reach", f"networkpolicy::{conn.source.namespace}",
                    f"{conn.what}: egress to port {conn.port}/{conn.protocol} is not allowed "
                    f"from namespace {conn.source.namespace}",
                )
            )  # fmt: skip
        target = conn.target
        if isinstance(target, Endpoint) and not allowed(
            policies, ns_labels, target, "Ingress", conn.source, conn.port, conn.protocol
        ):
            findings.append(
                Finding(
                    "reach", f"networkpolicy::{target.namespace}",
                    f"{conn.what}: ingress on port {conn.port}/{conn.protocol} is not allowed "
                    f"into namespace {target.namespace}",
                )
            )  # fmt: skip
    return findings
