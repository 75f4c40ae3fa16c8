"""Kubernetes rules on exposure: data ports on Services and NetworkPolicies, Ingress and
Gateway TLS, HTTP routes and the minimum TLS version (split from rules_k8s.py, which keeps
workload hardening, namespaces, cross-object checks and the tag/label rules)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from policies.model import (
    ALWAYS,
    UNKNOWN,
    WORLD,
    Subject,
    Unknowable,
    as_list,
    resource_rule,
)

DATA_PORTS: Mapping[int, str] = {
    5432: "PostgreSQL",
    3306: "MySQL",
    1433: "SQL Server",
    1521: "Oracle",
    5439: "Redshift",
    26257: "CockroachDB",
    6379: "Redis",
    6378: "Redis over TLS",
    11211: "Memcached",
    27017: "MongoDB",
    9042: "Cassandra",
    9200: "Elasticsearch",
    9300: "Elasticsearch transport",
    7687: "Neo4j",
    8086: "InfluxDB",
    5984: "CouchDB",
    2379: "etcd",
    9092: "Kafka",
    5672: "AMQP",
}
"""Ports of databases, caches, queues and search engines: what no one outside should reach."""
DATA_PORT_WORDS = (
    "postgres",
    "mysql",
    "mariadb",
    "mssql",
    "oracle",
    "redis",
    "memcache",
    "mongo",
    "cassandra",
    "elastic",
    "etcd",
    "kafka",
    "amqp",
)
"""Words in a named port (`postgresql`, `tcp-redis`) that say it is one of those."""


def data_ports(port: Any, end: Any = None) -> list[str]:
    """The data ports a port (a number, a name, or a range up to `end`) covers, as text."""
    if UNKNOWN in (port, end):
        raise Unknowable("port")
    if isinstance(port, str) and not port.isdigit():
        return [port] if any(w in port.lower() for w in DATA_PORT_WORDS) else []
    if port is None:
        return ["every port"]
    low = int(port)
    high = int(end) if end is not None else low
    return [f"{n} ({name})" for n, name in DATA_PORTS.items() if low <= n <= high]


INTERNAL_LB = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ("internal",),
    "service.beta.kubernetes.io/aws-load-balancer-internal": ("true", "True"),
    "networking.gke.io/load-balancer-type": ("Internal",),
    "cloud.google.com/load-balancer-type": ("Internal",),
    "service.beta.kubernetes.io/azure-load-balancer-internal": ("true", "True"),
}
"""The annotations that make a cloud's load balancer private to the network, with the values
its controller documents."""


@resource_rule(
    "K8S-014",
    "LoadBalancer Services are internal or restricted; NodePorts expose no data ports",
    "high",
    ALWAYS,
    ["kubernetes:core/v1:Service"],
    "Expose HTTP through the Gateway (a route on the `dex` Gateway; its proxies' Service is "
    "created by Envoy Gateway, not declared); otherwise mark the load balancer internal or set "
    "loadBalancerSourceRanges. Keep databases, caches and queues on ClusterIP Services: a "
    "NodePort opens the port on every node's address, where no source range applies.",
)
def load_balancers(r: Subject) -> Iterator[str]:
    spec = r.get("spec") or {}
    kind = spec.get("type")
    if kind == "LoadBalancer":
        annotations = (r.get("metadata") or {}).get("annotations") or {}
        internal = any(str(annotations.get(key)) in values for key, values in INTERNAL_LB.items())
        ranges = as_list(spec.get("loadBalancerSourceRanges"))
        if not internal and (not ranges or any(x in WORLD for x in ranges)):
            yield "an internet-facing load balancer open to everyone"
    if kind == "NodePort":
        for port in as_list(spec.get("ports")):
            if not isinstance(port, Mapping):
                continue
            exposed = [
                x
                for key in ("port", "targetPort", "name")
                if port.get(key) is not None
                for x in data_ports(port[key])
            ]
            if exposed:
                yield (
                    f"NodePort {port.get('nodePort') or '(allocated)'} exposes data port "
                    f"{', '.join(dict.fromkeys(exposed))} on every node"
                )


NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _world_peer(peer: Any) -> str | None:
    """How a NetworkPolicy peer admits every address, or None."""
    if not isinstance(peer, Mapping) or not peer:
        return "an empty peer"
    cidr = (peer.get("ipBlock") or {}).get("cidr")
    if cidr == UNKNOWN:
        raise Unknowable("ipBlock.cidr")
    if isinstance(cidr, str) and cidr.endswith("/0"):
        return f"ipBlock {cidr}"
    return None


@resource_rule(
    "K8S-021",
    "NetworkPolicies admit no one from everywhere to data ports",
    "high",
    ALWAYS,
    [NETWORK_POLICY],
    "Name the peers that need the port (a podSelector, a namespaceSelector, or the CIDRs of "
    "the clients); never an ingress rule without `from`, or an ipBlock of 0.0.0.0/0 or ::/0, on "
    "a database, cache or queue port, or on every port.",
    description="An ingress rule with no `from` (or an empty peer) admits every source, inside "
    "the cluster and out; an ipBlock of 0.0.0.0/0 admits every address. On a data port, or on "
    "every port (a rule without `ports`), that undoes the namespace's default deny for the "
    "pods the policy selects.",
)
def network_policy_world(r: Subject) -> Iterator[str]:
    spec = r.get("spec") or {}
    types = as_list(spec.get("policyTypes"))
    if types and "Ingress" not in types:
        return  # ingress rules of an Egress-only policy are not enforced
    for i, rule in enumerate(as_list(spec.get("ingress"))):
        if not isinstance(rule, Mapping):
            continue
        peers = as_list(rule.get("from"))
        if peers:
            found = [w for w in map(_world_peer, peers) if w]
            world = found[0] if found else None
        else:
            world = "no `from`"
        if world is None:
            continue
        ports = [p for p in as_list(rule.get("ports")) if isinstance(p, Mapping)]
        exposed = (
            [x for p in ports for x in data_ports(p.get("port"), p.get("endPort"))]
            if ports
            else ["every port"]
        )
        if exposed:
            yield f"ingress rule {i} admits everyone ({world}) to {', '.join(exposed)}"


@resource_rule(
    "K8S-015",
    "Ingresses serve HTTPS",
    "high",
    ALWAYS,
    ["kubernetes:networking.k8s.io/v1:Ingress"],
    "Add spec.tls with a cert-manager certificate.",
    ["CIS-EKS-1.4.0:5.4.5"],
)
def ingress_tls(r: Subject) -> Iterator[str]:
    if not (r.get("spec") or {}).get("tls"):
        yield "no TLS: traffic is plain HTTP"


GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
CLIENT_TRAFFIC_POLICY = "kubernetes:gateway.envoyproxy.io/v1alpha1:ClientTrafficPolicy"
HSTS_MIN_AGE = 31536000
"""One year: what HSTS preload lists require, and what the platform sends."""


@resource_rule(
    "K8S-018",
    "Gateway listeners terminate TLS; plain HTTP only for the Gateway's own routes",
    "high",
    ALWAYS,
    [GATEWAY],
    "Give each HTTPS listener tls.mode Terminate with a certificateRef (a cert-manager "
    "Certificate's Secret); let a plain-HTTP listener admit routes only from the Gateway's "
    "namespace (allowedRoutes.namespaces.from: Same), where the redirect to HTTPS and the ACME "
    "challenges live; never allowedRoutes from All.",
    ["CIS-EKS-1.4.0:5.4.5"],
)
def gateway_tls(r: Subject) -> Iterator[str]:
    for listener in as_list((r.get("spec") or {}).get("listeners")):
        if not isinstance(listener, Mapping):
            continue
        name, protocol = listener.get("name"), listener.get("protocol")
        tls = listener.get("tls") or {}
        origin = ((listener.get("allowedRoutes") or {}).get("namespaces") or {}).get("from")
        origin = origin or "Same"  # the CRD's default
        if protocol == "HTTPS" and (
            tls.get("mode", "Terminate") != "Terminate" or not as_list(tls.get("certificateRefs"))
        ):
            yield f"listener {name} serves HTTPS without a certificate it terminates with"
        if protocol == "HTTP" and origin != "Same":
            yield (
                f"listener {name} serves plain HTTP to routes from other namespaces "
                f"(allowedRoutes from {origin})"
            )
        if origin == "All":
            yield f"listener {name} admits routes from every namespace"


def _hsts_age(value: Any) -> int:
    for part in str(value).split(";"):
        key, _, number = part.strip().partition("=")
        if key.lower() == "max-age" and number.isdigit():
            return int(number)
    return 0


@resource_rule(
    "K8S-019",
    "HTTPRoutes redirect to HTTPS or send HSTS",
    "medium",
    ALWAYS,
    [HTTP_ROUTE],
    "Give every rule either a RequestRedirect filter to scheme https, or a "
    "ResponseHeaderModifier that sets Strict-Transport-Security with max-age of a year.",
)
def route_https(r: Subject) -> Iterator[str]:
    for i, rule in enumerate(as_list((r.get("spec") or {}).get("rules"))):
        filters = [f for f in as_list((rule or {}).get("filters")) if isinstance(f, Mapping)]
        redirects = any(
            f.get("type") == "RequestRedirect"
            and (f.get("requestRedirect") or {}).get("scheme") == "https"
            for f in filters
        )
        hsts = max(
            (
                _hsts_age(header.get("value"))
                for f in filters
                if f.get("type") == "ResponseHeaderModifier"
                for header in as_list((f.get("responseHeaderModifier") or {}).get("set"))
                if str(header.get("name", "")).lower() == "strict-transport-security"
            ),
            default=0,
        )
        if not redirects and hsts < HSTS_MIN_AGE:
            yield f"rule {i} neither redirects to HTTPS nor sends HSTS (max-age >= 1 year)"


@resource_rule(
    "K8S-020",
    "Gateways accept no TLS older than 1.2",
    "high",
    ALWAYS,
    [CLIENT_TRAFFIC_POLICY],
    "Set tls.minVersion to 1.2 or 1.3 (or leave it unset: Envoy Gateway's default is 1.2).",
    ["CIS-EKS-1.4.0:5.4.5"],
)
def gateway_min_tls(r: Subject) -> Iterator[str]:
    version = ((r.get("spec") or {}).get("tls") or {}).get("minVersion")
    if version in ("1.0", "1.1"):
        yield f"TLS {version} is accepted"
