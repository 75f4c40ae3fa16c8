"""Kubernetes pod rules beyond the basics in `rules_k8s`: /proc masking, sysctls and secrets
written into a pod spec. Like the rules there, they read the pod spec of every workload kind
(Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob's job template, ...) and
every container in it: regular, init and ephemeral."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from policies.model import ALWAYS, UNKNOWN, Subject, as_list, is_secret, resource_rule
from policies.rules_k8s import WORKLOADS, containers, pod_spec


@resource_rule(
    "K8S-022",
    "Containers keep /proc masked",
    "high",
    ALWAYS,
    WORKLOADS,
    "Remove securityContext.procMount (or set it to Default).",
    description="procMount Unmasked turns off the container runtime's masking and read-only "
    "paths in /proc, which hide the host kernel's knobs (/proc/sys, /proc/sysrq-trigger, "
    "/proc/kcore) from the container; the Pod Security Standards' baseline forbids it.",
)
def proc_mount(r: Subject) -> Iterator[str]:
    for c in containers(r):
        mount = (c.get("securityContext") or {}).get("procMount")
        if mount not in (None, "Default"):
            yield f"container {c.get('name')} mounts /proc {mount}"


SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
"""The safe set of Kubernetes 1.32+ (kubernetes.io, "Using sysctls in a Kubernetes Cluster",
and the Pod Security Standards' baseline): namespaced and isolated from the other pods on the
node. Every other sysctl is unsafe: the kubelet refuses it unless the node opts in."""


@resource_rule(
    "K8S-023",
    "Pods set only safe sysctls",
    "medium",
    ALWAYS,
    WORKLOADS,
    "Remove securityContext.sysctls other than the safe set (kernel.shm_rmid_forced, "
    "net.ipv4.ip_local_port_range, net.ipv4.ip_unprivileged_port_start, "
    "net.ipv4.tcp_syncookies, net.ipv4.ping_group_range, net.ipv4.ip_local_reserved_ports, "
    "net.ipv4.tcp_keepalive_time/_intvl/_probes, net.ipv4.tcp_fin_timeout, "
    "net.ipv4.tcp_rmem/_wmem); tune the node instead.",
    description="An unsafe sysctl is either not namespaced or not isolated between pods: set "
    "from one pod it changes the node or its neighbours. With hostNetwork even the safe net.* "
    "sysctls act on the node's own network namespace.",
)
def safe_sysctls(r: Subject) -> Iterator[str]:
    spec = pod_spec(r)
    host_network = spec.get("hostNetwork") is True
    for sysctl in as_list((spec.get("securityContext") or {}).get("sysctls")):
        if not isinstance(sysctl, Mapping):
            continue
        raw = str(sysctl.get("name", ""))
        name = raw.replace("/", ".") if "/" in raw else raw  # both separators are accepted
        if name not in SAFE_SYSCTLS:
            yield f"sysctl {raw} is not in the safe set"
        elif host_network and name.startswith("net."):
            yield f"sysctl {raw} with hostNetwork changes the node's network namespace"


SECRET_WORDS = (
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "APIKEY",
    "API_KEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
    "SECRET_KEY",
    "SIGNING_KEY",
    "ENCRYPTION_KEY",
    "FERNET_KEY",
    "CREDENTIAL",
)
NOT_SECRET_ENDINGS = (
    "_FILE",
    "_PATH",
    "_DIR",
    "_NAME",
    "_ARN",
    "_ID",
    "_URL",
    "_URI",
    "_ENDPOINT",
    "_REF",
    "_HEADER",
    "_TTL",
    "_EXPIRY",
    "_LENGTH",
    "_TIMEOUT",
    "_ENABLED",
    "_TYPE",
    "_MODE",
    "_KEY_ID",
    "_AUDIENCE",
    "_ISSUER",
    "_SECONDS",
)
"""What a variable that names where a secret is, or how it behaves, ends with."""
PLAIN_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "none", "null"})
CREDENTIAL_URL = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.IGNORECASE)
"""A URL with a password in its userinfo: `postgresql://user:password@host/db`."""


def _looks_secret(name: str, value: Any) -> bool:
    upper = name.upper().replace("-", "_").replace(".", "_")
    if not any(word in upper for word in SECRET_WORDS) or upper.endswith(NOT_SECRET_ENDINGS):
        return False
    if value == UNKNOWN or is_secret(value):
        return True  # computed at apply time, or a Pulumi secret: still written into the spec
    if not isinstance(value, str):
        return False
    text = value.strip()
    return bool(text) and text.lower() not in PLAIN_VALUES and not text.isdigit()


HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
ENV_KEY = re.compile(r"env(vars?|ironment)?$", re.IGNORECASE)
"""A values key holding an env map: `env`, `extraEnv`, `extraEnvVars`, `environment`."""


def _env_lists(values: Any, path: str = "") -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """The env-shaped parts of a Helm release's values, with where they are: lists of
    `{name, value}` entries (what charts copy into a container's env) and maps under a key
    named like env (ENV_KEY)."""
    pairs: list[tuple[str, Any]]
    if isinstance(values, Mapping):
        for key, child in values.items():
            here = f"{path}.{key}"
            if ENV_KEY.search(str(key)) and isinstance(child, Mapping):
                pairs = [(str(k), v) for k, v in child.items() if isinstance(v, str)]
                if pairs:
                    yield here, pairs
            yield from _env_lists(child, here)
    elif isinstance(values, list):
        pairs = [
            (str(e.get("name", "")), e.get("value"))
            for e in values
            if isinstance(e, Mapping) and "name" in e and "value" in e
        ]
        if pairs:
            yield path, pairs
        for i, child in enumerate(values):
            yield from _env_lists(child, f"{path}[{i}]")


def _secret_env(pairs: list[tuple[str, Any]]) -> Iterator[str]:
    for name, value in pairs:
        if _looks_secret(name, value):
            yield f"sets {name} to a literal value"
        elif isinstance(value, str) and CREDENTIAL_URL.match(value):
            yield f"sets {name} to a URL with a password in it"


@resource_rule(
    "K8S-024",
    "Secrets are not written into pod specs as literal env values",
    "high",
    ALWAYS,
    (*WORKLOADS, HELM_RELEASE),
    "Put the value in a Secret (or a secret store synced into one) and reference it with "
    "env[].valueFrom.secretKeyRef, envFrom.secretRef, or a mounted Secret volume (for a chart: "
    "the chart's existingSecret-style value).",
    description="A literal env value is part of the workload object: anyone who can read the "
    "Deployment (or the plan, the state, `kubectl describe`) reads the secret, and it cannot "
    "be rotated without a new rollout. Flagged: a variable named like a secret (password, "
    "token, secret, API or private key, credentials) with a literal `value`, and any value "
    "that is a URL carrying a password. A Helm release's rendered pods are opaque; the env "
    "entries in the values we pass it are read.",
)
def literal_secret_env(r: Subject) -> Iterator[str]:
    if r.type == HELM_RELEASE:
        for path, pairs in _env_lists(r.get("values") or {}):
            for problem in _secret_env(pairs):
                yield f"values {path or '.'} {problem}"
        return
    for c in containers(r):
        pairs = [
            (str(e.get("name", "")), e.get("value"))
            for e in as_list(c.get("env"))
            if isinstance(e, Mapping) and "value" in e
        ]
        for problem in _secret_env(pairs):
            yield f"container {c.get('name')} {problem}"
