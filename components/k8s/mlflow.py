"""MLflow: the tracking server and model registry on the managed Postgres, artifacts in the
object store through the workload identity, served by proxy (clients need no bucket
credentials), behind the ingress with basic auth."""

from __future__ import annotations

from typing import Any

import pulumi

from components.k8s.base import MLFLOW_NS, RUNTIME_DEFAULT, ChartComponent, resources
from components.k8s.ingress import INGRESS_CLASS, tls_annotations

MLFLOW_CHART_VERSION = "1.11.5"
MLFLOW_IMAGE_TAG = "3.15.1"
"""The chart's appVersion: the server image the chart was released with."""
DB_SECRET = "mlflow-db"
AUTH_SECRET = "mlflow-basic-auth"
SERVICE_URL = f"http://mlflow.{MLFLOW_NS}.svc.cluster.local"
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
) -> dict[str, Any]:
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
        # libpq honours PGSSLMODE: the managed Postgres refuses plaintext connections
        "extraEnvVars": {"PGSSLMODE": "require"},
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
        "ingress": {
            "enabled": True,
            "className": INGRESS_CLASS,
            "annotations": {
                **tls_annotations(),
                "nginx.ingress.kubernetes.io/auth-type": "basic",
                "nginx.ingress.kubernetes.io/auth-secret": AUTH_SECRET,
                "nginx.ingress.kubernetes.io/auth-realm": "DEX MLflow",
                "nginx.ingress.kubernetes.io/proxy-body-size": "512m",
            },
            "hosts": [{"host": host, "paths": [{"path": "/", "pathType": "Prefix"}]}],
            "tls": [{"secretName": "mlflow-tls", "hosts": [host]}],
        },
    }


def mlflow(
    name: str,
    values: dict[str, Any],
    depends_on: list[pulumi.Resource],
    opts: pulumi.ResourceOptions | None = None,
) -> ChartComponent:
    """The MLflow Helm release. Type token `dex:k8s:Mlflow`."""
    return ChartComponent(
        "dex:k8s:Mlflow",
        name,
        release="mlflow",
        chart="mlflow",
        version=MLFLOW_CHART_VERSION,
        repo="https://community-charts.github.io/helm-charts",
        namespace=MLFLOW_NS,
        values=values,
        timeout=900,
        depends_on=depends_on,
        outputs={"service_url": SERVICE_URL},
        opts=opts,
    )
