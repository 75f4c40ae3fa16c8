"""NetworkPolicy semantics over a plan: which policies select a pod, and whether they let a
connection through at one end (the same rules the cluster's enforcer applies)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts.deployment import Plan
from toolchain.first_deploy.objects import k8s_objects, meta

EXTERNAL = "external"
"""A destination outside the cluster (a managed service in the VPC, a cloud API)."""


@dataclass(frozen=True)
class Endpoint:
    namespace: str
    pods: Mapping[str, str]
    """Pod labels; empty for a chart's pods (whose labels the plan does not show)."""


@dataclass(frozen=True)
class Connection:
    what: str
    source: Endpoint | str
    """An in-cluster endpoint, or an address outside the cluster (the load balancer)."""
    target: Endpoint | str
    """An in-cluster endpoint, or an IP address outside the cluster."""
    port: int
    protocol: str = "TCP"


def network_policies(plan: Plan) -> dict[str, list[Mapping[str, Any]]]:
    """namespace -> the specs of the NetworkPolicies in it."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for _res, obj in k8s_objects(plan):
        if obj.get("kind") == "NetworkPolicy":
            out.setdefault(meta(obj)[0], []).append(obj.get("spec") or {})
    return out


def namespace_labels(plan: Plan) -> dict[str, dict[str, str]]:
    """namespace -> its labels (with the `kubernetes.io/metadata.name` the API server adds)."""
    out: dict[str, dict[str, str]] = {}
    for _res, obj in k8s_objects(plan):
        if obj.get("kind") == "Namespace":
            name = meta(obj)[1]
            labels = dict((obj.get("metadata") or {}).get("labels") or {})
            out[name] = {**labels, "kubernetes.io/metadata.name": name}
    return out


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _port_allowed(ports: list[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if str(entry.get("protocol", "TCP")) != protocol:
            continue
        value = entry.get("port")
        if value is None:
            return True
        if isinstance(value, int):
            end = entry.get("endPort", value)
            if value <= port <= int(end):
                return True
    return False


def _peer_matches(
    peer: Mapping[str, Any],
    target: Endpoint | str,
    ns_labels: Mapping[str, Mapping[str, str]],
    own_namespace: str,
) -> bool:
    """Does one `to`/`from` peer of a policy in `own_namespace` cover `target`?"""
    if "ipBlock" in peer:
        if not isinstance(target, str):
            return False  # ipBlock is for addresses outside the cluster
        block = peer["ipBlock"]
        address = ipaddress.ip_address(target)
        if address not in ipaddress.ip_network(str(block.get("cidr"))):
            return False
        return not any(address in ipaddress.ip_network(str(c)) for c in block.get("except") or [])
    if isinstance(target, str):
        return False
    if "namespaceSelector" in peer:
        labels = ns_labels.get(target.namespace, {"kubernetes.io/metadata.name": target.namespace})
        if not _selects(peer["namespaceSelector"], labels):
            return False
    elif target.namespace != own_namespace:
        return False  # a podSelector alone selects pods of the policy's own namespace
    return "podSelector" not in peer or _selects(peer["podSelector"], target.pods)


def allowed(
    policies: Mapping[str, list[Mapping[str, Any]]],
    ns_labels: Mapping[str, Mapping[str, str]],
    side: Endpoint,
    direction: str,
    peer: Endpoint | str,
    port: int,
    protocol: str,
) -> bool:
    """Do the policies of `side`'s namespace let `side` talk to (Egress) or hear from
    (Ingress) `peer` on `port`/`protocol`?"""
    selecting = [
        p
        for p in policies.get(side.namespace, [])
        if direction in (p.get("policyTypes") or ["Ingress"])
        and _selects(p.get("podSelector") or {}, side.pods)
    ]
    if not selecting:
        return True  # no policy selects the pod: Kubernetes allows everything
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for policy in selecting:
        for rule in policy.get(key) or []:
            peers = rule.get(peers_key)
            if not _port_allowed(rule.get("ports"), port, protocol):
                continue
            if not peers or any(_peer_matches(p, peer, ns_labels, side.namespace) for p in peers):
                return True
    return False
