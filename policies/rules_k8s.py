"""Kubernetes rules: workload hardening, exposure, namespaces, and cross-object checks; plus
the tag/label rules every cloud resource answers to."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from policies.model import (
    ADVISE,
    ALWAYS,
    PROD,
    UNKNOWN,
    StackSubject,
    Subject,
    Unknowable,
    as_list,
    decoded,
    resource_rule,
    stack_rule,
)

POD_SPEC_PATHS = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:ReplicationController": ("spec", "template", "spec"),
    "kubernetes:core/v1:PodTemplate": ("template", "spec"),
}
"""Where each kind that runs pods keeps its pod spec. The `*Patch` kinds are left out: a patch
carries only the fields it changes, so a missing field there says nothing."""
WORKLOADS = tuple(POD_SPEC_PATHS)
SERVING = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet")


def pod_spec(r: Subject) -> Mapping[str, Any]:
    """The pod spec of any workload kind; raises Unknowable when it is not known yet."""
    node = r.get(".".join(POD_SPEC_PATHS[r.type]))
    return node if isinstance(node, Mapping) else {}


def containers(r: Subject, init: bool = True, ephemeral: bool = True) -> list[Mapping[str, Any]]:
    """The pod's containers, with its init containers and its ephemeral (debug) containers,
    which run in the pod's namespaces with their own securityContext."""
    spec = pod_spec(r)
    found = list(as_list(spec.get("containers")))
    if init:
        found += as_list(spec.get("initContainers"))
    if ephemeral:
        found += as_list(spec.get("ephemeralContainers"))
    return [c for c in found if isinstance(c, Mapping)]


def capability(name: Any) -> str:
    """A capability as the kernel names it without its prefix: `cap_sys_admin` -> SYS_ADMIN."""
    text = str(name).upper()
    return text.removeprefix("CAP_")


def _ctx(c: Mapping[str, Any]) -> Mapping[str, Any]:
    return c.get("securityContext") or {}


@resource_rule(
    "K8S-001",
    "Containers run as non-root",
    "high",
    ALWAYS,
    WORKLOADS,
    "Set securityContext.runAsNonRoot true (pod or container) and a non-zero runAsUser.",
    ["CIS-K8S-1.8.0:5.2.7", "CIS-EKS-1.4.0:4.2.6"],
)
def non_root(r: Subject) -> Iterator[str]:
    pod = pod_spec(r).get("securityContext") or {}
    for c in containers(r):
        ctx = _ctx(c)
        non_root_set = ctx.get("runAsNonRoot", pod.get("runAsNonRoot"))
        user = ctx.get("runAsUser", pod.get("runAsUser"))
        if user == 0 or (non_root_set is not True and not user):
            yield f"container {c.get('name')} may run as root"


@resource_rule(
    "K8S-002",
    "Containers cannot escalate privileges",
    "high",
    ALWAYS,
    WORKLOADS,
    "Set securityContext.allowPrivilegeEscalation false.",
    ["CIS-K8S-1.8.0:5.2.6"],
)
def no_escalation(r: Subject) -> Iterator[str]:
    for c in containers(r):
        if _ctx(c).get("allowPrivilegeEscalation") is not False:
            yield f"container {c.get('name')} allows privilege escalation"


@resource_rule(
    "K8S-003",
    "No privileged containers",
    "critical",
    ALWAYS,
    WORKLOADS,
    "Remove securityContext.privileged.",
    ["CIS-K8S-1.8.0:5.2.2", "CIS-EKS-1.4.0:4.2.1"],
)
def not_privileged(r: Subject) -> Iterator[str]:
    for c in containers(r):
        if _ctx(c).get("privileged") is True:
            yield f"container {c.get('name')} is privileged"


@resource_rule(
    "K8S-004",
    "Root filesystems are read-only",
    "medium",
    PROD,
    WORKLOADS,
    "Set securityContext.readOnlyRootFilesystem true; mount emptyDir for scratch space.",
)
def read_only_root(r: Subject) -> Iterator[str]:
    for c in containers(r):
        if _ctx(c).get("readOnlyRootFilesystem") is not True:
            yield f"container {c.get('name')} has a writable root filesystem"


@resource_rule(
    "K8S-005",
    "Containers drop all capabilities",
    "high",
    ALWAYS,
    WORKLOADS,
    "Set securityContext.capabilities.drop [ALL].",
    ["CIS-K8S-1.8.0:5.2.8", "CIS-K8S-1.8.0:5.2.10"],
)
def drop_all(r: Subject) -> Iterator[str]:
    for c in containers(r):
        drop = [capability(d) for d in as_list((_ctx(c).get("capabilities") or {}).get("drop"))]
        if "ALL" not in drop:
            yield f"container {c.get('name')} does not drop ALL capabilities"


@resource_rule(
    "K8S-006",
    "Containers add no capabilities beyond NET_BIND_SERVICE",
    "high",
    ALWAYS,
    WORKLOADS,
    "Remove capabilities.add.",
    ["CIS-K8S-1.8.0:5.2.9"],
)
def no_added_caps(r: Subject) -> Iterator[str]:
    for c in containers(r):
        caps = (_ctx(c).get("capabilities") or {}).get("add")
        added = {capability(a) for a in as_list(caps)} - {"NET_BIND_SERVICE"}
        if added:
            yield f"container {c.get('name')} adds {', '.join(sorted(map(str, added)))}"


@resource_rule(
    "K8S-007",
    "Containers set CPU and memory limits",
    "medium",
    PROD,
    WORKLOADS,
    "Set resources.requests and resources.limits (cpu, memory).",
)
def limits(r: Subject) -> Iterator[str]:
    for c in containers(r, ephemeral=False):  # ephemeral containers take no resources
        lim = (c.get("resources") or {}).get("limits") or {}
        missing = [k for k in ("cpu", "memory") if k not in lim]
        if missing:
            yield f"container {c.get('name')} has no {' or '.join(missing)} limit"


@resource_rule(
    "K8S-008",
    "No hostPath volumes",
    "high",
    ALWAYS,
    WORKLOADS,
    "Use PersistentVolumeClaims, emptyDir or projected volumes.",
    ["CIS-K8S-1.8.0:5.2.12"],
)
def no_host_path(r: Subject) -> Iterator[str]:
    for v in as_list(pod_spec(r).get("volumes")):
        if isinstance(v, Mapping) and v.get("hostPath"):
            yield f"volume {v.get('name')} mounts the host path {v['hostPath'].get('path')}"


@resource_rule(
    "K8S-009",
    "Pods share no host namespace",
    "critical",
    ALWAYS,
    WORKLOADS,
    "Remove hostNetwork, hostPID and hostIPC, and windowsOptions.hostProcess (pod or container).",
    ["CIS-K8S-1.8.0:5.2.3", "CIS-K8S-1.8.0:5.2.4", "CIS-K8S-1.8.0:5.2.5", "CIS-K8S-1.8.0:5.2.11"],
)
def no_host_namespaces(r: Subject) -> Iterator[str]:
    spec = pod_spec(r)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) is True:
            yield f"{key} is true"
    pod = ((spec.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess")
    if pod is True:
        yield "the pod runs as a Windows HostProcess (the host's own namespaces)"
    for c in containers(r):
        if (_ctx(c).get("windowsOptions") or {}).get("hostProcess") is True:
            yield f"container {c.get('name')} runs as a Windows HostProcess"


@resource_rule(
    "K8S-010",
    "No host ports",
    "medium",
    ALWAYS,
    WORKLOADS,
    "Remove ports[].hostPort; expose through a Service.",
    ["CIS-K8S-1.8.0:5.2.13"],
)
def no_host_ports(r: Subject) -> Iterator[str]:
    for c in containers(r):
        for port in as_list(c.get("ports")):
            if isinstance(port, Mapping) and port.get("hostPort"):
                yield f"container {c.get('name')} binds host port {port['hostPort']}"


@resource_rule(
    "K8S-011",
    "Images are pinned by digest",
    "high",
    PROD,
    WORKLOADS,
    "Reference images as repo@sha256:...; never :latest.",
)
def image_digest(r: Subject) -> Iterator[str]:
    for c in containers(r):
        image = str(c.get("image", ""))
        if image == UNKNOWN:
            raise Unknowable(f"container {c.get('name')} image")  # the digest of a build
        if "@sha256:" not in image:
            yield f"container {c.get('name')} image {image or '(none)'} is not pinned by digest"


@resource_rule(
    "K8S-012",
    "Long-running containers have liveness and readiness probes",
    "medium",
    PROD,
    SERVING,
    "Add readinessProbe and livenessProbe (and startupProbe for slow starts).",
)
def probes(r: Subject) -> Iterator[str]:
    for c in containers(r, init=False, ephemeral=False):
        missing = [p for p in ("readinessProbe", "livenessProbe") if not c.get(p)]
        if missing:
            yield f"container {c.get('name')} has no {' or '.join(missing)}"


@resource_rule(
    "K8S-013",
    "Pods use the RuntimeDefault seccomp profile",
    "medium",
    PROD,
    WORKLOADS,
    "Set securityContext.seccompProfile.type RuntimeDefault.",
    ["CIS-K8S-1.8.0:5.7.2"],
)
def seccomp(r: Subject) -> Iterator[str]:
    pod = (pod_spec(r).get("securityContext") or {}).get("seccompProfile") or {}
    for c in containers(r):
        profile = (_ctx(c).get("seccompProfile") or pod).get("type")
        if profile not in ("RuntimeDefault", "Localhost"):
            yield f"container {c.get('name')} runs unconfined"


@resource_rule(
    "K8S-016",
    "Namespaces enforce a Pod Security Standard",
    "high",
    PROD,
    ["kubernetes:core/v1:Namespace"],
    "Label the namespace pod-security.kubernetes.io/enforce: restricted (or baseline).",
    ["CIS-EKS-1.4.0:4.2.1"],
)
def pod_security(r: Subject) -> Iterator[str]:
    labels = (r.get("metadata") or {}).get("labels") or {}
    level = labels.get("pod-security.kubernetes.io/enforce")
    if level not in ("restricted", "baseline"):
        shown = f"enforce label is {level!r}" if level else "no enforce label"
        yield f"pod-security.kubernetes.io/{shown}"


@resource_rule(
    "K8S-017",
    "Workloads are not in the default namespace",
    "low",
    ADVISE,
    WORKLOADS,
    "Put each workload in the namespace of its concern.",
    ["CIS-K8S-1.8.0:5.7.4"],
)
def not_default_namespace(r: Subject) -> Iterator[str]:
    namespace = (r.get("metadata") or {}).get("namespace")
    if namespace in (None, "default"):
        yield "runs in the default namespace"


def _selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    match = selector.get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


@stack_rule(
    "K8S-S01",
    "Every Deployment has a PodDisruptionBudget",
    "medium",
    PROD,
    ["kubernetes:apps/v1:Deployment", "kubernetes:policy/v1:PodDisruptionBudget"],
    "Add a policy/v1 PodDisruptionBudget selecting the Deployment's pods.",
)
def pdb_per_deployment(stack: StackSubject) -> Iterator[tuple[str, str]]:
    pdbs = stack.of_type("kubernetes:policy/v1:PodDisruptionBudget")
    for dep in stack.of_type("kubernetes:apps/v1:Deployment"):
        meta = dep.props.get("metadata") or {}
        labels = ((dep.props.get("spec") or {}).get("template") or {}).get("metadata", {}).get(
            "labels"
        ) or {}
        covered = any(
            (p.props.get("metadata") or {}).get("namespace") == meta.get("namespace")
            and _selects((p.props.get("spec") or {}).get("selector") or {}, labels)
            for p in pdbs
        )
        if not covered:
            yield dep.urn, f"Deployment {meta.get('name')} has no PodDisruptionBudget"


@stack_rule(
    "K8S-S02",
    "Every namespace has a default-deny NetworkPolicy",
    "high",
    PROD,
    ["kubernetes:core/v1:Namespace", "kubernetes:networking.k8s.io/v1:NetworkPolicy"],
    "Add a NetworkPolicy with an empty podSelector and policyTypes [Ingress, Egress].",
    ["CIS-K8S-1.8.0:5.3.2", "CIS-EKS-1.4.0:4.3.2"],
)
def default_deny(stack: StackSubject) -> Iterator[tuple[str, str]]:
    denied = set()
    for pol in stack.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy"):
        spec = pol.props.get("spec") or {}
        if spec.get("podSelector") in ({}, None) and "Ingress" in as_list(spec.get("policyTypes")):
            denied.add((pol.props.get("metadata") or {}).get("namespace"))
    for ns in stack.of_type("kubernetes:core/v1:Namespace"):
        name = (ns.props.get("metadata") or {}).get("name")
        if name not in denied:
            yield ns.urn, f"namespace {name} has no default-deny NetworkPolicy"


# -- tags and labels ----------------------------------------------------------------------------


@cache
def takes(type_: str, prop: str) -> bool:
    """Whether the provider SDK's resource class for `type_` accepts the input `prop`."""
    try:
        package, rest = type_.split(":", 1)
        module, cls = rest.split(":")
        mod = importlib.import_module(f"pulumi_{package}.{module.split('/')[0]}")
        klass = getattr(mod, cls)
        return prop in inspect.signature(klass._internal_init).parameters
    except (ImportError, AttributeError, ValueError):
        return False


def _missing(tags: Mapping[str, Any], required: tuple[str, ...]) -> list[str]:
    return [t for t in required if not tags.get(t)]


def _tag_subject(r: Subject) -> bool:
    return r.type.startswith("aws:") and takes(r.type, "tags")


@resource_rule(
    "TAG-001",
    "AWS resources carry the required tags",
    "low",
    PROD,
    ["aws:*"],
    "Set the tags through the provider's default_tags (project, environment, owner) and "
    "per-resource tags.",
)
def aws_tags(r: Subject) -> Iterator[str]:
    if not _tag_subject(r):
        return
    defaults = decoded(r.provider_props.get("defaultTags")) or {}
    tags = {**(defaults.get("tags") or {}), **(r.get("tags") or {})}
    missing = _missing(tags, r.config.required_tags)
    if missing:
        yield f"missing tags: {', '.join(missing)}"


LABEL_PROPS = {
    "gcp:container/cluster:Cluster": "resourceLabels",
    "gcp:sql/databaseInstance:DatabaseInstance": "settings.userLabels",
}


@resource_rule(
    "TAG-002",
    "GCP resources carry the required labels",
    "low",
    PROD,
    ["gcp:*"],
    "Set the labels through the provider's default_labels and per-resource labels.",
)
def gcp_labels(r: Subject) -> Iterator[str]:
    prop = LABEL_PROPS.get(r.type, "labels")
    top = prop.split(".")[0]
    if not r.type.startswith("gcp:") or not takes(r.type, _snake(top)):
        return
    defaults = decoded(r.provider_props.get("defaultLabels")) or {}
    # The provider's default labels land on `labels` and GKE's `resourceLabels` (both have
    # terraform_labels); Cloud SQL's `settings.userLabels` needs its own.
    inherited = defaults if "." not in prop else {}
    labels = {**inherited, **(r.get(prop) or {})}
    missing = _missing(labels, r.config.required_tags)
    if missing:
        yield f"missing labels: {', '.join(missing)}"


def _snake(name: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name)
