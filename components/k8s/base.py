"""Shared pieces of everything components/k8s puts on the cluster: namespaces, labels,
security contexts and resource sizes, written once so every workload gets the same hardening.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

NAMESPACES: dict[str, str] = {
    "platform": "baseline",
    "mlflow": "baseline",
    "airflow": "baseline",
    "apps": "restricted",
    "observability": "baseline",
}
"""Each concern's namespace and the Pod Security level it enforces; every namespace also
warns and audits at `restricted`. `apps` runs only this repository's workloads, whose pod
specs the tests hold to `restricted`. The other namespaces run third-party charts whose
rendered pods cannot be checked offline (no chart sources here): they enforce `baseline`
(no privileged pods, host namespaces or hostPath) and report anything short of `restricted`
as warnings at deploy time and audit events, so tightening them is a reviewed one-line change.
The node exporter, which needs the host, is not installed (kubelet metrics cover nodes)."""

PLATFORM_NS = "platform"
OBSERVABILITY_NS = "observability"
APPS_NS = "apps"
MLFLOW_NS = "mlflow"
AIRFLOW_NS = "airflow"

MANAGED_BY = {"app.kubernetes.io/part-of": "dex", "app.kubernetes.io/managed-by": "pulumi"}

POSTGRES_CA_CONFIGMAP = "postgres-ca"
POSTGRES_CA_DIR = "/etc/dex/postgres-ca"
POSTGRES_CA_FILE = f"{POSTGRES_CA_DIR}/ca.crt"
"""Where every Postgres client finds the CA it verifies the server with (`sslrootcert`)."""
CACHE_CA_CONFIGMAP = "cache-ca"
CACHE_CA_DIR = "/etc/dex/cache-ca"
CACHE_CA_FILE = f"{CACHE_CA_DIR}/ca.crt"
"""Where the API finds the cache's CA when the system trust store does not hold it."""

MODEL_OPS_APP = "model-ops"
"""The model-ops CronJob's name and `app.kubernetes.io/name` (its alert reads the CronJob's
kube-state-metrics by this name)."""

BATCH_POOL_LABEL = "dex.io/pool"
"""The node label and taint key of the node pools (`system`, `batch`)."""


def ca_volume(config_map: str, mount_dir: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(volume, volumeMount) of a CA bundle ConfigMap, mounted read-only at `mount_dir`."""
    return (
        {"name": config_map, "configMap": {"name": config_map}},
        {"name": config_map, "mountPath": mount_dir, "readOnly": True},
    )


def batch_scheduling() -> dict[str, Any]:
    """Pod spec fields of batch work (training, pipeline tasks): tolerate the batch pool's
    taint and prefer its nodes, so spot capacity is used where it exists and the system pool
    still runs the work where it does not."""
    return {
        "tolerations": [
            {
                "key": BATCH_POOL_LABEL,
                "operator": "Equal",
                "value": "batch",
                "effect": "NoSchedule",
            }
        ],
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "preference": {
                            "matchExpressions": [
                                {"key": BATCH_POOL_LABEL, "operator": "In", "values": ["batch"]}
                            ]
                        },
                    }
                ]
            }
        },
    }


def labels(name: str, component: str | None = None) -> dict[str, str]:
    """The recommended app labels of one workload."""
    out = {"app.kubernetes.io/name": name, **MANAGED_BY}
    if component:
        out["app.kubernetes.io/component"] = component
    return out


def selector(name: str) -> dict[str, str]:
    """The labels a Service/PDB/HPA selects one workload's pods by (stable: never change)."""
    return {"app.kubernetes.io/name": name}


RUNTIME_DEFAULT = {"type": "RuntimeDefault"}


def pod_security(uid: int = 10001) -> dict[str, Any]:
    """A pod securityContext that satisfies Pod Security `restricted`."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": RUNTIME_DEFAULT,
    }


def container_security() -> dict[str, Any]:
    """A container securityContext: no privilege, no escalation, no capabilities, read-only
    root filesystem (writable paths are emptyDir mounts)."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": RUNTIME_DEFAULT,
    }


def resources(cpu: str, memory: str, cpu_limit: str | None = None) -> dict[str, Any]:
    """Requests and limits: memory limit = request (no overcommit of what gets OOM-killed),
    CPU limited at `cpu_limit` (default 4x the request)."""
    limit = cpu_limit or _times(cpu, 4)
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": limit, "memory": memory}}


def _times(cpu: str, factor: int) -> str:
    milli = int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)
    return f"{milli * factor}m"


def env_list(values: dict[str, Any]) -> list[dict[str, Any]]:
    """`{"NAME": value}` as a container env list, sorted by name (stable diffs); a value
    that is a dict is used as `valueFrom`."""
    out = []
    for name in sorted(values):
        value = values[name]
        if isinstance(value, dict):
            out.append({"name": name, "valueFrom": value})
        else:
            out.append({"name": name, "value": value})
    return out


def secret_ref(secret: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": secret, "key": key}}


def untyped(value: Any) -> Any:
    """A Kubernetes object part handed to pulumi-kubernetes as plain data. Its TypedDict
    overloads make mypy's check of large nested literals explode (minutes, gigabytes); the
    strict Kubernetes schema validation of every object in the plans checks them instead
    (tests/unit/test_k8s.py), field by field, with the cluster version's own schema."""
    return value


@dataclass(frozen=True)
class Chart:
    """A pinned chart and where its release goes: everything `helm_release` installs except
    the values."""

    release: str
    """The Helm release's name."""
    chart: str
    """The chart's name in `repo`, or its whole `oci://` reference (then `repo` is empty)."""
    version: str
    repo: str
    """The chart repository's URL; empty for an OCI chart."""
    namespace: str
    timeout: int | None = None
    """Seconds Helm waits for the release to become ready; None: left unset (the provider's
    default)."""
    skip_crds: bool | None = None
    """Whether Helm skips the chart's `crds/` folder; None: left unset (Helm installs them)."""


def helm_release(
    name: str, chart: Chart, values: dict[str, Any], opts: pulumi.ResourceOptions
) -> k8s.helm.v3.Release:
    """A pinned chart from its repository, installed atomically (a failed install or upgrade
    rolls back and cleans up): the one way components/k8s installs a chart. helm.v3.Release
    keeps `values` as inputs: the plan shows them and the tests check them against the chart.
    `timeout` and `skip_crds` reach the release only when the chart sets them."""
    extra: dict[str, Any] = {}
    if chart.timeout is not None:
        extra["timeout"] = chart.timeout
    if chart.skip_crds is not None:
        extra["skip_crds"] = chart.skip_crds
    return k8s.helm.v3.Release(
        name,
        name=chart.release,
        chart=chart.chart,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
        namespace=chart.namespace,
        values=values,
        atomic=True,
        cleanup_on_fail=True,
        opts=opts,
        **extra,
    )
