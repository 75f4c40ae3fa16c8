"""What both clouds' compositions share once the capability contracts exist: the Kubernetes
provider from the cluster contract, and the platform on top of it (components/k8s)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from components.contracts import (
    CacheOutputs,
    ClusterOutputs,
    DatabaseOutputs,
    ObjectStoreOutputs,
    RegistryOutputs,
    WorkloadIdentityOutputs,
)
from components.k8s.platform import KubernetesPlatform, PlatformArgs, PlatformSettings
from stacks.config import StackConfig


def kubernetes_provider(cluster: ClusterOutputs) -> k8s.Provider:
    """The Kubernetes provider for components/k8s, from the cluster contract. During a first
    preview the kubeconfig is unknown; the provider then defers Kubernetes resources instead
    of failing. Server-side apply lets large CRDs (kube-prometheus-stack) apply."""
    return k8s.Provider(
        "k8s",
        kubeconfig=cluster.kubeconfig,
        enable_server_side_apply=True,
        delete_unreachable=False,
    )


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
        training_schedule=p.training_schedule,
        grafana_admin_user=p.grafana_admin_user,
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
) -> dict[str, Any]:
    """components/k8s on this stack's cluster; returns the stack outputs it adds."""
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
        ),
        pulumi.ResourceOptions(providers=[provider, random_provider, tls_provider]),
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
