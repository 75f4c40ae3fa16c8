"""Observability: Prometheus (kube-prometheus-stack) with Grafana and Alertmanager, Loki for
logs (shipped by Alloy), Tempo for traces, a Pushgateway for batch jobs, the SLO rules and
the dashboards provisioned from JSON in this folder.

The prometheus-operator CRDs are applied by Pulumi from the operator's release, server-side
(the Kubernetes provider runs with server-side apply): they are too large for a client-side
apply's last-applied annotation, and Helm would never upgrade them. The chart then runs with
its CRDs skipped and depends on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.k8s import slo
from components.k8s.base import (
    MANAGED_BY,
    OBSERVABILITY_NS,
    Chart,
    container_security,
    helm_release,
    labels,
    pod_security,
    resources,
    selector,
    untyped,
)
from components.k8s.gateway import BACKENDS, https_route
from components.options import take_depends_on

KUBE_PROMETHEUS_STACK_VERSION = "88.5.3"
PROMETHEUS_OPERATOR_VERSION = "v0.93.1"
"""The operator release kube-prometheus-stack 88.5.3 ships (its appVersion)."""
LOKI_VERSION = "18.11.0"
TEMPO_VERSION = "2.2.4"
"""grafana-community tempo 2.2.4 (2026-08-13; grafana-community/helm-charts tag `tempo-2.2.4`,
`charts/tempo`, Tempo 2.10.8). Its README's only break since 1.25.0 is 2.0.0's: Kubernetes
>= 1.25, deprecated APIs removed (our clusters run 1.32+). The values we set keep their meaning
(`tempo.retention` -> `compactor.compaction.block_retention`, `tempo.receivers` -> the
distributor's receivers, `tempo.resources`, `persistence.*`, `serviceMonitor.enabled`), and the
Service is still `tempo` for release `tempo` with ports 3200 and 4318."""
ALLOY_VERSION = "1.11.1"
"""grafana/alloy chart 1.11.1 (2026-08-06; grafana/alloy tag `helm-chart/1.11.1`,
`operations/helm/charts/alloy`, Alloy v1.18.1). Its CHANGELOG's only breaking change since
0.12.5 is `configReloader.customArgs` (0.12.6: the reloader became prometheus-config-reloader),
which we do not set; `alloy.configMap.*`, `alloy.clustering.enabled`, `alloy.resources`,
`controller.type`/`replicas` and the `crds` subchart (PodLogs, `crds.create`) are unchanged, and
every component of `ALLOY_CONFIG` is still generally available."""
PUSHGATEWAY_IMAGE = (
    "prom/pushgateway:v1.11.1"
    "@sha256:03738d278e082ee9821df730c741b3b465c251fc2b68a85883def301a55a6215"
)
GRAFANA_COMMUNITY_REPO = "https://grafana-community.github.io/helm-charts"

OPERATOR_CRDS = (
    "alertmanagerconfigs",
    "alertmanagers",
    "podmonitors",
    "probes",
    "prometheusagents",
    "prometheuses",
    "prometheusrules",
    "scrapeconfigs",
    "servicemonitors",
    "thanosrulers",
)
DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"

LOKI_URL = f"http://loki.{OBSERVABILITY_NS}.svc.cluster.local:3100"
TEMPO_URL = f"http://tempo.{OBSERVABILITY_NS}.svc.cluster.local:3200"
OTLP_HTTP_URL = f"http://tempo.{OBSERVABILITY_NS}.svc.cluster.local:4318"
PUSHGATEWAY_URL = f"http://pushgateway.{OBSERVABILITY_NS}.svc.cluster.local:9091"


def crd_urls() -> list[str]:
    base = (
        "https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/"
        f"{PROMETHEUS_OPERATOR_VERSION}/example/prometheus-operator-crd-full"
    )
    return [f"{base}/monitoring.coreos.com_{name}.yaml" for name in OPERATOR_CRDS]


def operator_crds(name: str, opts: pulumi.ResourceOptions) -> k8s.yaml.v2.ConfigGroup:
    """The prometheus-operator CRDs, applied server-side before any chart that renders a
    ServiceMonitor, PodMonitor or PrometheusRule. A `yaml/v2` ConfigGroup: what depends on
    it waits for every CRD it applies (pulumi/pulumi-kubernetes#1833, fixed in v2)."""
    return k8s.yaml.v2.ConfigGroup(name, files=crd_urls(), opts=opts)


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON of the repository, by file stem."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def kube_prometheus_values(admin_secret: str, retention_days: int, replicas: int) -> dict[str, Any]:
    return {
        "crds": {"enabled": False},
        "defaultRules": {
            "create": True,
            "rules": {"nodeExporterAlerting": False, "nodeExporterRecording": False},
        },
        # the node exporter needs hostNetwork/hostPID/hostPath (privileged); node health
        # comes from the kubelet and the cloud's own node monitoring instead
        "nodeExporter": {"enabled": False},
        "alertmanager": {
            "alertmanagerSpec": {
                "replicas": replicas,
                "resources": resources("50m", "128Mi"),
            }
        },
        "prometheus": {
            "prometheusSpec": {
                "replicas": replicas,
                "retention": f"{retention_days}d",
                "resources": resources("500m", "2Gi", "2"),
                # pick up every ServiceMonitor / PodMonitor / rule, not only the chart's own
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "probeSelectorNilUsesHelmValues": False,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "50Gi"}},
                        }
                    }
                },
            }
        },
        "grafana": {
            "admin": {
                "existingSecret": admin_secret,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "defaultDashboardsEnabled": True,
            "sidecar": {
                "dashboards": {"enabled": True, "label": "grafana_dashboard", "labelValue": "1"}
            },
            "additionalDataSources": [
                {"name": "Loki", "uid": "loki", "type": "loki", "url": LOKI_URL},
                {
                    "name": "Tempo",
                    "uid": "tempo",
                    "type": "tempo",
                    "url": TEMPO_URL,
                    "jsonData": {"tracesToLogsV2": {"datasourceUid": "loki"}},
                },
            ],
            # served through the `dex` Gateway (the HTTPRoute `grafana`), not an Ingress
            "ingress": {"enabled": False},
        },
    }


def loki_values() -> dict[str, Any]:
    """Loki as one binary with a volume: enough for the platform's own logs (7 days)."""
    return {
        "deploymentMode": "Monolithic",
        "loki": {
            "auth_enabled": False,
            "commonConfig": {"replication_factor": 1},
            "storage": {"type": "filesystem"},
            "schemaConfig": {
                "configs": [
                    {
                        "from": "2024-01-01",
                        "store": "tsdb",
                        "object_store": "filesystem",
                        "schema": "v13",
                        "index": {"prefix": "index_", "period": "24h"},
                    }
                ]
            },
            "limits_config": {"retention_period": "168h"},
            "compactor": {"retention_enabled": True, "delete_request_store": "filesystem"},
        },
        "singleBinary": {"replicas": 1, "resources": resources("100m", "512Mi")},
        "backend": {"replicas": 0},
        "read": {"replicas": 0},
        "write": {"replicas": 0},
        "chunksCache": {"enabled": False},
        "resultsCache": {"enabled": False},
        "lokiCanary": {"enabled": False},
        "test": {"enabled": False},
        "gateway": {"enabled": False},
    }


def tempo_values() -> dict[str, Any]:
    return {
        "tempo": {
            "retention": "72h",
            "receivers": {"otlp": {"protocols": {"http": {"endpoint": "0.0.0.0:4318"}}}},
            "resources": resources("100m", "512Mi"),
        },
        "persistence": {"enabled": True, "size": "10Gi"},
        "serviceMonitor": {"enabled": True},
    }


ALLOY_CONFIG = f"""
discovery.kubernetes "pods" {{
  role = "pod"
}}

discovery.relabel "pods" {{
  targets = discovery.kubernetes.pods.targets
  rule {{
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_name"]
    target_label  = "pod"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_container_name"]
    target_label  = "container"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
    target_label  = "app"
  }}
}}

// tails logs through the Kubernetes API: no hostPath mounts
loki.source.kubernetes "pods" {{
  targets    = discovery.relabel.pods.output
  forward_to = [loki.write.default.receiver]
  // the replicas share the pods between them: each log line is read once
  clustering {{
    enabled = true
  }}
}}

loki.write "default" {{
  endpoint {{
    url = "{LOKI_URL}/loki/api/v1/push"
  }}
}}
"""


def alloy_values() -> dict[str, Any]:
    return {
        "alloy": {
            "configMap": {"create": True, "content": ALLOY_CONFIG.strip() + "\n"},
            "clustering": {"enabled": True},
            "resources": resources("50m", "256Mi"),
        },
        "controller": {"type": "deployment", "replicas": 2},
    }


KUBE_PROMETHEUS_STACK = Chart(
    release="kps",
    chart="kube-prometheus-stack",
    version=KUBE_PROMETHEUS_STACK_VERSION,
    repo="https://prometheus-community.github.io/helm-charts",
    namespace=OBSERVABILITY_NS,
    timeout=900,
    # the operator CRDs are applied by `operator_crds`, server-side
    skip_crds=True,
)
LOKI = Chart(
    release="loki",
    chart="loki",
    version=LOKI_VERSION,
    repo=GRAFANA_COMMUNITY_REPO,
    namespace=OBSERVABILITY_NS,
    timeout=900,
    skip_crds=False,
)
TEMPO = Chart(
    release="tempo",
    chart="tempo",
    version=TEMPO_VERSION,
    repo=GRAFANA_COMMUNITY_REPO,
    namespace=OBSERVABILITY_NS,
    timeout=900,
    skip_crds=False,
)
ALLOY = Chart(
    release="alloy",
    chart="alloy",
    version=ALLOY_VERSION,
    repo="https://grafana.github.io/helm-charts",
    namespace=OBSERVABILITY_NS,
    timeout=900,
    skip_crds=False,
)


@dataclass(frozen=True)
class ObservabilityArgs:
    domain: str
    """Grafana serves `grafana.<domain>`."""
    admin_secret: str
    """The Secret with Grafana's `admin-user` and `admin-password`."""
    replicas: int
    """Prometheus, Alertmanager and Grafana replicas."""
    metrics_retention_days: int
    """Days of metrics Prometheus keeps."""
    crds: pulumi.Resource
    """The operator CRDs (`operator_crds`): every release and object here waits for them, the
    rules for nothing else."""
    model_mae_alert_celsius: float = slo.MODEL_MAE_ALERT_CELSIUS
    """The champion's online MAE its alert fires above."""


class Observability(pulumi.ComponentResource):
    """Metrics, logs, traces, alerts and dashboards. Type token `dex:k8s:Observability`."""

    def __init__(
        self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        """Everything but the rules also waits for `opts.depends_on` (namespaces, storage,
        the Grafana secret, the Envoy Gateway release whose CRDs Grafana's HTTPRoute
        needs)."""
        own, depends_on = take_depends_on(opts)
        super().__init__("dex:k8s:Observability", name, None, own)
        self.crds = args.crds
        after = pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, self.crds])
        stack_values = kube_prometheus_values(
            args.admin_secret, args.metrics_retention_days, args.replicas
        )
        self.stack = helm_release(
            f"{name}-kube-prometheus-stack", KUBE_PROMETHEUS_STACK, stack_values, after
        )
        helm_release(f"{name}-loki", LOKI, loki_values(), after)
        helm_release(f"{name}-tempo", TEMPO, tempo_values(), after)
        helm_release(f"{name}-alloy", ALLOY, alloy_values(), after)
        pushgateway(name, self.crds, after)
        https_route(f"{name}-grafana-route", BACKENDS["grafana"], args.domain, after)
        boards = dashboard_config_maps(name, after)
        groups = prometheus_rules(
            name,
            args.model_mae_alert_celsius,
            pulumi.ResourceOptions(parent=self, depends_on=[self.crds]),
        )
        self.register_outputs(
            {
                "grafana_host": f"{BACKENDS['grafana'].host}.{args.domain}",
                "dashboards": boards,
                "rule_groups": groups,
            }
        )


def dashboard_config_maps(name: str, opts: pulumi.ResourceOptions) -> list[str]:
    """A ConfigMap per dashboard JSON, labelled for Grafana's sidecar; returns their stems."""
    boards = dashboards()
    for stem, board in boards.items():
        k8s.core.v1.ConfigMap(
            f"{name}-dashboard-{stem}",
            metadata=untyped(
                {
                    "name": f"dex-dashboard-{stem}",
                    "namespace": OBSERVABILITY_NS,
                    "labels": {**MANAGED_BY, "grafana_dashboard": "1"},
                }
            ),
            data=untyped({f"dex-{stem}.json": json.dumps(board, indent=2, sort_keys=True)}),
            opts=opts,
        )
    return sorted(boards)


def prometheus_rules(
    name: str, model_mae_alert_celsius: float, opts: pulumi.ResourceOptions
) -> list[str]:
    """A PrometheusRule per rule group (`slo.rule_groups`); returns the groups' names."""
    groups = slo.rule_groups(model_mae_alert_celsius)
    for group in groups:
        k8s.apiextensions.CustomResource(
            f"{name}-rules-{group['name']}",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={
                "name": group["name"],
                "namespace": OBSERVABILITY_NS,
                "labels": MANAGED_BY,
            },
            spec={"groups": [group]},
            opts=opts,
        )
    return [g["name"] for g in groups]


def pushgateway(name: str, crds: pulumi.Resource, opts: pulumi.ResourceOptions) -> None:
    """A Pushgateway: batch jobs (pipeline runs, training, drift) push their metrics."""
    app = "pushgateway"
    pod_labels = labels(app, "metrics")
    k8s.apps.v1.Deployment(
        f"{name}-pushgateway",
        metadata=untyped({"name": app, "namespace": OBSERVABILITY_NS, "labels": pod_labels}),
        spec=untyped(
            {
                "replicas": 1,
                "selector": {"matchLabels": selector(app)},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": pod_security(65534),
                        "containers": [
                            {
                                "name": app,
                                "image": PUSHGATEWAY_IMAGE,
                                "args": ["--persistence.file=/data/metrics"],
                                "ports": [{"name": "http", "containerPort": 9091}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/-/ready", "port": "http"},
                                    "periodSeconds": 10,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/-/healthy", "port": "http"},
                                    "periodSeconds": 20,
                                },
                                "resources": resources("20m", "64Mi"),
                                "securityContext": container_security(),
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            }
                        ],
                        "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "256Mi"}}],
                    },
                },
            }
        ),
        opts=opts,
    )
    k8s.core.v1.Service(
        f"{name}-pushgateway",
        metadata=untyped({"name": app, "namespace": OBSERVABILITY_NS, "labels": pod_labels}),
        spec=untyped(
            {
                "selector": selector(app),
                "ports": [{"name": "http", "port": 9091, "targetPort": "http"}],
            }
        ),
        opts=opts,
    )
    k8s.policy.v1.PodDisruptionBudget(
        f"{name}-pushgateway",
        metadata=untyped({"name": app, "namespace": OBSERVABILITY_NS, "labels": pod_labels}),
        spec=untyped({"maxUnavailable": 1, "selector": {"matchLabels": selector(app)}}),
        opts=opts,
    )
    k8s.apiextensions.CustomResource(
        f"{name}-pushgateway-monitor",
        api_version="monitoring.coreos.com/v1",
        kind="ServiceMonitor",
        metadata={"name": app, "namespace": OBSERVABILITY_NS, "labels": pod_labels},
        spec={
            "selector": {"matchLabels": selector(app)},
            "endpoints": [{"port": "http", "interval": "30s", "honorLabels": True}],
        },
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[crds])),
    )
