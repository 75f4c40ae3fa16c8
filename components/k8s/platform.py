"""Everything on the cluster, wired only through the capability contracts: the same code on
EKS and GKE.

Order of what `pulumi up` creates (each step depends on the ones it needs):
namespaces and network policies -> service accounts -> sealed-secrets controller (with the
stack's own key) -> SealedSecrets -> ingress-nginx, cert-manager, the issuer -> observability
(operator CRDs first) -> database bootstrap Job -> MLflow and Airflow -> the apps' images ->
the serving API and the training CronJob.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.contracts import (
    WORKLOAD_SPECS,
    CacheOutputs,
    DatabaseOutputs,
    ObjectStoreOutputs,
    RegistryOutputs,
    WorkloadIdentityOutputs,
)
from components.k8s.airflow import (
    ADMIN_SECRET,
    API_SECRET,
    FERNET_SECRET,
    JWT_SECRET,
    METADATA_SECRET,
    airflow,
    airflow_values,
)
from components.k8s.apps import API_SECRET as API_APP_SECRET
from components.k8s.apps import ServingApi, Training
from components.k8s.base import (
    AIRFLOW_NS,
    APPS_NS,
    MLFLOW_NS,
    OBSERVABILITY_NS,
    PLATFORM_NS,
    labels,
    secret_ref,
    untyped,
)
from components.k8s.database import BOOTSTRAP_SECRET, DatabaseBootstrap, secret_data
from components.k8s.images import AppImages
from components.k8s.ingress import IngressTls
from components.k8s.mlflow import AUTH_SECRET, DB_SECRET, SERVICE_URL, mlflow, mlflow_values
from components.k8s.namespaces import Namespaces
from components.k8s.observability import OTLP_HTTP_URL, PUSHGATEWAY_URL, Observability
from components.k8s.secrets import SealedSecrets

OPEN_METEO_ARCHIVE = "https://archive-api.open-meteo.com/v1/archive"
GRAFANA_ADMIN_SECRET = "grafana-admin"
KUBE_API_CLIENTS = frozenset({"airflow"})
"""Workloads whose pods get a Kubernetes API token."""


@dataclass(frozen=True)
class PlatformSettings:
    """What the platform needs from the stack's config (a subset of `dex:platform`)."""

    environment: str
    domain: str
    tls_issuer: str
    acme_email: str | None
    acme_server: str
    api_min_replicas: int
    api_max_replicas: int
    api_auth: str
    api_jwks_url: str | None
    api_jwt_issuer: str | None
    api_jwt_audience: str
    training_schedule: str
    grafana_admin_user: str
    protect: bool

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    def host(self, service: str) -> str:
        return f"{service}.{self.domain}"


@dataclass(frozen=True)
class PlatformArgs:
    settings: PlatformSettings
    store: ObjectStoreOutputs
    database: DatabaseOutputs
    cache: CacheOutputs
    registry: RegistryOutputs
    identity: WorkloadIdentityOutputs


def _password(name: str, parent: pulumi.Resource, length: int = 32) -> random.RandomPassword:
    return random.RandomPassword(
        name, length=length, special=False, opts=pulumi.ResourceOptions(parent=parent)
    )


def postgres_url(
    user: str, password: pulumi.Input[str], host: pulumi.Input[str], port: pulumi.Input[int],
    db: str, sslmode: str,
) -> pulumi.Output[str]:  # fmt: skip
    """A SQLAlchemy URL (psycopg2) for one application's database; a secret."""
    return pulumi.Output.secret(
        pulumi.Output.format(
            "postgresql+psycopg2://{0}:{1}@{2}:{3}/{4}?sslmode={5}",
            user,
            password,
            host,
            port,
            db,
            sslmode,
        )
    )


def api_env(s: PlatformSettings, store: ObjectStoreOutputs) -> dict[str, Any]:
    """The serving API's environment: storage, registry, cache and auth, all from the
    contracts; secrets by reference."""
    env: dict[str, Any] = {
        "DEX_API_ENVIRONMENT": s.environment,
        "DEX_API_TRACKING_URI": SERVICE_URL,
        "DEX_API_MODEL_CACHE_DIR": "/var/cache/dex/model",
        "DEX_API_LAKE_URL": store.bucket_urls["gold"],
        "DEX_LAKE_GOLD_URL": store.bucket_urls["gold"],
        "DEX_LAKE_RAW_URL": store.bucket_urls["raw"],
        "DEX_API_REDIS_URL": secret_ref(API_APP_SECRET, "redis-url"),
        "DEX_API_AUTH_MODE": s.api_auth,
        "DEX_API_JWT_AUDIENCE": s.api_jwt_audience,
        "DEX_API_OTLP_ENDPOINT": f"{OTLP_HTTP_URL}/v1/traces",
        "DEX_API_CORS_ORIGINS": f'["https://{s.host("api")}"]',
    }
    if s.api_auth == "hs256":
        env["DEX_API_JWT_SECRET"] = secret_ref(API_APP_SECRET, "jwt-secret")
    else:
        env["DEX_API_JWKS_URL"] = s.api_jwks_url
        env["DEX_API_JWT_ISSUER"] = s.api_jwt_issuer
    return env


def training_env(store: ObjectStoreOutputs, commit: str) -> dict[str, Any]:
    return {
        "DEX_LAKE_URL": store.bucket_urls["gold"],
        "DEX_LAKE_GOLD_URL": store.bucket_urls["gold"],
        "MLFLOW_TRACKING_URI": SERVICE_URL,
        "DEX_PUSHGATEWAY_URL": PUSHGATEWAY_URL,
        "DEX_GIT_COMMIT": commit,
    }


def pipeline_env(store: ObjectStoreOutputs) -> dict[str, Any]:
    """What the Airflow task pods running the pipeline see: each layer in its own bucket,
    run state and quarantine under the silver bucket's `_pipeline/`."""
    env: dict[str, Any] = {
        "DEX_LAKE_URL": pulumi.Output.concat(store.bucket_urls["silver"], "/_pipeline"),
        "DEX_SOURCE_URL": OPEN_METEO_ARCHIVE,
        "DEX_PUSHGATEWAY_URL": PUSHGATEWAY_URL,
    }
    for layer in ("raw", "bronze", "silver", "gold"):
        env[f"DEX_LAKE_{layer.upper()}_URL"] = store.bucket_urls[layer]
    return env


class KubernetesPlatform(pulumi.ComponentResource):
    """Platform services and the bundled apps. Type token `dex:k8s:Platform`."""

    def __init__(
        self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:k8s:Platform", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)

        namespaces = Namespaces(f"{name}-namespaces", opts=child)
        ns = namespaces.namespaces
        accounts = []
        for spec in WORKLOAD_SPECS:
            accounts.append(
                k8s.core.v1.ServiceAccount(
                    f"{name}-sa-{spec.name}",
                    metadata=untyped(
                        {
                            "name": spec.service_account,
                            "namespace": spec.namespace,
                            "labels": labels(spec.name, "identity"),
                            "annotations": args.identity.service_account_annotations[spec.name],
                        }
                    ),
                    # only Airflow calls the Kubernetes API (the KubernetesExecutor launches
                    # task pods, the API server reads their logs); cloud identity needs no
                    # API token (IRSA projects its own, GKE asks the metadata server)
                    automount_service_account_token=spec.name in KUBE_API_CLIENTS,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[ns[spec.namespace]]),
                )
            )

        # -- secrets ------------------------------------------------------------------------
        sealed = SealedSecrets(
            f"{name}-sealed-secrets",
            protect_key=s.protect,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns[PLATFORM_NS]]),
        )
        self.sealing_certificate = sealed.certificate
        db = args.database
        sealed.secret(PLATFORM_NS, BOOTSTRAP_SECRET, secret_data(db))
        mlflow_db = db.app_databases["mlflow"]
        airflow_db = db.app_databases["airflow"]
        mlflow_auth = _password(f"{name}-mlflow-basic-auth", self)
        self.mlflow_password = mlflow_auth.result
        secrets = [
            sealed.secret(
                MLFLOW_NS,
                DB_SECRET,
                {"username": mlflow_db.user, "password": mlflow_db.password},
                depends_on=[ns[MLFLOW_NS]],
            ),
            sealed.secret(
                MLFLOW_NS,
                AUTH_SECRET,
                {"auth": pulumi.Output.concat("dex:", mlflow_auth.bcrypt_hash)},
                depends_on=[ns[MLFLOW_NS]],
            ),
        ]
        fernet = random.RandomId(
            f"{name}-airflow-fernet", byte_length=32, opts=pulumi.ResourceOptions(parent=self)
        )
        airflow_admin = _password(f"{name}-airflow-admin", self)
        self.airflow_password = airflow_admin.result
        airflow_secrets: dict[str, Mapping[str, pulumi.Input[str]]] = {
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
            API_SECRET: {"api-secret-key": _password(f"{name}-airflow-api-key", self, 48).result},
            JWT_SECRET: {"jwt-secret": _password(f"{name}-airflow-jwt", self, 48).result},
            ADMIN_SECRET: {"password": airflow_admin.result},
        }
        for secret_name, data in airflow_secrets.items():
            secrets.append(sealed.secret(AIRFLOW_NS, secret_name, data, [ns[AIRFLOW_NS]]))
        api_data: dict[str, pulumi.Input[str]] = {"redis-url": args.cache.url}
        if s.api_auth == "hs256":
            api_data["jwt-secret"] = _password(f"{name}-api-jwt", self, 48).result
        secrets.append(sealed.secret(APPS_NS, API_APP_SECRET, api_data, [ns[APPS_NS]]))
        grafana_admin = _password(f"{name}-grafana-admin", self)
        self.grafana_password = grafana_admin.result
        secrets.append(
            sealed.secret(
                OBSERVABILITY_NS,
                GRAFANA_ADMIN_SECRET,
                {"admin-user": s.grafana_admin_user, "admin-password": grafana_admin.result},
                [ns[OBSERVABILITY_NS]],
            )
        )

        # -- ingress, TLS, observability ----------------------------------------------------
        edge = IngressTls(
            f"{name}-ingress",
            tls_issuer=s.tls_issuer,
            acme_email=s.acme_email,
            acme_server=s.acme_server,
            replicas=2 if s.is_prod else 1,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns[PLATFORM_NS]]),
        )
        observability = Observability(
            f"{name}-observability",
            grafana_host=s.host("grafana"),
            admin_secret=GRAFANA_ADMIN_SECRET,
            is_prod=s.is_prod,
            depends_on=[ns[OBSERVABILITY_NS], *edge.ready, *secrets],
            opts=child,
        )
        monitoring_ready = [observability.crds]

        # -- MLflow and Airflow on the managed Postgres -------------------------------------
        bootstrap = DatabaseBootstrap(
            f"{name}-database", db, depends_on=[sealed.controller, ns[PLATFORM_NS]], opts=child
        )
        base_deps = [bootstrap.job, *accounts, *secrets, *edge.ready, *monitoring_ready]
        mlflow(
            f"{name}-mlflow",
            mlflow_values(
                host=s.host("mlflow"),
                db_host=db.host,
                db_port=db.port,
                db_name=mlflow_db.name,
                db_user=mlflow_db.user,
                artifacts_url=args.store.bucket_urls["mlflow"],
                replicas=2 if s.is_prod else 1,
            ),
            depends_on=base_deps,
            opts=child,
        )
        images = AppImages(f"{name}-images", args.registry, opts=child)
        pipelines = images.images["pipelines"]
        airflow(
            f"{name}-airflow",
            airflow_values(
                host=s.host("airflow"),
                image_repository=pipelines.repository,
                image_tag=pipelines.tag,
                image_digest=pipelines.digest,
                logs_url=args.store.bucket_urls["airflow-logs"],
                task_env=pipeline_env(args.store),
                replicas=2 if s.is_prod else 1,
            ),
            depends_on=base_deps,
            opts=child,
        )

        # -- the apps --------------------------------------------------------------------
        ServingApi(
            f"{name}-api",
            image=images.images["api"].ref,
            env=api_env(s, args.store),
            host=s.host("api"),
            min_replicas=s.api_min_replicas,
            max_replicas=s.api_max_replicas,
            depends_on=[*accounts, *secrets, *edge.ready, *monitoring_ready],
            opts=child,
        )
        Training(
            f"{name}-training",
            image=images.images["training"].ref,
            env=training_env(args.store, images.images["training"].tag),
            schedule=s.training_schedule,
            depends_on=[*accounts],
            opts=child,
        )

        self.urls = {
            service: f"https://{s.host(service)}"
            for service in ("api", "mlflow", "airflow", "grafana")
        }
        self.image_refs = {app: img.ref for app, img in images.images.items()}
        self.register_outputs({"urls": self.urls, "images": self.image_refs})
