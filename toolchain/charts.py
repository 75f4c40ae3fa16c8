"""What each pinned Helm chart renders that a first deploy depends on, read from the chart's
templates at the pinned version: the objects of custom kinds (which need their CRD first)
and the volume claims (which need a default StorageClass).

Each entry names the template it comes from and the values that gate it, as the chart
writes them (`{{- if and .Values.a .Values.b }}`): a gate is a tuple of dotted value paths
that must all be truthy. `first_deploy` evaluates the gates against the release's values
merged over the chart's defaults (`toolchain/schemas/<chart>/values.yaml` where vendored, else
`DEFAULTS` below), so turning a feature on in our values is enough to make the check ask for
its CRD or storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rendered:
    """One kind a chart's template renders when every value path of `when` is truthy."""

    template: str
    """The template file in the chart, at the pinned version."""
    api_group: str
    kind: str
    when: tuple[str, ...]
    """Dotted value paths that must all be truthy (empty: always rendered)."""


MONITORING = "monitoring.coreos.com"
KARPENTER = "oci://public.ecr.aws/karpenter/karpenter"
"""Karpenter's chart, installed by its OCI reference (the release's `chart` input)."""
ENVOY_GATEWAY = "oci://docker.io/envoyproxy/gateway-helm"
"""Envoy Gateway's chart, installed by its OCI reference (the release's `chart` input)."""

CUSTOM_KINDS: dict[str, tuple[Rendered, ...]] = {
    "sealed-secrets": (
        Rendered(
            "templates/servicemonitor.yaml", MONITORING, "ServiceMonitor",
            ("metrics.serviceMonitor.enabled",),
        ),
    ),
    # v1.9.0: templates/ render only built-in kinds (Deployment, Service, RBAC, the certgen
    # Job, a MutatingWebhookConfiguration; the crds subchart a ValidatingAdmissionPolicy)
    ENVOY_GATEWAY: (),
    "cert-manager": (
        Rendered(
            "templates/servicemonitor.yaml", MONITORING, "ServiceMonitor",
            ("prometheus.enabled", "prometheus.servicemonitor.enabled"),
        ),
        Rendered(
            "templates/podmonitor.yaml", MONITORING, "PodMonitor",
            ("prometheus.enabled", "prometheus.podmonitor.enabled"),
        ),
    ),
    "kube-prometheus-stack": (
        Rendered(
            "templates/prometheus/prometheus.yaml", MONITORING, "Prometheus",
            ("prometheus.enabled",),
        ),
        Rendered(
            "templates/alertmanager/alertmanager.yaml", MONITORING, "Alertmanager",
            ("alertmanager.enabled",),
        ),
        Rendered(
            "templates/prometheus/servicemonitor.yaml", MONITORING, "ServiceMonitor",
            ("prometheus.enabled", "prometheus.serviceMonitor.selfMonitor"),
        ),
        Rendered(
            "templates/prometheus/rules-1.14/*.yaml", MONITORING, "PrometheusRule",
            ("defaultRules.create",),
        ),
    ),
    "loki": (
        Rendered(
            "templates/monitoring/servicemonitor.yaml", MONITORING, "ServiceMonitor",
            ("monitoring.serviceMonitor.enabled",),
        ),
    ),
    # 2.2.4 (tag tempo-2.2.4): the only custom kind of charts/tempo/templates/
    "tempo": (
        Rendered(
            "templates/servicemonitor.yaml", MONITORING, "ServiceMonitor",
            ("serviceMonitor.enabled",),
        ),
    ),
    # 1.11.1 (tag helm-chart/1.11.1): the ServiceMonitor is
    # `if and .Values.service.enabled .Values.serviceMonitor.enabled`; the VerticalPodAutoscaler
    # is also gated on `.Capabilities.APIVersions.Has "autoscaling.k8s.io/v1"`. The PodLogs CRD
    # comes from the `crds` subchart's crds/ folder (no template renders a PodLogs).
    "alloy": (
        Rendered(
            "templates/servicemonitor.yaml", MONITORING, "ServiceMonitor",
            ("service.enabled", "serviceMonitor.enabled"),
        ),
        Rendered(
            "templates/vpa.yaml", "autoscaling.k8s.io", "VerticalPodAutoscaler",
            ("controller.autoscaling.vertical.enabled",),
        ),
    ),
    "mlflow": (
        Rendered(
            "templates/servicemonitor.yaml", MONITORING, "ServiceMonitor",
            ("serviceMonitor.enabled",),
        ),
    ),
    "airflow": (),
    # v1.14.1: also gated on `.Capabilities.APIVersions.Has "monitoring.coreos.com/v1"`
    KARPENTER: (
        Rendered(
            "templates/servicemonitor.yaml", MONITORING, "ServiceMonitor",
            ("serviceMonitor.enabled",),
        ),
    ),
}  # fmt: skip
"""Per chart: the objects of custom kinds its templates can render, and their gates."""

VOLUME_CLAIMS: dict[str, tuple[Rendered, ...]] = {
    "kube-prometheus-stack": (
        Rendered(
            "templates/prometheus/prometheus.yaml", "", "PersistentVolumeClaim",
            ("prometheus.enabled", "prometheus.prometheusSpec.storageSpec.volumeClaimTemplate"),
        ),
        Rendered(
            "templates/alertmanager/alertmanager.yaml", "", "PersistentVolumeClaim",
            ("alertmanager.enabled", "alertmanager.alertmanagerSpec.storage.volumeClaimTemplate"),
        ),
    ),
    "loki": (
        Rendered(
            "templates/single-binary/statefulset.yaml", "", "PersistentVolumeClaim",
            ("singleBinary.persistence.enabled",),
        ),
    ),
    # 2.2.4: volumeClaimTemplates whose storageClassName is `persistence.storageClassName`
    # (unset: empty, the default class)
    "tempo": (
        Rendered(
            "templates/statefulset.yaml", "", "PersistentVolumeClaim",
            ("persistence.enabled",),
        ),
    ),
    # 1.11.1: `controller.volumeClaimTemplates`, rendered when `controller.type` is "statefulset"
    # (an equality a gate cannot state: the claims count whenever templates are given)
    "alloy": (
        Rendered(
            "templates/controllers/statefulset.yaml", "", "PersistentVolumeClaim",
            ("controller.volumeClaimTemplates",),
        ),
    ),
    "airflow": (
        Rendered(
            "templates/triggerer/triggerer-deployment.yaml", "", "PersistentVolumeClaim",
            ("triggerer.enabled", "triggerer.persistence.enabled"),
        ),
    ),
}  # fmt: skip
"""Per chart: the volume claims its templates can render (StatefulSet volumeClaimTemplates or
PersistentVolumeClaims without a storageClassName: they bind to the default class)."""

DEFAULTS: dict[str, dict[str, Any]] = {
    # charts whose values.yaml is not vendored: the defaults of the gates above
    "tempo": {"serviceMonitor": {"enabled": False}, "persistence": {"enabled": False}},
    "alloy": {
        "service": {"enabled": True},
        "serviceMonitor": {"enabled": False},
        "controller": {"volumeClaimTemplates": [], "autoscaling": {"vertical": {"enabled": False}}},
    },
    KARPENTER: {"serviceMonitor": {"enabled": False}},
    ENVOY_GATEWAY: {"crds": {"enabled": True}},
}

CRD_SOURCES: dict[str, tuple[str, ...]] = {
    "cert-manager.io": ("cert-manager",),
    "acme.cert-manager.io": ("cert-manager",),
    "bitnami.com": ("sealed-secrets",),
    MONITORING: ("kube-prometheus-stack",),
    "karpenter.sh": ("karpenter", "karpenter-crd", KARPENTER, f"{KARPENTER}-crd"),
    "karpenter.k8s.aws": ("karpenter", "karpenter-crd", KARPENTER, f"{KARPENTER}-crd"),
    "actions.github.com": ("gha-runner-scale-set-controller",),
    # v1.9.0 charts/gateway-helm/charts/crds/crds/: gatewayapi-crds.yaml (Gateway API bundle
    # v1.6.1, experimental channel) and generated/gateway.envoyproxy.io_*.yaml
    "gateway.networking.k8s.io": (ENVOY_GATEWAY,),
    "gateway.envoyproxy.io": (ENVOY_GATEWAY,),
}
"""Which charts install the CRDs of an API group (from their `crds/` folder or a template)."""

CRDS_INSTALLED_WHEN: dict[str, tuple[str, ...]] = {
    # templates/crd-*.yaml: `if or .Values.crds.enabled .Values.installCRDs` (both off)
    "cert-manager": ("crds.enabled", "installCRDs"),
    # Chart.yaml: the `crds` subchart has `condition: crds.enabled` (on by default)
    ENVOY_GATEWAY: ("crds.enabled",),
}
"""Charts whose CRDs are templates behind a value: installed when any of these is truthy."""


def lookup(values: Mapping[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def rendered(
    table: Mapping[str, tuple[Rendered, ...]], chart: str, values: Mapping[str, Any]
) -> list[Rendered]:
    """What `chart` renders from `table` with `values` (already merged over its defaults)."""
    return [r for r in table.get(chart, ()) if all(bool(lookup(values, p)) for p in r.when)]
