"""What both clouds' compositions share once the capability contracts exist: the Kubernetes
provider from the cluster contract, and the platform on top of it (components/k8s)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from components.contracts import (
    APP_IMAGES,
    CacheOutputs,
    ClusterOutputs,
    DatabaseOutputs,
    ObjectStoreOutputs,
    RegistryOutputs,
    WorkloadIdentityOutputs,
)
from components.k8s.images import source_tag
from components.k8s.platform import KubernetesPlatform, PlatformArgs, PlatformSettings
from components.k8s.runners import CiRunners, CiRunnersArgs
from stacks.config import StackConfig
from stacks.stackfiles import build_context


def kubernetes_provider(cluster: ClusterOutputs) -> k8s.Provider:
    """The Kubernetes provider for components/k8s, from the cluster contract. During a first
    preview the kubeconfig is unknown; the provider then defers Kubernetes resources instead
    of failing. Server-side apply lets large CRDs (kube-prometheus-stack) apply.

    The provider waits for `cluster.ready` (node groups or pools, the network and DNS
    add-ons): a kubeconfig exists as soon as the control plane does, and a Helm release that
    starts before nodes and CoreDNS are up waits out its timeout and rolls back."""
    return k8s.Provider(
        "k8s",
        kubeconfig=cluster.kubeconfig,
        enable_server_side_apply=True,
        delete_unreachable=False,
        opts=pulumi.ResourceOptions(depends_on=list(cluster.ready)),
    )


def pushed_tags(cfg: StackConfig) -> dict[str, str] | None:
    """The apps' source tags when the stack deploys images pushed before (`dex images push`):
    the registry looks their digests up; None when `pulumi up` builds them."""
    if cfg.platform.image_source != "registry":
        return None
    return {app: source_tag(app) for app in APP_IMAGES}


def settings(cfg: StackConfig) -> PlatformSettings:
    p = cfg.platform
    return PlatformSettings(
        environment=cfg.environment,
        domain=p.domain,
        tls_issuer=p.tls_issuer,
        acme_email=p.acme_email,
        acme_server=p.acme_server,
        api_min_replicas=p.api_min_replicas,
        api_max_replicas=p.api_max_replicas,
        api_auth=p.api_auth,
        api_jwks_url=p.api_jwks_url,
        api_jwt_issuer=p.api_jwt_issuer,
        api_jwt_audience=p.api_jwt_audience,
        api_rollout=p.api_rollout,
        api_canary_share=p.api_canary_share,
        api_shadow_share=p.api_shadow_share,
        training_schedule=p.training_schedule,
        model_ops_schedule=p.model_ops_schedule,
        model_mae_alert_celsius=p.model_mae_alert_celsius,
        grafana_admin_user=p.grafana_admin_user,
        service_replicas=p.service_replicas,
        metrics_retention_days=p.metrics_retention_days,
        protect=cfg.deletion_protection,
    )


def build_platform(
    cfg: StackConfig,
    *,
    cluster: ClusterOutputs,
    store: ObjectStoreOutputs,
    database: DatabaseOutputs,
    cache: CacheOutputs,
    registry: RegistryOutputs,
    identity: WorkloadIdentityOutputs,
    random_provider: random.Provider,
    provider: k8s.Provider | None = None,
) -> dict[str, Any]:
    """components/k8s on this stack's cluster; returns the stack outputs it adds. `provider`
    is the Kubernetes provider when the caller made it (`kubernetes_provider`) to put more on
    the same cluster; by default one is made here."""
    if provider is None:
        provider = kubernetes_provider(cluster)
    tls_provider = tls.Provider("tls")
    platform = KubernetesPlatform(
        f"{cfg.name_prefix}-platform",
        PlatformArgs(
            settings=settings(cfg),
            store=store,
            database=database,
            cache=cache,
            registry=registry,
            identity=identity,
            build_context=build_context(),
            image_source=cfg.platform.image_source,
            storage_class=cluster.default_storage_class,
            api_server_cidrs=cluster.api_server_cidrs,
        ),
        pulumi.ResourceOptions(providers=[provider, random_provider, tls_provider]),
    )
    p = cfg.platform
    if p.ci_github_config_url:
        CiRunners(
            f"{cfg.name_prefix}-ci-runners",
            CiRunnersArgs(
                stack=pulumi.get_stack(),
                github_config_url=p.ci_github_config_url,
                github_app_secret=p.ci_github_app_secret,
                max_runners=p.ci_max_runners,
                # on-demand system nodes, never spot: a deploy must not be preempted
                node_selector={"dex.io/pool": "system"},
                cluster_readers=tuple(p.ci_cluster_readers),
            ),
            pulumi.ResourceOptions(providers=[provider]),
        )
    return {
        "api_url": platform.urls["api"],
        "mlflow_url": platform.urls["mlflow"],
        "airflow_url": platform.urls["airflow"],
        "grafana_url": platform.urls["grafana"],
        "images": platform.image_refs,
        "sealing_certificate": platform.sealing_certificate,
        "mlflow_password": pulumi.Output.secret(platform.mlflow_password),
        "airflow_admin_password": pulumi.Output.secret(platform.airflow_password),
        "grafana_admin_password": pulumi.Output.secret(platform.grafana_password),
    }
