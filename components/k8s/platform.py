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

from components.contracts import (
    WORKLOAD_SPECS,
    CacheOutputs,
    DatabaseOutputs,
    ObjectStoreOutputs,
    RegistryOutputs,
    StorageClassSpec,
    WorkloadIdentityOutputs,
)
from components.k8s.airflow import Airflow, AirflowArgs, airflow_values
from components.k8s.apps import API_SECRET as API_APP_SECRET
from components.k8s.apps import (
    BatchJobArgs,
    ModelOps,
    ServingApi,
    ServingApiArgs,
    Training,
)
from components.k8s.base import (
    CACHE_CA_FILE,
    MANAGED_BY,
    labels,
    secret_ref,
    untyped,
)
from components.k8s.database import DatabaseBootstrap, DatabaseBootstrapArgs
from components.k8s.gateway import EdgeGateway, EdgeGatewayArgs
from components.k8s.images import AppImage, AppImages, AppImagesArgs
from components.k8s.mlflow import SERVICE_URL, Mlflow, MlflowArgs, mlflow_values
from components.k8s.namespaces import Namespaces, NamespacesArgs, ServicePorts
from components.k8s.observability import (
    OTLP_HTTP_URL,
    PUSHGATEWAY_URL,
    Observability,
    ObservabilityArgs,
    operator_crds,
)
from components.k8s.platform_secrets import GRAFANA_ADMIN_SECRET, platform_secrets
from components.k8s.secrets import SealedSecrets, SealedSecretsArgs
from contracts.lake import LAKE_URL_ENV, LAYERS, layer_url_env

OPEN_METEO_ARCHIVE = "https://archive-api.open-meteo.com/v1/archive"
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
    service_replicas: int
    """Replicas of the platform's own services (gateway, MLflow, Airflow's API server,
    Prometheus, Alertmanager, Grafana)."""
    metrics_retention_days: int
    """Days of metrics Prometheus keeps."""
    protect: bool

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
    api_server_cidrs: tuple[str, ...] = ()
    """Where the API server calls webhooks from (the cluster contract's): the webhooks'
    NetworkPolicies admit only those, and GKE's konnectivity agents."""


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


@dataclass(frozen=True)
class Foundations:
    """Day 0, what the later steps wait for."""

    crds: pulumi.Resource
    """The prometheus-operator CRDs: the sealed-secrets and cert-manager charts render
    ServiceMonitors, which Helm cannot create before the CRD exists."""
    namespaces: Mapping[str, k8s.core.v1.Namespace]
    ready: list[pulumi.Resource]
    """What workloads wait for: the whole Namespaces component (default deny and every allow
    rule)."""
    storage: list[pulumi.Resource]
    """The default StorageClass, where the platform makes it."""


class KubernetesPlatform(pulumi.ComponentResource):
    """Platform services and the bundled apps. Type token `dex:k8s:Platform`. Each step below
    takes what it needs and returns what later steps wait for (the module's docstring gives
    the order)."""

    def __init__(
        self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:k8s:Platform", name, None, opts)
        s = args.settings
        # -- day-0 foundations: CRDs, namespaces and their policies, storage, identities -----
        base = _foundations(name, self, args)
        accounts = _service_accounts(name, self, args.identity, base.namespaces)
        # -- secrets and CA bundles ------------------------------------------------------------
        secrets = platform_secrets(
            name,
            self,
            base.namespaces,
            args.database,
            args.cache,
            api_auth=s.api_auth,
            grafana_admin_user=s.grafana_admin_user,
        )
        # -- controllers whose charts render ServiceMonitors: after the CRDs; observability ---
        sealed = _sealed_secrets(name, self, s, base)
        edge = _edge_gateway(name, self, s, base)
        _observability(
            name, self, s, base.crds, [*base.ready, *base.storage, *edge.ready, *secrets.grafana]
        )
        # -- MLflow and Airflow on the managed Postgres -------------------------------------
        bootstrap = DatabaseBootstrap(
            f"{name}-database",
            DatabaseBootstrapArgs(args.database),
            pulumi.ResourceOptions(parent=self, depends_on=[*base.ready, *secrets.bootstrap]),
        )
        # what the platform services wait for: the databases, their identities, the edge
        services_ready = [bootstrap.job, *accounts, *edge.ready, base.crds]
        mlflow = _mlflow(name, self, args, [*services_ready, *secrets.mlflow])
        images = AppImages(
            f"{name}-images",
            AppImagesArgs(args.registry, args.build_context, source=args.image_source),
            pulumi.ResourceOptions(parent=self),
        )
        airflow_waits = [*services_ready, *base.storage, *secrets.airflow]
        _airflow(name, self, args, images.images["pipelines"], airflow_waits)
        # -- the apps --------------------------------------------------------------------
        # readiness asks the registry: MLflow first (day 0 it answers "no model yet")
        api_waits = [*base.ready, *accounts, *secrets.api, *edge.ready, base.crds, mlflow]
        _serving_api(name, self, args, images.images["api"], api_waits)
        _batch_jobs(name, self, args, images.images["training"], [*base.ready, *accounts])
        self.sealing_certificate = sealed.certificate
        self.mlflow_password = secrets.mlflow_password
        self.airflow_password = secrets.airflow_password
        self.grafana_password = secrets.grafana_password
        self.urls = {
            service: f"https://{s.host(service)}"
            for service in ("api", "mlflow", "airflow", "grafana")
        }
        self.image_refs = {app: img.ref for app, img in images.images.items()}
        self.register_outputs({"urls": self.urls, "images": self.image_refs})


def _foundations(name: str, parent: pulumi.Resource, args: PlatformArgs) -> Foundations:
    """The operator's CRDs first, then the namespaces with their policies, and the default
    StorageClass where the cloud ships none."""
    child = pulumi.ResourceOptions(parent=parent)
    crds = operator_crds(f"{name}-operator-crds", child)
    namespaces = Namespaces(
        f"{name}-namespaces",
        NamespacesArgs(
            ServicePorts(database=args.database.port, cache=args.cache.port),
            api_server_cidrs=args.api_server_cidrs,
        ),
        child,
    )
    storage: list[pulumi.Resource] = []
    if args.storage_class is not None:
        storage.append(_default_storage_class(f"{name}-storage-class", args.storage_class, parent))
    return Foundations(crds, namespaces.namespaces, [namespaces], storage)


def _service_accounts(
    name: str,
    parent: pulumi.Resource,
    identity: WorkloadIdentityOutputs,
    namespaces: Mapping[str, k8s.core.v1.Namespace],
) -> list[pulumi.Resource]:
    """A ServiceAccount per workload, annotated with its cloud identity."""
    accounts: list[pulumi.Resource] = []
    for spec in WORKLOAD_SPECS:
        accounts.append(
            k8s.core.v1.ServiceAccount(
                f"{name}-sa-{spec.name}",
                metadata=untyped(
                    {
                        "name": spec.service_account,
                        "namespace": spec.namespace,
                        "labels": labels(spec.name, "identity"),
                        "annotations": identity.service_account_annotations[spec.name],
                    }
                ),
                # only Airflow calls the Kubernetes API (the KubernetesExecutor launches
                # task pods, the API server reads their logs); cloud identity needs no
                # API token (Pod Identity and GKE ask a node-local agent)
                automount_service_account_token=spec.name in KUBE_API_CLIENTS,
                # a pod that starts before its identity binding exists fails its first
                # cloud call: the accounts (and so every workload) wait for the bindings
                opts=pulumi.ResourceOptions(
                    parent=parent,
                    depends_on=[namespaces[spec.namespace], *identity.bindings],
                ),
            )
        )
    return accounts


def _sealed_secrets(
    name: str, parent: pulumi.Resource, s: PlatformSettings, base: Foundations
) -> SealedSecrets:
    """Its chart renders ServiceMonitors: after the CRDs."""
    return SealedSecrets(
        f"{name}-sealed-secrets",
        SealedSecretsArgs(protect_key=s.protect),
        pulumi.ResourceOptions(parent=parent, depends_on=[*base.ready, base.crds]),
    )


def _edge_gateway(
    name: str, parent: pulumi.Resource, s: PlatformSettings, base: Foundations
) -> EdgeGateway:
    """Envoy Gateway and cert-manager (whose chart renders ServiceMonitors: after the CRDs),
    the issuer, the Gateway and its certificates."""
    return EdgeGateway(
        f"{name}-gateway",
        EdgeGatewayArgs(
            domain=s.domain,
            tls_issuer=s.tls_issuer,
            acme_email=s.acme_email,
            acme_server=s.acme_server,
            replicas=s.service_replicas,
        ),
        pulumi.ResourceOptions(
            parent=parent,
            depends_on=[*base.ready, base.crds],
            # it was `dex:k8s:IngressTls` `{name}-ingress`: cert-manager and the issuers keep
            # their state (children follow their parent's alias)
            aliases=[pulumi.Alias(name=f"{name}-ingress", type_="dex:k8s:IngressTls")],
        ),
    )


def _observability(
    name: str,
    parent: pulumi.Resource,
    s: PlatformSettings,
    crds: pulumi.Resource,
    waits: list[pulumi.Resource],
) -> Observability:
    return Observability(
        f"{name}-observability",
        ObservabilityArgs(
            domain=s.domain,
            admin_secret=GRAFANA_ADMIN_SECRET,
            replicas=s.service_replicas,
            metrics_retention_days=s.metrics_retention_days,
            crds=crds,
            model_mae_alert_celsius=s.model_mae_alert_celsius,
        ),
        pulumi.ResourceOptions(parent=parent, depends_on=waits),
    )


def _mlflow(
    name: str, parent: pulumi.Resource, args: PlatformArgs, waits: list[pulumi.Resource]
) -> Mlflow:
    """MLflow on the managed Postgres, its artifacts in the `mlflow` bucket."""
    s, db = args.settings, args.database
    mlflow_db = db.app_databases["mlflow"]
    values = mlflow_values(
        host=s.host("mlflow"),
        db_host=db.host,
        db_port=db.port,
        db_name=mlflow_db.name,
        db_user=mlflow_db.user,
        artifacts_url=args.store.bucket_urls["mlflow"],
        replicas=s.service_replicas,
        sslmode=db.sslmode,
    )
    return Mlflow(
        f"{name}-mlflow",
        MlflowArgs(values=values, domain=s.domain),
        pulumi.ResourceOptions(parent=parent, depends_on=waits),
    )


def _airflow(
    name: str,
    parent: pulumi.Resource,
    args: PlatformArgs,
    pipelines: AppImage,
    waits: list[pulumi.Resource],
) -> Airflow:
    """Airflow on the managed Postgres, running the pipelines image, its logs in the
    `airflow-logs` bucket."""
    s = args.settings
    values = airflow_values(
        host=s.host("airflow"),
        image_repository=pipelines.repository,
        image_tag=pipelines.tag,
        image_digest=pipelines.digest,
        logs_url=args.store.bucket_urls["airflow-logs"],
        task_env=pipeline_env(args.store),
        replicas=s.service_replicas,
    )
    return Airflow(
        f"{name}-airflow",
        AirflowArgs(values=values, domain=s.domain),
        pulumi.ResourceOptions(parent=parent, depends_on=waits),
    )


def _serving_api(
    name: str,
    parent: pulumi.Resource,
    args: PlatformArgs,
    image: AppImage,
    waits: list[pulumi.Resource],
) -> ServingApi:
    s = args.settings
    cache_ca = args.cache.ca_certificate is not None
    return ServingApi(
        f"{name}-api",
        ServingApiArgs(
            image=image.ref,
            env=api_env(s, args.store, cache_ca=cache_ca),
            domain=s.domain,
            min_replicas=s.api_min_replicas,
            max_replicas=s.api_max_replicas,
            cache_ca=cache_ca,
        ),
        pulumi.ResourceOptions(parent=parent, depends_on=waits),
    )


def _batch_jobs(
    name: str,
    parent: pulumi.Resource,
    args: PlatformArgs,
    training_image: AppImage,
    waits: list[pulumi.Resource],
) -> None:
    """Training on its schedule, and the feedback loop: promote/retire the challenger, score
    the next day, retrain on drift; both in the training image, as the training identity."""
    s = args.settings
    opts = pulumi.ResourceOptions(parent=parent, depends_on=waits)
    Training(
        f"{name}-training",
        BatchJobArgs(
            image=training_image.ref,
            env=training_env(args.store, training_image.tag),
            schedule=s.training_schedule,
        ),
        opts,
    )
    ModelOps(
        f"{name}-model-ops",
        BatchJobArgs(
            image=training_image.ref,
            env=model_ops_env(args.store, training_image.tag),
            schedule=s.model_ops_schedule,
        ),
        opts,
    )


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
