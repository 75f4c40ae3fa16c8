"""Everything on the cluster, wired only through the capability contracts: the same code on
EKS and GKE.

Order of what `pulumi up` creates (each step depends on the ones it needs; `dex plan STACK
--waves` prints the whole first deploy): the prometheus-operator CRDs, namespaces and network
policies, the default StorageClass where the cloud ships none -> service accounts (after the
cloud identity bindings), the platform's Secrets and CA bundles -> the sealed-secrets
controller, Envoy Gateway (its chart installs the Gateway API CRDs) -> cert-manager (its chart
renders ServiceMonitors: after the operator CRDs; it watches Gateway API kinds: after Envoy
Gateway) -> the issuer, the Gateway and its certificates, observability -> the database
bootstrap Job -> MLflow and Airflow -> the apps' images -> the serving API (after MLflow: its
readiness asks the registry), the training CronJob and the model-ops CronJob.
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
    StorageClassSpec,
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
from components.k8s.apps import ModelOps, ServingApi, Training
from components.k8s.base import (
    AIRFLOW_NS,
    APPS_NS,
    CACHE_CA_CONFIGMAP,
    CACHE_CA_FILE,
    MANAGED_BY,
    MLFLOW_NS,
    OBSERVABILITY_NS,
    PLATFORM_NS,
    POSTGRES_CA_CONFIGMAP,
    POSTGRES_CA_FILE,
    labels,
    secret_ref,
    untyped,
)
from components.k8s.database import BOOTSTRAP_SECRET, DatabaseBootstrap, secret_data
from components.k8s.gateway import EdgeGateway, htpasswd_line
from components.k8s.images import AppImages
from components.k8s.mlflow import (
    AUTH_SECRET,
    AUTH_USER,
    DB_SECRET,
    SERVICE_URL,
    mlflow,
    mlflow_values,
)
from components.k8s.namespaces import Namespaces, ServicePorts
from components.k8s.observability import (
    OTLP_HTTP_URL,
    PUSHGATEWAY_URL,
    Observability,
    operator_crds,
)
from components.k8s.secrets import SealedSecrets, platform_secret
from contracts.lake import LAKE_URL_ENV, LAYERS, layer_url_env

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
    api_rollout: str
    """`off`, `shadow` or `canary`: how the API runs the registry's challenger."""
    api_canary_share: float
    """Share of callers the challenger answers (canary)."""
    api_shadow_share: float
    """Share of requests the challenger also scores (shadow)."""
    training_schedule: str
    model_ops_schedule: str
    """Cron schedule (UTC) of the model-ops CronJob."""
    model_mae_alert_celsius: float
    """The champion's online MAE above which its alert fires."""
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
    build_context: str
    """The repository root as the engine's plugin folder sees it (`..` with `main: stacks/`)."""
    image_source: str = "build"
    """`build`: `pulumi up` builds and pushes the apps' images (Docker on the deploying
    machine); `registry`: they were pushed before (`dex images push`) and are looked up by
    their source tag (CI's in-network runners have no Docker daemon)."""
    storage_class: StorageClassSpec | None = None
    """The default StorageClass to create (the cluster contract's); None: the cloud ships one."""


def _password(name: str, parent: pulumi.Resource, length: int = 32) -> random.RandomPassword:
    return random.RandomPassword(
        name, length=length, special=False, opts=pulumi.ResourceOptions(parent=parent)
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


def api_env(
    s: PlatformSettings, store: ObjectStoreOutputs, cache_ca: bool = False
) -> dict[str, Any]:
    """The serving API's environment: storage, registry, cache and auth, all from the
    contracts; secrets by reference. `cache_ca`: the cache's CA is mounted (CACHE_CA_FILE)."""
    env: dict[str, Any] = {
        "DEX_API_ENVIRONMENT": s.environment,
        "DEX_API_TRACKING_URI": SERVICE_URL,
        "DEX_API_MODEL_CACHE_DIR": "/var/cache/dex/model",
        "DEX_API_LAKE_URL": store.bucket_urls["gold"],
        layer_url_env("gold"): store.bucket_urls["gold"],
        layer_url_env("raw"): store.bucket_urls["raw"],
        "DEX_API_REDIS_URL": secret_ref(API_APP_SECRET, "redis-url"),
        "DEX_API_AUTH_MODE": s.api_auth,
        "DEX_API_JWT_AUDIENCE": s.api_jwt_audience,
        "DEX_API_OTLP_ENDPOINT": f"{OTLP_HTTP_URL}/v1/traces",
        "DEX_API_CORS_ORIGINS": f'["https://{s.host("api")}"]',
        # champion and challenger: always explicit, so the Deployment says what it runs
        "DEX_API_ROLLOUT": s.api_rollout,
        "DEX_API_CANARY_SHARE": str(s.api_canary_share),
        "DEX_API_SHADOW_SHARE": str(s.api_shadow_share),
    }
    if cache_ca:
        env["DEX_API_REDIS_CA_FILE"] = CACHE_CA_FILE
    if s.api_auth == "hs256":
        env["DEX_API_JWT_SECRET"] = secret_ref(API_APP_SECRET, "jwt-secret")
        # tokens minted with the stack's shared secret name the API as their issuer
        env["DEX_API_JWT_ISSUER"] = f"https://{s.host('api')}"
    else:
        env["DEX_API_JWKS_URL"] = s.api_jwks_url
        env["DEX_API_JWT_ISSUER"] = s.api_jwt_issuer
    return env


def training_env(store: ObjectStoreOutputs, commit: str) -> dict[str, Any]:
    return {
        LAKE_URL_ENV: store.bucket_urls["gold"],
        layer_url_env("gold"): store.bucket_urls["gold"],
        "MLFLOW_TRACKING_URI": SERVICE_URL,
        "DEX_PUSHGATEWAY_URL": PUSHGATEWAY_URL,
        "DEX_GIT_COMMIT": commit,
    }


def model_ops_env(store: ObjectStoreOutputs, commit: str) -> dict[str, Any]:
    """The training job's environment, and the raw layer's bucket: the feedback step reads
    the API's prediction log (`raw/predictions/`) where the API writes it."""
    return {**training_env(store, commit), layer_url_env("raw"): store.bucket_urls["raw"]}


def pipeline_env(store: ObjectStoreOutputs) -> dict[str, Any]:
    """What the Airflow task pods running the pipeline see: each layer in its own bucket,
    run state and quarantine under the silver bucket's `_pipeline/`."""
    env: dict[str, Any] = {
        LAKE_URL_ENV: pulumi.Output.concat(store.bucket_urls["silver"], "/_pipeline"),
        "DEX_SOURCE_URL": OPEN_METEO_ARCHIVE,
        "DEX_PUSHGATEWAY_URL": PUSHGATEWAY_URL,
    }
    for layer in LAYERS:
        env[layer_url_env(layer)] = store.bucket_urls[layer]
    return env


class KubernetesPlatform(pulumi.ComponentResource):
    """Platform services and the bundled apps. Type token `dex:k8s:Platform`."""

    def __init__(
        self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:k8s:Platform", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        db = args.database

        # -- day-0 foundations: CRDs, namespaces and their policies, storage ------------------
        # The operator's CRDs come first: the sealed-secrets and cert-manager charts render
        # ServiceMonitors, which Helm cannot create before the CRD exists.
        crds = operator_crds(f"{name}-operator-crds", child)
        namespaces = Namespaces(
            f"{name}-namespaces",
            ServicePorts(database=db.port, cache=args.cache.port),
            opts=child,
        )
        ns = namespaces.namespaces
        # workloads wait for the whole component: default deny and every allow rule
        ns_ready: list[pulumi.Resource] = [namespaces]
        storage: list[pulumi.Resource] = []
        if args.storage_class is not None:
            storage.append(
                _default_storage_class(f"{name}-storage-class", args.storage_class, self)
            )

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
                    # API token (Pod Identity and GKE ask a node-local agent)
                    automount_service_account_token=spec.name in KUBE_API_CLIENTS,
                    # a pod that starts before its identity binding exists fails its first
                    # cloud call: the accounts (and so every workload) wait for the bindings
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        depends_on=[ns[spec.namespace], *args.identity.bindings],
                    ),
                )
            )

        # -- secrets and CA bundles ------------------------------------------------------------
        def secret(
            namespace: str, secret_name: str, data: Mapping[str, pulumi.Input[str]]
        ) -> k8s.core.v1.Secret:
            return platform_secret(
                f"{name}-secret-{namespace}-{secret_name}",
                namespace,
                secret_name,
                data,
                pulumi.ResourceOptions(parent=self, depends_on=[ns[namespace]]),
            )

        def ca_bundle(
            namespace: str, config_map: str, pem: pulumi.Input[str]
        ) -> k8s.core.v1.ConfigMap:
            return k8s.core.v1.ConfigMap(
                f"{name}-{config_map}-{namespace}",
                metadata=untyped(
                    {"name": config_map, "namespace": namespace, "labels": MANAGED_BY}
                ),
                data=untyped({"ca.crt": pem}),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[ns[namespace]]),
            )

        postgres_ca = {
            namespace: ca_bundle(namespace, POSTGRES_CA_CONFIGMAP, db.ca_certificate)
            for namespace in (PLATFORM_NS, MLFLOW_NS, AIRFLOW_NS)
        }
        cache_ca = args.cache.ca_certificate
        api_ca = [ca_bundle(APPS_NS, CACHE_CA_CONFIGMAP, cache_ca)] if cache_ca is not None else []

        bootstrap_secret = secret(PLATFORM_NS, BOOTSTRAP_SECRET, secret_data(db))
        mlflow_db = db.app_databases["mlflow"]
        airflow_db = db.app_databases["airflow"]
        mlflow_auth = _password(f"{name}-mlflow-basic-auth", self)
        self.mlflow_password = mlflow_auth.result
        mlflow_secrets = [
            secret(
                MLFLOW_NS, DB_SECRET, {"username": mlflow_db.user, "password": mlflow_db.password}
            ),
            secret(
                MLFLOW_NS,
                AUTH_SECRET,
                # the htpasswd Envoy Gateway's basic auth reads (key `.htpasswd`, `{SHA}` lines)
                {".htpasswd": mlflow_auth.result.apply(lambda p: htpasswd_line(AUTH_USER, p))},
            ),
        ]
        fernet = random.RandomId(
            f"{name}-airflow-fernet", byte_length=32, opts=pulumi.ResourceOptions(parent=self)
        )
        airflow_admin = _password(f"{name}-airflow-admin", self)
        self.airflow_password = airflow_admin.result
        airflow_data: dict[str, Mapping[str, pulumi.Input[str]]] = {
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
        airflow_secrets = [secret(AIRFLOW_NS, n, data) for n, data in airflow_data.items()]
        api_data: dict[str, pulumi.Input[str]] = {"redis-url": args.cache.url}
        if s.api_auth == "hs256":
            api_data["jwt-secret"] = _password(f"{name}-api-jwt", self, 48).result
        api_secret = secret(APPS_NS, API_APP_SECRET, api_data)
        grafana_admin = _password(f"{name}-grafana-admin", self)
        self.grafana_password = grafana_admin.result
        grafana_secret = secret(
            OBSERVABILITY_NS,
            GRAFANA_ADMIN_SECRET,
            {"admin-user": s.grafana_admin_user, "admin-password": grafana_admin.result},
        )

        # -- controllers whose charts render ServiceMonitors: after the CRDs -----------------
        sealed = SealedSecrets(
            f"{name}-sealed-secrets",
            protect_key=s.protect,
            depends_on=[*ns_ready, crds],
            opts=child,
        )
        self.sealing_certificate = sealed.certificate
        edge = EdgeGateway(
            f"{name}-gateway",
            domain=s.domain,
            tls_issuer=s.tls_issuer,
            acme_email=s.acme_email,
            acme_server=s.acme_server,
            replicas=2 if s.is_prod else 1,
            depends_on=[*ns_ready, crds],
            # it was `dex:k8s:IngressTls` `{name}-ingress`: cert-manager and the issuers keep
            # their state (children follow their parent's alias)
            opts=pulumi.ResourceOptions(
                parent=self,
                aliases=[pulumi.Alias(name=f"{name}-ingress", type_="dex:k8s:IngressTls")],
            ),
        )
        Observability(
            f"{name}-observability",
            domain=s.domain,
            admin_secret=GRAFANA_ADMIN_SECRET,
            is_prod=s.is_prod,
            crds=crds,
            depends_on=[*ns_ready, *storage, *edge.ready, grafana_secret],
            opts=child,
            model_mae_alert_celsius=s.model_mae_alert_celsius,
        )

        # -- MLflow and Airflow on the managed Postgres -------------------------------------
        bootstrap = DatabaseBootstrap(
            f"{name}-database",
            db,
            depends_on=[*ns_ready, bootstrap_secret, postgres_ca[PLATFORM_NS]],
            opts=child,
        )
        base_deps = [bootstrap.job, *accounts, *edge.ready, crds]
        mlflow_release = mlflow(
            f"{name}-mlflow",
            mlflow_values(
                host=s.host("mlflow"),
                db_host=db.host,
                db_port=db.port,
                db_name=mlflow_db.name,
                db_user=mlflow_db.user,
                artifacts_url=args.store.bucket_urls["mlflow"],
                replicas=2 if s.is_prod else 1,
                sslmode=db.sslmode,
            ),
            domain=s.domain,
            depends_on=[*base_deps, *mlflow_secrets, postgres_ca[MLFLOW_NS]],
            opts=child,
        )
        images = AppImages(
            f"{name}-images",
            args.registry,
            args.build_context,
            source=args.image_source,
            opts=child,
        )
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
            domain=s.domain,
            depends_on=[*base_deps, *storage, *airflow_secrets, postgres_ca[AIRFLOW_NS]],
            opts=child,
        )

        # -- the apps --------------------------------------------------------------------
        ServingApi(
            f"{name}-api",
            image=images.images["api"].ref,
            env=api_env(s, args.store, cache_ca=cache_ca is not None),
            domain=s.domain,
            min_replicas=s.api_min_replicas,
            max_replicas=s.api_max_replicas,
            # readiness asks the registry: MLflow first (day 0 it answers "no model yet")
            depends_on=[
                *ns_ready,
                *accounts,
                api_secret,
                *api_ca,
                *edge.ready,
                crds,
                mlflow_release,
            ],
            opts=child,
            cache_ca=cache_ca is not None,
        )
        training_image = images.images["training"]
        Training(
            f"{name}-training",
            image=training_image.ref,
            env=training_env(args.store, training_image.tag),
            schedule=s.training_schedule,
            depends_on=[*ns_ready, *accounts],
            opts=child,
        )
        # the feedback loop: promote/retire the challenger, score the next day, retrain on
        # drift; in the training image, as the training identity
        ModelOps(
            f"{name}-model-ops",
            image=training_image.ref,
            env=model_ops_env(args.store, training_image.tag),
            schedule=s.model_ops_schedule,
            depends_on=[*ns_ready, *accounts],
            opts=child,
        )
        self.urls = {
            service: f"https://{s.host(service)}"
            for service in ("api", "mlflow", "airflow", "grafana")
        }
        self.image_refs = {app: img.ref for app, img in images.images.items()}
        self.register_outputs({"urls": self.urls, "images": self.image_refs})


def _default_storage_class(
    name: str, spec: StorageClassSpec, parent: pulumi.Resource
) -> k8s.storage.v1.StorageClass:
    """The cluster's default StorageClass: volume claims that name none (Loki, Tempo, the
    Airflow triggerer, Prometheus) bind to it. WaitForFirstConsumer places each volume in the
    zone of the pod that claims it."""
    return k8s.storage.v1.StorageClass(
        name,
        metadata=untyped(
            {
                "name": spec.name,
                "labels": MANAGED_BY,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            }
        ),
        provisioner=spec.provisioner,
        parameters=untyped(dict(spec.parameters)),
        reclaim_policy="Delete",
        volume_binding_mode="WaitForFirstConsumer",
        allow_volume_expansion=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )
