"""MLflow: the tracking server and model registry on the managed Postgres, artifacts in the
object store through the workload identity, served by proxy (clients need no bucket
credentials), behind the `dex` Gateway with basic auth (an Envoy Gateway SecurityPolicy).

Uploads: ingress-nginx needed `proxy-body-size: 512m` to lift its own 1m default. Envoy has no
default limit, and its only limit (BackendTrafficPolicy `requestBuffer`) buffers each request
whole in the proxy's memory: a 512 MiB buffer per upload is not one to set, so MLflow's
uploads pass unbuffered and unlimited at the edge, as large as the server accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.k8s.base import (
    MANAGED_BY,
    MLFLOW_NS,
    POSTGRES_CA_CONFIGMAP,
    POSTGRES_CA_DIR,
    POSTGRES_CA_FILE,
    RUNTIME_DEFAULT,
    Chart,
    ca_volume,
    helm_release,
    resources,
)
from components.k8s.gateway import (
    BACKENDS,
    ENVOY_GATEWAY_API,
    basic_auth_spec,
    custom_resource,
    https_route,
)
from components.options import take_depends_on

MLFLOW_CHART_VERSION = "1.11.5"
MLFLOW_IMAGE_TAG = "3.15.1"
"""The chart's appVersion: the server image the chart was released with."""
DB_SECRET = "mlflow-db"
AUTH_SECRET = "mlflow-basic-auth"
"""The htpasswd (`{SHA}` lines, key `.htpasswd`) the Gateway checks MLflow's users against."""
AUTH_USER = "dex"
SERVICE_URL = f"http://{BACKENDS['mlflow'].service}.{MLFLOW_NS}.svc.cluster.local"
"""How workloads in the cluster reach the tracking server (port 80)."""


def mlflow_values(
    *,
    host: str,
    db_host: pulumi.Input[str],
    db_port: pulumi.Input[int],
    db_name: str,
    db_user: str,
    artifacts_url: pulumi.Input[str],
    replicas: int,
    sslmode: str,
) -> dict[str, Any]:
    """`sslmode` is the database contract's (`verify-full`/`verify-ca`): the server is
    verified against the CA mounted from the `postgres-ca` ConfigMap."""
    ca, ca_mount = ca_volume(POSTGRES_CA_CONFIGMAP, POSTGRES_CA_DIR)
    return {
        "fullnameOverride": "mlflow",
        "replicaCount": replicas,
        "image": {"tag": MLFLOW_IMAGE_TAG},
        "serviceAccount": {"create": False, "name": "mlflow"},
        "podSecurityContext": {
            "fsGroup": 1001,
            "runAsNonRoot": True,
            "seccompProfile": RUNTIME_DEFAULT,
        },
        "backendStore": {
            "databaseMigration": True,
            "databaseConnectionCheck": True,
            "postgres": {
                "enabled": True,
                "host": db_host,
                "port": db_port,
                "database": db_name,
                "user": db_user,
                "password": "",
            },
            "existingDatabaseSecret": {
                "name": DB_SECRET,
                "usernameKey": "username",
                "passwordKey": "password",
            },
        },
        "artifactRoot": {
            "proxiedArtifactStorage": True,
            "defaultArtifactRoot": "mlflow-artifacts:/",
            "defaultArtifactsDestination": pulumi.Output.concat(artifacts_url, "/artifacts"),
        },
        # libpq honours PGSSLMODE/PGSSLROOTCERT: the server is verified, not only encrypted
        "extraEnvVars": {"PGSSLMODE": sslmode, "PGSSLROOTCERT": POSTGRES_CA_FILE},
        "extraVolumes": [ca],
        "extraVolumeMounts": [ca_mount],
        "serverAllowedHosts": [
            host,
            f"mlflow.{MLFLOW_NS}.svc.cluster.local",
            f"mlflow.{MLFLOW_NS}.svc.cluster.local:*",
            f"mlflow.{MLFLOW_NS}",
            "localhost:*",
        ],
        "resources": resources("250m", "1Gi", "2"),
        "serviceMonitor": {
            "enabled": True,
            "namespace": MLFLOW_NS,
            "labels": {},
        },
        # served through the `dex` Gateway (the HTTPRoute `mlflow` below), not an Ingress
        "ingress": {"enabled": False},
    }


MLFLOW = Chart(
    release="mlflow",
    chart="mlflow",
    version=MLFLOW_CHART_VERSION,
    repo="https://community-charts.github.io/helm-charts",
    namespace=MLFLOW_NS,
    timeout=900,
)


@dataclass(frozen=True)
class MlflowArgs:
    values: dict[str, Any]
    """The chart's values (`mlflow_values`)."""
    domain: str
    """MLflow serves `mlflow.<domain>`."""


class Mlflow(pulumi.ComponentResource):
    """The MLflow Helm release and its route (`mlflow.<domain>`, basic auth). Type token
    `dex:k8s:Mlflow`. `opts.depends_on` must hold the Envoy Gateway release (the CRDs) and the
    `AUTH_SECRET` Secret; the release and both routing objects wait for it."""

    release: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: MlflowArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        own, depends_on = take_depends_on(opts)
        super().__init__("dex:k8s:Mlflow", name, None, own)
        self.release = helm_release(
            f"{name}-release",
            MLFLOW,
            args.values,
            pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        route_opts = pulumi.ResourceOptions(parent=self, depends_on=depends_on)
        route = https_route(f"{name}-route", BACKENDS["mlflow"], args.domain, route_opts)
        custom_resource(
            f"{name}-basic-auth",
            ENVOY_GATEWAY_API,
            "SecurityPolicy",
            {"name": "mlflow-basic-auth", "namespace": MLFLOW_NS, "labels": MANAGED_BY},
            basic_auth_spec(BACKENDS["mlflow"].host, AUTH_SECRET),
            pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, route]),
        )
        self.register_outputs({"release": self.release.name, "service_url": SERVICE_URL})
