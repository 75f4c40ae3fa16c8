"""Creation order, over the dependency graph (what the engine may create in parallel).

Each rule family below is one function from what the rules read (`OrderInputs`) to its
findings; `creation_order` reports them in the order of `ORDER_RULES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.deployment import Plan, Resource
from toolchain import charts
from toolchain.first_deploy.crds import crd_for, crd_sources
from toolchain.first_deploy.graph import Graph
from toolchain.first_deploy.model import (
    BUILTIN_GROUPS,
    CLUSTERS,
    DEFAULT_CLASS_ANNOTATION,
    EKS_ADDON,
    EKS_NETWORK_ADDONS,
    NODE_CAPACITY,
    RELEASE,
    STORAGE_CLASS,
    Finding,
)
from toolchain.first_deploy.objects import (
    api_group,
    k8s_objects,
    meta,
    pod_spec,
    release_values,
)
from toolchain.first_deploy.references import pod_references, value_references


@dataclass(frozen=True)
class OrderInputs:
    """What the creation-order rules read: the plan, the graph the engine walks, what installs
    each CRD, and the plan's Helm releases with their values merged over their chart's."""

    plan: Plan
    graph: Graph
    sources: Mapping[tuple[str, str], list[str]]
    releases: list[Resource]
    values: Mapping[str, dict[str, Any]]


def _needs(graph: Graph, urn: str, want: list[str]) -> bool:
    return bool(want) and graph.waits_for(urn, want)


def custom_kinds_wait_for_their_crds(o: OrderInputs) -> list[Finding]:
    """Objects of custom kinds, including those a Helm release renders, wait for their CRD."""
    findings: list[Finding] = []
    wanted: list[tuple[Resource, str, str, str]] = []
    for res, obj in k8s_objects(o.plan):
        group = api_group(str(obj["apiVersion"]))
        if group not in BUILTIN_GROUPS:
            wanted.append((res, group, str(obj["kind"]), "declares"))
    for res in o.releases:
        chart = str(res.inputs.get("chart", ""))
        for item in charts.rendered(charts.CUSTOM_KINDS, chart, o.values[res.urn]):
            wanted.append((res, item.api_group, item.kind, f"renders ({chart} {item.template})"))
    for res, group, kind, how in wanted:
        crd = [u for u in crd_for(o.sources, group, kind) if u != res.urn]
        if not crd:
            findings.append(
                Finding(
                    "order",
                    res.urn,
                    f"{how} a {group} {kind}, but nothing in the plan installs its CRD",
                )
            )
        elif not _needs(o.graph, res.urn, crd):
            names = ", ".join(sorted(o.graph.by_urn[u].name for u in crd))
            findings.append(
                Finding(
                    "order", res.urn,
                    f"{how} a {group} {kind} without waiting for its CRD ({names}): "
                    "\"no matches for kind\"",
                )
            )  # fmt: skip
    return findings


def _volume_claimants(o: OrderInputs) -> list[tuple[Resource, str]]:
    """What claims a volume without naming a StorageClass, and how it says so."""
    claimants: list[tuple[Resource, str]] = []
    for res in o.releases:
        chart = str(res.inputs.get("chart", ""))
        for item in charts.rendered(charts.VOLUME_CLAIMS, chart, o.values[res.urn]):
            claimants.append((res, f"renders a volume claim ({chart} {item.template})"))
    for res, obj in k8s_objects(o.plan):
        spec = obj.get("spec") or {}
        if obj.get("kind") == "PersistentVolumeClaim" and not spec.get("storageClassName"):
            claimants.append((res, "claims a volume"))
        for tpl in spec.get("volumeClaimTemplates") or []:
            if not (tpl.get("spec") or {}).get("storageClassName"):
                claimants.append((res, "claims a volume (volumeClaimTemplates)"))
    return claimants


def volume_claims_wait_for_a_default_class(o: OrderInputs) -> list[Finding]:
    """Volume claims need a default StorageClass (GKE ships one)."""
    if o.plan.of_type("gcp:container/cluster:Cluster"):
        return []
    defaults = [
        r.urn
        for r, obj in k8s_objects(o.plan)
        if r.type == STORAGE_CLASS
        and ((obj.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION)
        == "true"
    ]
    findings: list[Finding] = []
    for res, how in _volume_claimants(o):
        if not defaults:
            findings.append(
                Finding(
                    "order", res.urn,
                    f"{how} but the cluster has no default StorageClass (EKS 1.30+ ships "
                    "none): the claim stays Pending and the release times out",
                )
            )  # fmt: skip
        elif not _needs(o.graph, res.urn, defaults):
            findings.append(
                Finding("order", res.urn, f"{how} before the default StorageClass exists")
            )
    return findings


def pods_wait_for_nodes_and_network(o: OrderInputs) -> list[Finding]:
    """Anything that runs pods waits for nodes and the network/DNS add-ons."""
    findings: list[Finding] = []
    capacity = [r.urn for r in o.plan if r.type in NODE_CAPACITY]
    network_addons = [
        r.urn for r in o.plan.of_type(EKS_ADDON) if r.inputs.get("addonName") in EKS_NETWORK_ADDONS
    ]
    runs_pods = [res for res, obj in k8s_objects(o.plan) if pod_spec(obj) is not None]
    for res in runs_pods + o.releases:
        if capacity and not _needs(o.graph, res.urn, capacity):
            findings.append(
                Finding("order", res.urn, "runs pods but does not wait for any node group or pool")
            )
        missing = [u for u in network_addons if not o.graph.waits_for(res.urn, [u])]
        if missing:
            names = ", ".join(
                sorted(str(o.graph.by_urn[u].inputs.get("addonName")) for u in missing)
            )
            findings.append(
                Finding("order", res.urn, f"runs pods but does not wait for the {names} add-on(s)")
            )
    return findings


def gke_leaves_gateway_crds_to_the_chart(o: OrderInputs) -> list[Finding]:
    """On GKE, a cluster that manages its own Gateway API CRDs refuses the ones a chart
    installs (it reverts them; recent versions deny the experimental channel outright)."""
    findings: list[Finding] = []
    installs_gateway_crds = any("gateway.networking.k8s.io" in g for g, _k in o.sources)
    for res in o.plan.of_type("gcp:container/cluster:Cluster"):
        channel = (res.inputs.get("gatewayApiConfig") or {}).get("channel")
        if installs_gateway_crds and channel != "CHANNEL_DISABLED":
            findings.append(
                Finding(
                    "order", res.urn,
                    "a chart installs the Gateway API CRDs, but GKE may manage its own "
                    f"(gatewayApiConfig.channel {channel or 'unset'}): set CHANNEL_DISABLED",
                )
            )  # fmt: skip
    return findings


def gcp_resources_wait_for_their_apis(o: OrderInputs) -> list[Finding]:
    """On GCP every resource waits for the APIs the stack enables (a resource whose API is
    off fails: "API has not been used in project ... or it is disabled")."""
    findings: list[Finding] = []
    services = [r.urn for r in o.plan.of_type("gcp:projects/service:Service")]
    if not services:
        return findings
    for res in o.plan:
        if not res.custom or not res.type.startswith("gcp:") or res.urn in services:
            continue
        missing = [u for u in services if not o.graph.waits_for(res.urn, [u])]
        if missing:
            apis = ", ".join(sorted(str(o.graph.by_urn[u].inputs.get("service")) for u in missing))
            findings.append(
                Finding("order", res.urn, f"may be created before its API is on ({apis})")
            )
    return findings


def kubernetes_waits_for_cluster_admin(o: OrderInputs) -> list[Finding]:
    """On EKS (access entries only) the deployer may call the Kubernetes API only once its
    cluster-admin access policy is associated: before that, every call is "Unauthorized"."""
    if not o.plan.of_type("aws:eks/cluster:Cluster"):
        return []
    admin = [
        r.urn
        for r in o.plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        if str(r.inputs.get("policyArn", "")).endswith("/AmazonEKSClusterAdminPolicy")
    ]
    for res in o.plan:
        if not res.custom or not res.type.startswith("kubernetes:"):
            continue
        if not admin or not o.graph.waits_for(res.urn, admin):
            # one finding says it: they share the provider
            return [
                Finding(
                    "order", res.urn,
                    "may call the Kubernetes API before the deployer's cluster-admin access "
                    "policy is associated: \"Unauthorized\"",
                )
            ]  # fmt: skip
    return []


def _is_workload_identity_grant(res: Resource) -> bool:
    return (
        res.type.startswith("gcp:serviceaccount/iAM")
        and res.inputs.get("role") == "roles/iam.workloadIdentityUser"
    )


def identity_grants_wait_for_the_cluster(o: OrderInputs) -> list[Finding]:
    """Identity bindings wait for the cluster whose pool they name."""
    clusters = [r.urn for r in o.plan if r.type in CLUSTERS]
    return [
        Finding(
            "order", res.urn,
            "grants roles/iam.workloadIdentityUser before the GKE cluster exists: "
            "\"Identity Pool does not exist\"",
        )
        for res in o.plan
        if _is_workload_identity_grant(res) and not _needs(o.graph, res.urn, clusters)
    ]  # fmt: skip


def _identity_bindings(plan: Plan) -> dict[tuple[str, str], str]:
    """(namespace, service account) -> the URN that binds it to a cloud identity (a GKE
    workload identity grant or an EKS Pod Identity association)."""
    bindings: dict[tuple[str, str], str] = {}
    for res in plan:
        if _is_workload_identity_grant(res):
            member = res.inputs.get("member")
            if isinstance(member, str) and "[" in member:
                ns_sa = member.split("[", 1)[1].rstrip("]")
                ns, _, sa = ns_sa.partition("/")
                bindings[(ns, sa)] = res.urn
        if res.type == "aws:eks/podIdentityAssociation:PodIdentityAssociation":
            namespace, account = res.inputs.get("namespace"), res.inputs.get("serviceAccount")
            if isinstance(namespace, str) and isinstance(account, str):
                bindings[(namespace, account)] = res.urn
    return bindings


def service_accounts_wait_for_their_bindings(o: OrderInputs) -> list[Finding]:
    """Service accounts wait for the cloud identity binding that names them."""
    bindings = _identity_bindings(o.plan)
    findings: list[Finding] = []
    for res, obj in k8s_objects(o.plan):
        binding = bindings.get(meta(obj)) if obj.get("kind") == "ServiceAccount" else None
        if binding is not None and not o.graph.waits_for(res.urn, [binding]):
            findings.append(
                Finding(
                    "order", res.urn,
                    "its pods may start before their cloud identity binding exists",
                )
            )  # fmt: skip
    return findings


def _made(plan: Plan) -> dict[tuple[str, str, str], str]:
    """(Secret or ConfigMap, namespace, name) -> the URN that creates it (a SealedSecret
    counts as the Secret it unseals into)."""
    made: dict[tuple[str, str, str], str] = {}
    for res, obj in k8s_objects(plan):
        if obj.get("kind") in ("Secret", "ConfigMap", "SealedSecret"):
            kind = "ConfigMap" if obj["kind"] == "ConfigMap" else "Secret"
            ns, name = meta(obj)
            made[(kind, ns, name)] = res.urn
    return made


def pods_wait_for_what_they_mount(o: OrderInputs) -> list[Finding]:
    """Pods wait for the Secrets and ConfigMaps they mount."""
    made = _made(o.plan)
    findings: list[Finding] = []
    for res, obj in k8s_objects(o.plan):
        pod = pod_spec(obj)
        if pod is None:
            continue
        ns = meta(obj)[0]
        for kind, name, optional in sorted(set(pod_references(pod))):
            urn = made.get((kind, ns, name))
            if urn is None:
                if not optional:
                    findings.append(
                        Finding(
                            "order",
                            res.urn,
                            f"mounts {kind} {ns}/{name}, which nothing in the plan creates",
                        )
                    )
            elif not o.graph.waits_for(res.urn, [urn]):
                findings.append(
                    Finding("order", res.urn, f"mounts {kind} {ns}/{name} without waiting for it")
                )
    return findings


def releases_wait_for_what_their_values_name(o: OrderInputs) -> list[Finding]:
    """Releases wait for the Secrets and ConfigMaps their values name."""
    made = _made(o.plan)
    findings: list[Finding] = []
    for res in o.releases:
        ns = str(res.inputs.get("namespace", ""))
        for kind, name in sorted(set(value_references(res.inputs.get("values") or {}))):
            urn = made.get((kind, ns, name))
            if urn is not None and not o.graph.waits_for(res.urn, [urn]):
                findings.append(
                    Finding(
                        "order",
                        res.urn,
                        f"its values name {kind} {ns}/{name} without waiting for it",
                    )
                )
    return findings


ORDER_RULES: tuple[Callable[[OrderInputs], list[Finding]], ...] = (
    custom_kinds_wait_for_their_crds,
    volume_claims_wait_for_a_default_class,
    pods_wait_for_nodes_and_network,
    gke_leaves_gateway_crds_to_the_chart,
    gcp_resources_wait_for_their_apis,
    kubernetes_waits_for_cluster_admin,
    identity_grants_wait_for_the_cluster,
    service_accounts_wait_for_their_bindings,
    pods_wait_for_what_they_mount,
    releases_wait_for_what_their_values_name,
)
"""The creation-order rule families, in the order `creation_order` reports their findings."""


def creation_order(plan: Plan) -> list[Finding]:
    """Objects of custom kinds wait for their CRD; volume claims for a default StorageClass;
    everything that runs pods for node capacity and the network/DNS add-ons; identity
    bindings for the cluster whose pool they name; service accounts for their bindings; pods
    for the Secrets and ConfigMaps they mount (each rule family in `ORDER_RULES`)."""
    releases = plan.of_type(RELEASE)
    inputs = OrderInputs(
        plan=plan,
        graph=Graph(plan),
        sources=crd_sources(plan),
        releases=releases,
        values={r.urn: release_values(r) for r in releases},
    )
    return [finding for rule in ORDER_RULES for finding in rule(inputs)]
