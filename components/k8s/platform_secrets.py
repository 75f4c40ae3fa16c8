"""The platform's own Secrets and CA bundles: which generated or contract value goes into which
Secret of which namespace, written by the program before the workloads that read them
(components/k8s/secrets.py says why they are plain Secrets)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.contracts import CacheOutputs, DatabaseOutputs
from components.k8s.airflow import (
    ADMIN_SECRET,
    API_SECRET,
    FERNET_SECRET,
    JWT_SECRET,
    METADATA_SECRET,
)
from components.k8s.apps import API_SECRET as API_APP_SECRET
from components.k8s.base import (
    AIRFLOW_NS,
    APPS_NS,
    CACHE_CA_CONFIGMAP,
    MANAGED_BY,
    MLFLOW_NS,
    OBSERVABILITY_NS,
    PLATFORM_NS,
    POSTGRES_CA_CONFIGMAP,
    POSTGRES_CA_FILE,
    untyped,
)
from components.k8s.database import BOOTSTRAP_SECRET, secret_data
from components.k8s.gateway import htpasswd_line
from components.k8s.mlflow import AUTH_SECRET, AUTH_USER, DB_SECRET
from components.k8s.secrets import platform_secret

GRAFANA_ADMIN_SECRET = "grafana-admin"


@dataclass(frozen=True)
class PlatformSecrets:
    """The platform's Secrets and CA bundles, grouped by the workload that waits for them, and
    the generated passwords the stack outputs."""

    bootstrap: list[pulumi.Resource]
    """The database bootstrap Job's Secret and the Postgres CA in `platform`."""
    mlflow: list[pulumi.Resource]
    """MLflow's database credentials, its htpasswd and the Postgres CA in `mlflow`."""
    airflow: list[pulumi.Resource]
    """Airflow's metadata connection, keys and admin password, and the Postgres CA in
    `airflow`."""
    api: list[pulumi.Resource]
    """The serving API's Secret, and the cache's CA where the cache contract has one."""
    grafana: list[pulumi.Resource]
    """Grafana's admin credentials."""
    mlflow_password: pulumi.Output[str]
    airflow_password: pulumi.Output[str]
    grafana_password: pulumi.Output[str]


@dataclass(frozen=True)
class _Writer:
    """Writes the platform's objects: named after the platform, children of it, each after its
    namespace."""

    name: str
    parent: pulumi.Resource
    namespaces: Mapping[str, k8s.core.v1.Namespace]

    def secret(
        self, namespace: str, secret_name: str, data: Mapping[str, pulumi.Input[str]]
    ) -> k8s.core.v1.Secret:
        return platform_secret(
            f"{self.name}-secret-{namespace}-{secret_name}",
            namespace,
            secret_name,
            data,
            pulumi.ResourceOptions(parent=self.parent, depends_on=[self.namespaces[namespace]]),
        )

    def ca_bundle(
        self, namespace: str, config_map: str, pem: pulumi.Input[str]
    ) -> k8s.core.v1.ConfigMap:
        return k8s.core.v1.ConfigMap(
            f"{self.name}-{config_map}-{namespace}",
            metadata=untyped({"name": config_map, "namespace": namespace, "labels": MANAGED_BY}),
            data=untyped({"ca.crt": pem}),
            opts=pulumi.ResourceOptions(
                parent=self.parent, depends_on=[self.namespaces[namespace]]
            ),
        )

    def password(self, suffix: str, length: int = 32) -> random.RandomPassword:
        return random.RandomPassword(
            f"{self.name}-{suffix}",
            length=length,
            special=False,
            opts=pulumi.ResourceOptions(parent=self.parent),
        )


def postgres_url(
    user: str, password: pulumi.Input[str], host: pulumi.Input[str], port: pulumi.Input[int],
    db: str, sslmode: str,
) -> pulumi.Output[str]:  # fmt: skip
    """A SQLAlchemy URL (psycopg2) for one application's database, verifying the server
    with the CA mounted at POSTGRES_CA_FILE; a secret."""
    return pulumi.Output.secret(
        pulumi.Output.format(
            "postgresql+psycopg2://{0}:{1}@{2}:{3}/{4}?sslmode={5}&sslrootcert={6}",
            user,
            password,
            host,
            port,
            db,
            sslmode,
            POSTGRES_CA_FILE,
        )
    )


def platform_secrets(
    name: str,
    parent: pulumi.Resource,
    namespaces: Mapping[str, k8s.core.v1.Namespace],
    db: DatabaseOutputs,
    cache: CacheOutputs,
    *,
    api_auth: str,
    grafana_admin_user: str,
) -> PlatformSecrets:
    """Every Secret and CA bundle of the platform, each after its namespace. `api_auth`: the
    API's auth mode (`hs256` adds a generated JWT secret)."""
    w = _Writer(name, parent, namespaces)
    postgres_ca = {
        namespace: w.ca_bundle(namespace, POSTGRES_CA_CONFIGMAP, db.ca_certificate)
        for namespace in (PLATFORM_NS, MLFLOW_NS, AIRFLOW_NS)
    }
    cache_ca = (
        [w.ca_bundle(APPS_NS, CACHE_CA_CONFIGMAP, cache.ca_certificate)]
        if cache.ca_certificate is not None
        else []
    )
    bootstrap = w.secret(PLATFORM_NS, BOOTSTRAP_SECRET, secret_data(db))
    mlflow, mlflow_password = _mlflow_secrets(w, db)
    airflow, airflow_password = _airflow_secrets(w, db)
    api_data: dict[str, pulumi.Input[str]] = {"redis-url": cache.url}
    if api_auth == "hs256":
        api_data["jwt-secret"] = w.password("api-jwt", 48).result
    api = w.secret(APPS_NS, API_APP_SECRET, api_data)
    grafana_admin = w.password("grafana-admin")
    grafana = w.secret(
        OBSERVABILITY_NS,
        GRAFANA_ADMIN_SECRET,
        {"admin-user": grafana_admin_user, "admin-password": grafana_admin.result},
    )
    return PlatformSecrets(
        bootstrap=[bootstrap, postgres_ca[PLATFORM_NS]],
        mlflow=[*mlflow, postgres_ca[MLFLOW_NS]],
        airflow=[*airflow, postgres_ca[AIRFLOW_NS]],
        api=[api, *cache_ca],
        grafana=[grafana],
        mlflow_password=mlflow_password,
        airflow_password=airflow_password,
        grafana_password=grafana_admin.result,
    )


def _mlflow_secrets(
    w: _Writer, db: DatabaseOutputs
) -> tuple[list[pulumi.Resource], pulumi.Output[str]]:
    """MLflow's database credentials and the htpasswd of its generated basic-auth password;
    and that password."""
    mlflow_db = db.app_databases["mlflow"]
    auth = w.password("mlflow-basic-auth")
    secrets: list[pulumi.Resource] = [
        w.secret(
            MLFLOW_NS, DB_SECRET, {"username": mlflow_db.user, "password": mlflow_db.password}
        ),
        w.secret(
            MLFLOW_NS,
            AUTH_SECRET,
            # the htpasswd Envoy Gateway's basic auth reads (key `.htpasswd`, `{SHA}` lines)
            {".htpasswd": auth.result.apply(lambda p: htpasswd_line(AUTH_USER, p))},
        ),
    ]
    return secrets, auth.result


def _airflow_secrets(
    w: _Writer, db: DatabaseOutputs
) -> tuple[list[pulumi.Resource], pulumi.Output[str]]:
    """Airflow's metadata connection, Fernet key, API and JWT keys and admin password; and
    that password."""
    airflow_db = db.app_databases["airflow"]
    fernet = random.RandomId(
        f"{w.name}-airflow-fernet", byte_length=32, opts=pulumi.ResourceOptions(parent=w.parent)
    )
    admin = w.password("airflow-admin")
    data: dict[str, Mapping[str, pulumi.Input[str]]] = {
        METADATA_SECRET: {
            "connection": postgres_url(
                airflow_db.user,
                airflow_db.password,
                db.host,
                db.port,
                airflow_db.name,
                db.sslmode,
            )
        },
        # a Fernet key is 32 random bytes, URL-safe base64
        FERNET_SECRET: {
            "fernet-key": fernet.b64_std.apply(lambda b: b.replace("+", "-").replace("/", "_"))
        },
        API_SECRET: {"api-secret-key": w.password("airflow-api-key", 48).result},
        JWT_SECRET: {"jwt-secret": w.password("airflow-jwt", 48).result},
        ADMIN_SECRET: {"password": admin.result},
    }
    secrets: list[pulumi.Resource] = [w.secret(AIRFLOW_NS, n, values) for n, values in data.items()]
    return secrets, admin.result
