"""Airflow: the official chart with the KubernetesExecutor, its metadata database on the
managed Postgres, task logs in the logs bucket through the workload identity, the DAGs baked
into the pipelines image, and every key from sealed secrets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.k8s.base import (
    AIRFLOW_NS,
    POSTGRES_CA_CONFIGMAP,
    POSTGRES_CA_DIR,
    RUNTIME_DEFAULT,
    Chart,
    batch_scheduling,
    ca_volume,
    env_list,
    helm_release,
    resources,
    secret_ref,
)
from components.k8s.gateway import BACKENDS, https_route
from components.options import take_depends_on

AIRFLOW_CHART_VERSION = "1.21.0"
AIRFLOW_VERSION = "3.2.2"
"""The chart's airflowVersion; the pipelines image is built on apache/airflow of this version."""
METADATA_SECRET = "airflow-metadata"
FERNET_SECRET = "airflow-fernet-key"
API_SECRET = "airflow-api-secret-key"
JWT_SECRET = "airflow-jwt-secret"
ADMIN_SECRET = "airflow-admin"
SERVICE_ACCOUNT = "airflow"
TASK_SERVICE_ACCOUNT = "pipelines"

_COMPONENTS_ON_AIRFLOW_SA = (
    "scheduler",
    "apiServer",
    "triggerer",
    "dagProcessor",
    "migrateDatabaseJob",
    "createUserJob",
    "statsd",
    "cleanup",
    "databaseCleanup",
)


def remote_log_conn_id(logs_url: str) -> str:
    """The connection Airflow's remote logging uses; with no such connection defined, the
    hooks fall back to the pod's ambient (workload identity) credentials."""
    return "aws_default" if logs_url.startswith("s3://") else "google_cloud_default"


def _images(repository: pulumi.Input[str], tag: str, digest: pulumi.Input[str]) -> dict[str, Any]:
    return {
        "airflow": {
            "repository": repository,
            # the digest wins where the chart supports one; the KubernetesExecutor's
            # `repository:tag` then also resolves to it (`tag@digest` pins by digest)
            "tag": pulumi.Output.concat(tag, "@", digest),
            "digest": digest,
            "pullPolicy": "IfNotPresent",
        },
        "useDefaultImageForMigration": False,
    }


def _security_contexts() -> dict[str, Any]:
    return {
        "pod": {
            "runAsNonRoot": True,
            "runAsUser": 50000,
            "fsGroup": 0,
            "seccompProfile": RUNTIME_DEFAULT,
        },
        "containers": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    }


def _config(host: str, logs_url: pulumi.Input[str]) -> dict[str, Any]:
    """airflow.cfg: no examples, task logs in the logs bucket, the API's public URL."""
    return {
        "core": {"load_examples": "False"},
        "logging": {
            "remote_logging": "True",
            "remote_base_log_folder": pulumi.Output.concat(logs_url, "/tasks"),
            "remote_log_conn_id": pulumi.Output.from_input(logs_url).apply(remote_log_conn_id),
            "delete_local_logs": "True",
        },
        "api": {"base_url": f"https://{host}"},
    }


def _create_user_job() -> dict[str, Any]:
    """The admin user, its password from the `ADMIN_SECRET` Secret."""
    return {
        "defaultUser": {
            "role": "Admin",
            "username": "admin",
            "email": "admin@dex.local",
            "firstName": "DEX",
            "lastName": "Admin",
            # expanded by Kubernetes from the container's env: never in the values
            "password": "$(DEX_AIRFLOW_ADMIN_PASSWORD)",
        },
        "env": [
            {
                "name": "DEX_AIRFLOW_ADMIN_PASSWORD",
                "valueFrom": secret_ref(ADMIN_SECRET, "password"),
            }
        ],
    }


def airflow_values(
    *,
    host: str,
    image_repository: pulumi.Input[str],
    image_tag: str,
    image_digest: pulumi.Input[str],
    logs_url: pulumi.Input[str],
    task_env: dict[str, Any],
    replicas: int,
) -> dict[str, Any]:
    """`task_env` reaches every Airflow container, so the KubernetesExecutor's task pods
    (which run the pipeline) see the lake and telemetry settings."""
    sa = {"create": False, "name": SERVICE_ACCOUNT}
    # every Airflow container (task pods too) mounts the Postgres CA: the metadata
    # connection verifies the server with `sslrootcert` (the secret's URL names the file)
    ca, ca_mount = ca_volume(POSTGRES_CA_CONFIGMAP, POSTGRES_CA_DIR)
    values: dict[str, Any] = {
        "executor": "KubernetesExecutor",
        "airflowVersion": AIRFLOW_VERSION,
        "images": _images(image_repository, image_tag, image_digest),
        "postgresql": {"enabled": False},
        "redis": {"enabled": False},
        "pgbouncer": {"enabled": False},
        "data": {"metadataSecretName": METADATA_SECRET},
        "fernetKeySecretName": FERNET_SECRET,
        "apiSecretKeySecretName": API_SECRET,
        "jwtSecretName": JWT_SECRET,
        "uid": 50000,
        "gid": 0,
        "securityContexts": _security_contexts(),
        "env": env_list(task_env),
        "volumes": [ca],
        "volumeMounts": [ca_mount],
        "config": _config(host, logs_url),
        "createUserJob": _create_user_job(),
        "apiServer": {"replicas": replicas, "resources": resources("250m", "1Gi", "2")},
        "scheduler": {"replicas": replicas, "resources": resources("250m", "1Gi", "2")},
        # task pods (the KubernetesExecutor's pod template) run on the batch pool if it has room
        "workers": {
            "serviceAccount": {"create": False, "name": TASK_SERVICE_ACCOUNT},
            "resources": resources("500m", "2Gi", "2"),
            **batch_scheduling(),
        },
        # the triggerer's log volume: the cluster's default StorageClass provisions it
        "triggerer": {"persistence": {"size": "10Gi"}},
        "dags": {"persistence": {"enabled": False}, "gitSync": {"enabled": False}},
        "logs": {"persistence": {"enabled": False}},
        "statsd": {"enabled": True},
        # served through the `dex` Gateway (the HTTPRoute `airflow`), not an Ingress
        "ingress": {"apiServer": {"enabled": False}},
    }
    for component in _COMPONENTS_ON_AIRFLOW_SA:
        section = values.setdefault(component, {})
        section["serviceAccount"] = dict(sa)
    return values


AIRFLOW = Chart(
    release="airflow",
    chart="airflow",
    version=AIRFLOW_CHART_VERSION,
    repo="https://airflow.apache.org",
    namespace=AIRFLOW_NS,
    timeout=1200,
)


@dataclass(frozen=True)
class AirflowArgs:
    values: dict[str, Any]
    """The chart's values (`airflow_values`)."""
    domain: str
    """Airflow's API server serves `airflow.<domain>`."""


class Airflow(pulumi.ComponentResource):
    """The Airflow Helm release and the route to its API server (`airflow.<domain>`). Type
    token `dex:k8s:Airflow`. `opts.depends_on` must hold the Envoy Gateway release (the CRDs);
    the release and the route wait for it."""

    release: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: AirflowArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        own, depends_on = take_depends_on(opts)
        super().__init__("dex:k8s:Airflow", name, None, own)
        self.release = helm_release(
            f"{name}-release",
            AIRFLOW,
            args.values,
            pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        https_route(
            f"{name}-route",
            BACKENDS["airflow"],
            args.domain,
            pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        self.register_outputs({"release": self.release.name, "namespace": AIRFLOW_NS})
