"""A first `pulumi up` into an empty account, simulated over a plan.

The mock engine accepts almost anything; a real first deploy fails on the engine's own rules,
on creation order, on network reachability, on TLS trust and on the day-0 state. Each check
here reads a plan (a `dex plan` or a real `pulumi stack export`) and names what a real deploy
would trip over, so the class of defect fails a test instead of a deploy:

- `engine_rules`: every custom resource and every invoke has an explicit provider of its own
  package, or a default provider the stack's `pulumi:disable-default-providers` still allows
  (`["*"]` denies every package but `pulumi`, `pulumi-python` included);
- `plugin_paths`: every path handed to a plugin (a docker-build context and Dockerfile)
  resolves from the folder the engine starts plugins in (the program's `main`);
- `creation_order`: over the dependency graph (what the engine may create in parallel):
  objects of custom kinds, including those a Helm release renders, wait for their CRD;
  volume claims for a default StorageClass; everything that runs pods for node capacity and
  the network/DNS add-ons; identity bindings for the cluster whose pool they name; service
  accounts for their bindings; pods for the Secrets and ConfigMaps they mount;
- `reachability`: every connection a workload needs (Postgres and the cache on their real
  ports, MLflow, OTLP, the Pushgateway, DNS, cloud APIs, the identity agent) is allowed by the
  NetworkPolicies at both ends, and the cluster enforces NetworkPolicies at all;
- `tls_trust`: every client that verifies a server has the server's CA in its container;
- `cold_start`: the API becomes ready on a stack that has no data and no model yet.

`waves` lists what a first deploy creates, wave by wave, with what each wave waits for.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from contracts.deployment import Plan, Resource
from stacks.stackfiles import PROJECT_DIR, plugin_dir
from toolchain import charts
from toolchain.validate import SCHEMAS_DIR, helm_merge, load_chart

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
DAY0_READY_CHECKS = frozenset({"serving"})
"""The API's readiness checks that pass on a stack with no model yet
(tests/integration/test_api.py runs the real app on an empty registry to hold this true)."""


@dataclass(frozen=True)
class Finding:
    check: str
    urn: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.urn.rsplit('::', 1)[-1]}: {self.message}"


# -- the graph the engine walks -------------------------------------------------------------


class Graph:
    """What each resource waits for before the engine creates it: its recorded dependencies
    (explicit and from its inputs; the SDK already expanded components into their children)
    and its provider. A remote component (a yaml/v2 ConfigGroup) stands for what it applies."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.by_urn = plan.by_urn()
        self.prereqs: dict[str, set[str]] = {}
        for res in plan:
            found = set(res.dependencies)
            if res.provider:
                found.add(res.provider.rsplit("::", 1)[0])
            self.prereqs[res.urn] = {u for u in found if u in self.by_urn and u != res.urn}
        self._closure: dict[str, frozenset[str]] = {}

    def before(self, urn: str) -> frozenset[str]:
        """Everything created before `urn` (transitively)."""
        if urn in self._closure:
            return self._closure[urn]
        seen: set[str] = set()
        stack = list(self.prereqs.get(urn, ()))
        while stack:
            u = stack.pop()
            if u in seen:
                continue
            seen.add(u)
            if u in self._closure:
                seen |= self._closure[u]
                continue
            stack.extend(self.prereqs.get(u, ()))
        self._closure[urn] = frozenset(seen)
        return self._closure[urn]

    def waits_for(self, urn: str, want: Iterable[str]) -> bool:
        return any(w in self.before(urn) for w in want)

    def waves(self) -> list[list[Resource]]:
        """The resources the engine creates, by wave: wave N holds what depends only on
        waves before it (components, which create nothing, are left out)."""
        level: dict[str, int] = {}

        def depth(urn: str, trail: frozenset[str] = frozenset()) -> int:
            if urn in level:
                return level[urn]
            if urn in trail:  # a cycle cannot come from the engine; do not loop
                return 0
            deps = [d for d in self.prereqs.get(urn, ()) if self._creates(d)]
            level[urn] = 1 + max((depth(d, trail | {urn}) for d in deps), default=-1)
            return level[urn]

        out: dict[int, list[Resource]] = {}
        for res in self.plan:
            if self._creates(res.urn):
                out.setdefault(depth(res.urn), []).append(res)
        return [sorted(out[k], key=lambda r: r.urn) for k in sorted(out)]

    def _creates(self, urn: str) -> bool:
        res = self.by_urn[urn]
        return res.custom or res.type == CONFIG_GROUP


# -- helpers over Kubernetes objects and releases -------------------------------------------


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else "core"


def k8s_objects(plan: Plan) -> Iterator[tuple[Resource, Mapping[str, Any]]]:
    for res in plan:
        if (
            res.type.startswith("kubernetes:")
            and "kind" in res.inputs
            and "apiVersion" in res.inputs
        ):
            yield res, res.inputs


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    elif kind not in POD_KINDS:
        return None
    return ((spec.get("template") or {}).get("spec")) or None


def _containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def release_values(res: Resource) -> dict[str, Any]:
    """A release's values merged over its chart's defaults (vendored, or charts.DEFAULTS)."""
    chart = str(res.inputs.get("chart", ""))
    defaults: Any = charts.DEFAULTS.get(chart, {})
    if (SCHEMAS_DIR / chart / "Chart.yaml").is_file():
        defaults = load_chart(chart).defaults  # parsed once per process
    merged = helm_merge(defaults, res.inputs.get("values") or {})
    return merged if isinstance(merged, dict) else {}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


# -- engine rules ---------------------------------------------------------------------------


def disabled_default_providers(stack_config: Mapping[str, Any]) -> set[str]:
    raw = stack_config.get("pulumi:disable-default-providers") or []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = [p.strip() for p in raw.split(",")]
    return {str(p) for p in raw}


def _denied(package: str, disabled: set[str]) -> bool:
    # the engine never denies its own `pulumi` package (stack, providers, root)
    return package != "pulumi" and ("*" in disabled or package in disabled)


def engine_rules(
    plan: Plan, stack_config: Mapping[str, Any], invokes: Iterable[Mapping[str, Any]] = ()
) -> list[Finding]:
    """Explicit providers where default providers are disabled; provider references that
    point at a provider of the resource's own package."""
    disabled = disabled_default_providers(stack_config)
    by_urn = plan.by_urn()
    findings: list[Finding] = []
    for res in plan:
        if not res.custom or res.type.startswith("pulumi:providers:"):
            continue
        package = res.type.split(":", 1)[0]
        if not res.provider:
            if _denied(package, disabled):
                findings.append(
                    Finding(
                        "engine", res.urn,
                        f"uses the default `{package}` provider, which "
                        f"`pulumi:disable-default-providers: {sorted(disabled)}` denies: "
                        "registration fails, even in preview",
                    )
                )  # fmt: skip
            continue
        provider_urn = res.provider.rsplit("::", 1)[0]
        provider = by_urn.get(provider_urn)
        if provider is None:
            findings.append(
                Finding("engine", res.urn, f"its provider {provider_urn} is not in the plan")
            )
        elif provider.type != f"pulumi:providers:{package}":
            findings.append(
                Finding(
                    "engine", res.urn,
                    f"a `{package}` resource with a `{provider.type}` provider",
                )
            )  # fmt: skip
    for call in invokes:
        token = str(call.get("token", ""))
        package = token.split(":", 1)[0]
        if not call.get("provider") and _denied(package, disabled):
            findings.append(
                Finding(
                    "engine", f"invoke::{token}",
                    f"invoke `{token}` uses the default `{package}` provider, which the stack "
                    "disables",
                )
            )  # fmt: skip
    return findings


# -- plugin paths ---------------------------------------------------------------------------


def plugin_paths(plan: Plan, project_dir: Path = PROJECT_DIR) -> list[Finding]:
    """docker-build resolves its context and Dockerfile from the plugin's working directory
    (the program's `main` folder), not from the project root."""
    base = plugin_dir(project_dir)
    findings: list[Finding] = []
    for res in plan.of_type("docker-build:index:Image"):
        context = (res.inputs.get("context") or {}).get("location")
        dockerfile = (res.inputs.get("dockerfile") or {}).get("location")
        if not isinstance(context, str) or not (base / context).is_dir():
            findings.append(
                Finding(
                    "paths", res.urn, f"build context {context!r} is no folder seen from {base}"
                )
            )
            continue
        if dockerfile is None:
            dockerfile_path = base / context / "Dockerfile"
        elif isinstance(dockerfile, str):
            dockerfile_path = base / dockerfile
        else:
            continue
        if not dockerfile_path.is_file():
            findings.append(
                Finding("paths", res.urn, f"Dockerfile {dockerfile!r} is no file seen from {base}")
            )
        elif not dockerfile_path.resolve().is_relative_to((base / context).resolve()):
            findings.append(
                Finding("paths", res.urn, f"Dockerfile {dockerfile!r} is outside its context")
            )
        if res.inputs.get("buildOnPreview", True) is not False:
            findings.append(
                Finding(
                    "paths", res.urn,
                    "builds during `pulumi preview` (buildOnPreview): a preview would need Docker "
                    "and push credentials",
                )
            )  # fmt: skip
    return findings


# -- creation order -------------------------------------------------------------------------


def _crd_sources(plan: Plan) -> dict[tuple[str, str], list[str]]:
    """(group, kind or '*') -> the URNs that install that CRD."""
    out: dict[tuple[str, str], list[str]] = {}
    for res in plan.of_type(RELEASE):
        chart = str(res.inputs.get("chart", ""))
        if res.inputs.get("skipCrds") is True:
            continue
        gates = charts.CRDS_INSTALLED_WHEN.get(chart)
        if gates and not any(charts.lookup(release_values(res), g) for g in gates):
            continue
        for group, sources in charts.CRD_SOURCES.items():
            if chart in sources:
                out.setdefault((group, "*"), []).append(res.urn)
    for res in plan.of_type(CONFIG_GROUP):
        for text in _strings(res.inputs.get("files") or []):
            name = text.rsplit("/", 1)[-1]
            if name.endswith(".yaml") and "_" in name:
                group, plural = name[: -len(".yaml")].split("_", 1)
                out.setdefault((group, plural), []).append(res.urn)
    for res, obj in k8s_objects(plan):
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            plural = str((spec.get("names") or {}).get("plural", ""))
            out.setdefault((str(spec.get("group", "")), plural), []).append(res.urn)
    return out


def _crd_for(sources: Mapping[tuple[str, str], list[str]], group: str, kind: str) -> list[str]:
    plural = kind.lower() + ("es" if kind.lower().endswith("s") else "s")
    return [*sources.get((group, "*"), []), *sources.get((group, plural), [])]


def _needs(graph: Graph, urn: str, want: list[str]) -> bool:
    return bool(want) and graph.waits_for(urn, want)


def creation_order(plan: Plan) -> list[Finding]:
    graph = Graph(plan)
    findings: list[Finding] = []
    sources = _crd_sources(plan)
    by_urn = graph.by_urn
    gke = bool(plan.of_type("gcp:container/cluster:Cluster"))

    # custom kinds: objects and what releases render
    wanted: list[tuple[Resource, str, str, str]] = []
    for res, obj in k8s_objects(plan):
        group = _group(str(obj["apiVersion"]))
        if group not in BUILTIN_GROUPS:
            wanted.append((res, group, str(obj["kind"]), "declares"))
    releases = plan.of_type(RELEASE)
    values = {r.urn: release_values(r) for r in releases}
    for res in releases:
        chart = str(res.inputs.get("chart", ""))
        for item in charts.rendered(charts.CUSTOM_KINDS, chart, values[res.urn]):
            wanted.append((res, item.api_group, item.kind, f"renders ({chart} {item.template})"))
    for res, group, kind, how in wanted:
        crd = [u for u in _crd_for(sources, group, kind) if u != res.urn]
        if not crd:
            findings.append(
                Finding(
                    "order",
                    res.urn,
                    f"{how} a {group} {kind}, but nothing in the plan installs its CRD",
                )
            )
        elif not _needs(graph, res.urn, crd):
            names = ", ".join(sorted(by_urn[u].name for u in crd))
            findings.append(
                Finding(
                    "order", res.urn,
                    f"{how} a {group} {kind} without waiting for its CRD ({names}): "
                    "\"no matches for kind\"",
                )
            )  # fmt: skip

    # volume claims need a default StorageClass (GKE ships one)
    defaults = [
        r.urn
        for r, obj in k8s_objects(plan)
        if r.type == STORAGE_CLASS
        and ((obj.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION)
        == "true"
    ]
    claimants: list[tuple[Resource, str]] = []
    for res in releases:
        chart = str(res.inputs.get("chart", ""))
        for item in charts.rendered(charts.VOLUME_CLAIMS, chart, values[res.urn]):
            claimants.append((res, f"renders a volume claim ({chart} {item.template})"))
    for res, obj in k8s_objects(plan):
        spec = obj.get("spec") or {}
        if obj.get("kind") == "PersistentVolumeClaim" and not spec.get("storageClassName"):
            claimants.append((res, "claims a volume"))
        for tpl in spec.get("volumeClaimTemplates") or []:
            if not (tpl.get("spec") or {}).get("storageClassName"):
                claimants.append((res, "claims a volume (volumeClaimTemplates)"))
    if not gke:
        for res, how in claimants:
            if not defaults:
                findings.append(
                    Finding(
                        "order", res.urn,
                        f"{how} but the cluster has no default StorageClass (EKS 1.30+ ships "
                        "none): the claim stays Pending and the release times out",
                    )
                )  # fmt: skip
            elif not _needs(graph, res.urn, defaults):
                findings.append(
                    Finding("order", res.urn, f"{how} before the default StorageClass exists")
                )

    # anything that runs pods waits for nodes and the network/DNS add-ons
    capacity = [r.urn for r in plan if r.type in NODE_CAPACITY]
    network_addons = [
        r.urn for r in plan.of_type(EKS_ADDON) if r.inputs.get("addonName") in EKS_NETWORK_ADDONS
    ]
    runs_pods = [res for res, obj in k8s_objects(plan) if pod_spec(obj) is not None] + releases
    for res in runs_pods:
        if capacity and not _needs(graph, res.urn, capacity):
            findings.append(
                Finding("order", res.urn, "runs pods but does not wait for any node group or pool")
            )
        missing = [u for u in network_addons if not graph.waits_for(res.urn, [u])]
        if missing:
            names = ", ".join(sorted(str(by_urn[u].inputs.get("addonName")) for u in missing))
            findings.append(
                Finding("order", res.urn, f"runs pods but does not wait for the {names} add-on(s)")
            )

    # on GKE, a cluster that manages its own Gateway API CRDs refuses the ones a chart
    # installs (it reverts them; recent versions deny the experimental channel outright)
    installs_gateway_crds = any("gateway.networking.k8s.io" in g for g, _k in sources)
    for res in plan.of_type("gcp:container/cluster:Cluster"):
        channel = (res.inputs.get("gatewayApiConfig") or {}).get("channel")
        if installs_gateway_crds and channel != "CHANNEL_DISABLED":
            findings.append(
                Finding(
                    "order", res.urn,
                    "a chart installs the Gateway API CRDs, but GKE may manage its own "
                    f"(gatewayApiConfig.channel {channel or 'unset'}): set CHANNEL_DISABLED",
                )
            )  # fmt: skip

    # on GCP every resource waits for the APIs the stack enables (a resource whose API is
    # off fails: "API has not been used in project ... or it is disabled")
    services = [r.urn for r in plan.of_type("gcp:projects/service:Service")]
    if services:
        for res in plan:
            if not res.custom or not res.type.startswith("gcp:") or res.urn in services:
                continue
            missing = [u for u in services if not graph.waits_for(res.urn, [u])]
            if missing:
                apis = ", ".join(sorted(str(by_urn[u].inputs.get("service")) for u in missing))
                findings.append(
                    Finding("order", res.urn, f"may be created before its API is on ({apis})")
                )

    # on EKS (access entries only) the deployer may call the Kubernetes API only once its
    # cluster-admin access policy is associated: before that, every call is "Unauthorized"
    admin = [
        r.urn
        for r in plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        if str(r.inputs.get("policyArn", "")).endswith("/AmazonEKSClusterAdminPolicy")
    ]
    if plan.of_type("aws:eks/cluster:Cluster"):
        for res in plan:
            if not res.custom or not res.type.startswith("kubernetes:"):
                continue
            if not admin or not graph.waits_for(res.urn, admin):
                findings.append(
                    Finding(
                        "order", res.urn,
                        "may call the Kubernetes API before the deployer's cluster-admin access "
                        "policy is associated: \"Unauthorized\"",
                    )
                )  # fmt: skip
                break  # one finding says it: they share the provider

    # identity bindings wait for the cluster whose pool they name; accounts for their bindings
    clusters = [r.urn for r in plan if r.type in CLUSTERS]
    bindings: dict[tuple[str, str], str] = {}
    for res in plan:
        if (
            res.type.startswith("gcp:serviceaccount/iAM")
            and res.inputs.get("role") == "roles/iam.workloadIdentityUser"
        ):
            if not _needs(graph, res.urn, clusters):
                findings.append(
                    Finding(
                        "order", res.urn,
                        "grants roles/iam.workloadIdentityUser before the GKE cluster exists: "
                        "\"Identity Pool does not exist\"",
                    )
                )  # fmt: skip
            member = res.inputs.get("member")
            if isinstance(member, str) and "[" in member:
                ns_sa = member.split("[", 1)[1].rstrip("]")
                ns, _, sa = ns_sa.partition("/")
                bindings[(ns, sa)] = res.urn
        if res.type == "aws:eks/podIdentityAssociation:PodIdentityAssociation":
            namespace, account = res.inputs.get("namespace"), res.inputs.get("serviceAccount")
            if isinstance(namespace, str) and isinstance(account, str):
                bindings[(namespace, account)] = res.urn
    for res, obj in k8s_objects(plan):
        binding = bindings.get(_meta(obj)) if obj.get("kind") == "ServiceAccount" else None
        if binding is not None and not graph.waits_for(res.urn, [binding]):
            findings.append(
                    Finding(
                        "order", res.urn,
                        "its pods may start before their cloud identity binding exists",
                    )
                )  # fmt: skip

    # pods wait for the Secrets and ConfigMaps they mount; releases for the ones they name
    made: dict[tuple[str, str, str], str] = {}
    for res, obj in k8s_objects(plan):
        if obj.get("kind") in ("Secret", "ConfigMap", "SealedSecret"):
            kind = "ConfigMap" if obj["kind"] == "ConfigMap" else "Secret"
            ns, name = _meta(obj)
            made[(kind, ns, name)] = res.urn
    for res, obj in k8s_objects(plan):
        pod = pod_spec(obj)
        if pod is None:
            continue
        ns = _meta(obj)[0]
        for kind, name, optional in sorted(set(_pod_references(pod))):
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
            elif not graph.waits_for(res.urn, [urn]):
                findings.append(
                    Finding("order", res.urn, f"mounts {kind} {ns}/{name} without waiting for it")
                )
    for res in releases:
        ns = str(res.inputs.get("namespace", ""))
        for kind, name in sorted(set(_value_references(res.inputs.get("values") or {}))):
            urn = made.get((kind, ns, name))
            if urn is not None and not graph.waits_for(res.urn, [urn]):
                findings.append(
                    Finding(
                        "order",
                        res.urn,
                        f"its values name {kind} {ns}/{name} without waiting for it",
                    )
                )
    return findings


def _pod_references(pod: Mapping[str, Any]) -> Iterator[tuple[str, str, bool]]:
    for volume in pod.get("volumes") or []:
        if "secret" in volume:
            ref = volume["secret"]
            yield "Secret", str(ref.get("secretName")), bool(ref.get("optional"))
        if "configMap" in volume:
            ref = volume["configMap"]
            yield "ConfigMap", str(ref.get("name")), bool(ref.get("optional"))
    for container in _containers(pod):
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if key in source:
                    yield kind, str(source[key].get("name")), bool(source[key].get("optional"))
        for env_from in container.get("envFrom") or []:
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if key in env_from:
                    ref = env_from[key]
                    yield kind, str(ref.get("name")), bool(ref.get("optional"))


def _value_references(values: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Secrets and ConfigMaps a chart's values name: `*SecretName` keys, `existing*Secret`
    blocks, `secretKeyRef`s and volumes."""
    if isinstance(values, Mapping):
        lowered = key.lower()
        names_secret = ("existing" in lowered and "secret" in lowered) or lowered in (
            "secretkeyref",
            "secretref",
        )
        if names_secret and isinstance(values.get("name"), str):
            yield "Secret", values["name"]
        if lowered == "configmap" and isinstance(values.get("name"), str):
            yield "ConfigMap", values["name"]
        if lowered == "secret" and isinstance(values.get("secretName"), str):
            yield "Secret", values["secretName"]
        for k, v in values.items():
            if isinstance(v, str) and k.lower().endswith("secretname"):
                yield "Secret", v
            else:
                yield from _value_references(v, str(k))
    elif isinstance(values, list):
        for v in values:
            yield from _value_references(v, key)


# -- reachability ---------------------------------------------------------------------------

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


def _policies(plan: Plan) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for _res, obj in k8s_objects(plan):
        if obj.get("kind") == "NetworkPolicy":
            out.setdefault(_meta(obj)[0], []).append(obj.get("spec") or {})
    return out


def _namespace_labels(plan: Plan) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for _res, obj in k8s_objects(plan):
        if obj.get("kind") == "Namespace":
            name = _meta(obj)[1]
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


def _allowed(
    policies: Mapping[str, list[Mapping[str, Any]]],
    ns_labels: Mapping[str, Mapping[str, str]],
    side: Endpoint,
    direction: str,
    peer: Endpoint | str,
    port: int,
    protocol: str,
) -> bool:
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


def _component_output(plan: Plan, suffix: str, key: str) -> Any:
    for res in plan:
        if not res.custom and res.type.startswith("dex:") and res.type.endswith(suffix):
            return res.outputs.get(key)
    return None


def _int(value: Any, default: int) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default


def required_connections(plan: Plan) -> list[Connection]:
    """What the workloads of this plan must be able to reach, with the ports the plan's own
    contracts say (the database's and the cache's component outputs)."""
    db_port = _int(_component_output(plan, ":Database", "port"), 5432)
    cache_port = _int(_component_output(plan, ":Cache", "port"), 6379)
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
        # the Gateway's proxies reach each backend on its pod port; the load balancer the
        # proxies (privileged listener ports are shifted by 10000 in the pod)
        from components.k8s.gateway import BACKENDS, PROXY_LABELS, PROXY_PORTS

        proxies = Endpoint("platform", PROXY_LABELS)
        for backend in BACKENDS.values():
            pods = Endpoint(backend.namespace, backend.pods or {})
            conns.append(Connection(f"Gateway -> {backend.host}", proxies, pods, backend.pod_port))
        for port in PROXY_PORTS.values():
            conns.append(Connection("load balancer -> Gateway", internet, proxies, port))
    present = _namespace_labels(plan)
    return [
        c
        for c in conns
        if (c.source.namespace if isinstance(c.source, Endpoint) else "platform") in present
    ]


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
    policies = _policies(plan)
    ns_labels = _namespace_labels(plan)
    findings = network_policy_enforced(plan)
    for conn in required_connections(plan):
        if isinstance(conn.source, Endpoint) and not _allowed(
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
        if isinstance(target, Endpoint) and not _allowed(
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


# -- TLS trust ------------------------------------------------------------------------------


def _mount_dirs(
    pod: Mapping[str, Any], container: Mapping[str, Any], config_maps: set[str]
) -> list[str]:
    """Mount paths of `container` backed by a ConfigMap or Secret (a CA bundle can live there)."""
    volumes = {
        v.get("name"): v
        for v in pod.get("volumes") or []
        if ("configMap" in v and (v["configMap"].get("name") in config_maps)) or "secret" in v
    }
    return [
        str(m.get("mountPath"))
        for m in container.get("volumeMounts") or []
        if m.get("name") in volumes
    ]


def _covered(path: str, dirs: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def tls_trust(plan: Plan) -> list[Finding]:
    """Postgres clients with `sslmode=verify-*` and cache clients whose server CA is private
    have that CA in their container, from a ConfigMap the plan creates with a `ca.crt`."""
    findings: list[Finding] = []
    sslmode = _component_output(plan, ":Database", "sslmode")
    if isinstance(sslmode, str) and sslmode not in ("verify-full", "verify-ca"):
        findings.append(
            Finding(
                "tls",
                "database",
                f"clients connect with sslmode={sslmode}: the server is not verified",
            )
        )
    bundles: dict[str, set[str]] = {}
    for _res, obj in k8s_objects(plan):
        if obj.get("kind") == "ConfigMap" and "ca.crt" in (obj.get("data") or {}):
            ns, name = _meta(obj)
            bundles.setdefault(ns, set()).add(name)
    cache_ca = _component_output(plan, ":Cache", "ca_certificate")
    cache_needs_ca = cache_ca is not None and cache_ca != ""
    for res, obj in k8s_objects(plan):
        pod = pod_spec(obj)
        if pod is None:
            continue
        ns = _meta(obj)[0]
        for container in _containers(pod):
            env = {e.get("name"): e.get("value") for e in container.get("env") or []}
            dirs = _mount_dirs(pod, container, bundles.get(ns, set()))
            mode = env.get("PGSSLMODE")
            if isinstance(mode, str) and mode.startswith("verify"):
                root = env.get("PGSSLROOTCERT")
                if not isinstance(root, str) or not _covered(root, dirs):
                    findings.append(
                        Finding(
                            "tls", res.urn,
                            f"container {container.get('name')} verifies Postgres "
                            f"(sslmode={mode}) but its CA ({root or 'PGSSLROOTCERT unset'}) is "
                            "not mounted from a CA bundle: libpq refuses to connect",
                        )
                    )  # fmt: skip
            for value in env.values():
                if isinstance(value, str) and "sslmode=verify" in value:
                    roots = parse_qs(urlsplit(value).query).get("sslrootcert", [])
                    if not roots or not _covered(roots[0], dirs):
                        findings.append(
                            Finding(
                                "tls",
                                res.urn,
                                "a Postgres URL verifies the server without a mounted sslrootcert",
                            )
                        )
            is_cache_client = any(
                e.get("name") == "DEX_API_REDIS_URL" for e in container.get("env") or []
            )
            if is_cache_client and cache_needs_ca:
                ca_file = env.get("DEX_API_REDIS_CA_FILE")
                if not isinstance(ca_file, str) or not _covered(ca_file, dirs):
                    findings.append(
                            Finding(
                                "tls", res.urn,
                                "the cache presents a private CA but the API has no "
                                "DEX_API_REDIS_CA_FILE mounted from a CA bundle",
                            )
                        )  # fmt: skip
    for res in plan.of_type(RELEASE):
        chart = str(res.inputs.get("chart", ""))
        values = res.inputs.get("values") or {}
        ns = str(res.inputs.get("namespace", ""))
        if chart == "mlflow":
            env = values.get("extraEnvVars") or {}
            pod = {"volumes": values.get("extraVolumes") or []}
            container = {"volumeMounts": values.get("extraVolumeMounts") or []}
        elif chart == "airflow":
            env = {"PGSSLMODE": sslmode, "PGSSLROOTCERT": _airflow_root(values)}
            pod = {"volumes": values.get("volumes") or []}
            container = {"volumeMounts": values.get("volumeMounts") or []}
        else:
            continue
        mode = env.get("PGSSLMODE")
        root = env.get("PGSSLROOTCERT")
        dirs = _mount_dirs(pod, container, bundles.get(ns, set()))
        if (
            isinstance(mode, str)
            and mode.startswith("verify")
            and (not isinstance(root, str) or not _covered(root, dirs))
        ):
            findings.append(
                Finding(
                    "tls", res.urn,
                    f"{chart} verifies Postgres (sslmode={mode}) but no CA bundle from the plan "
                    f"is mounted at {root or '(no sslrootcert)'}",
                )
            )  # fmt: skip
    return findings


def _airflow_root(values: Mapping[str, Any]) -> str | None:
    """Where Airflow's metadata connection finds its CA: the connection itself is a secret,
    so the plan shows only the mount; the file name is the platform's contract."""
    from components.k8s.base import POSTGRES_CA_FILE

    return POSTGRES_CA_FILE if values.get("volumeMounts") else None


# -- cold start -----------------------------------------------------------------------------


def cold_start(plan: Plan) -> list[Finding]:
    """On a new stack there is no gold data and no model: a Deployment the provider awaits
    must become ready anyway, or the first `up` fails."""
    findings: list[Finding] = []
    for res, obj in k8s_objects(plan):
        if obj.get("kind") != "Deployment" or _meta(obj) != ("apps", "api"):
            continue
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if annotations.get("pulumi.com/skipAwait") == "true":
            continue
        for container in _containers(pod_spec(obj) or {}):
            probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
            path = str(probe.get("path", ""))
            query = parse_qs(urlsplit(path).query)
            checks = set(",".join(query.get("only", [])).split(",")) - {""}
            if not checks or not checks <= DAY0_READY_CHECKS:
                findings.append(
                    Finding(
                        "cold-start", res.urn,
                        f"readiness {path!r} needs {sorted(checks) or 'every check'}; on day 0 "
                        f"only {sorted(DAY0_READY_CHECKS)} can pass (no model yet): the update "
                        "times out",
                    )
                )  # fmt: skip
    return findings


# -- all of it --------------------------------------------------------------------------------


def check_plan(
    plan: Plan,
    stack_config: Mapping[str, Any],
    project_dir: Path = PROJECT_DIR,
    invokes: Iterable[Mapping[str, Any]] = (),
) -> list[Finding]:
    return [
        *engine_rules(plan, stack_config, invokes),
        *plugin_paths(plan, project_dir),
        *creation_order(plan),
        *reachability(plan),
        *tls_trust(plan),
        *cold_start(plan),
    ]


def waits_summary(graph: Graph, res: Resource, previous: set[str]) -> list[str]:
    """The direct prerequisites of `res` that the previous wave created."""
    return sorted(graph.by_urn[u].name for u in graph.prereqs.get(res.urn, ()) if u in previous)


def describe_waves(plan: Plan) -> list[dict[str, Any]]:
    graph = Graph(plan)
    out: list[dict[str, Any]] = []
    previous: set[str] = set()
    for i, wave in enumerate(graph.waves()):
        out.append(
            {
                "wave": i,
                "resources": [
                    {"name": r.name, "type": r.type, "waits_for": waits_summary(graph, r, previous)}
                    for r in wave
                ],
            }
        )
        previous = {r.urn for r in wave}
    return out
