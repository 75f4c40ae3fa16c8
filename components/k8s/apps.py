"""The bundled apps on the cluster: the serving API (Deployment, Service, HTTPRoute with its body
limit, HPA, PDB, ServiceMonitor), model training and the daily model operations (CronJobs of
the training image), each with its own service account, configured only through environment
variables built from the contract outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.k8s.base import (
    APPS_NS,
    CACHE_CA_CONFIGMAP,
    CACHE_CA_DIR,
    MODEL_OPS_APP,
    batch_scheduling,
    ca_volume,
    container_security,
    env_list,
    labels,
    pod_security,
    resources,
    selector,
    untyped,
)
from components.k8s.gateway import (
    API_BODY_LIMIT,
    BACKENDS,
    ENVOY_GATEWAY_API,
    body_limit_spec,
    custom_resource,
    https_route,
)
from components.options import take_depends_on

API_PORT = BACKENDS["api"].pod_port
API_SECRET = "api-secrets"
READINESS_PATH = "/readyz?only=serving"
"""Ready when the pod serves the registry's current model, or the registry answered that
there is none yet (day 0: predictions answer 503 until the first training). A Redis or
MLflow outage degrades a pod that holds a model but never unroutes it."""


def api_container(
    image: pulumi.Input[str], env: dict[str, Any], mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    """The API's container: uvicorn on API_PORT, probed on /healthz (started, alive) and
    READINESS_PATH (ready), draining after a short pause on stop."""
    return {
        "name": "api",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["--host", "0.0.0.0", "--port", str(API_PORT)],  # noqa: S104
        "ports": [{"name": "http", "containerPort": API_PORT}],
        "env": env_list(env),
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 60,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": READINESS_PATH, "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        # let the load balancer stop sending before uvicorn starts draining
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "resources": resources("250m", "512Mi", "1"),
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }


def api_volumes(cache_ca: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) of the API pod: scratch space, the model cache and, with
    `cache_ca`, the cache's CA bundle."""
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        {"name": "model-cache", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
        {"name": "model-cache", "mountPath": "/var/cache/dex"},
    ]
    if cache_ca:
        volume, mount = ca_volume(CACHE_CA_CONFIGMAP, CACHE_CA_DIR)
        volumes.append(volume)
        mounts.append(mount)
    return volumes, mounts


def api_deployment_spec(
    image: pulumi.Input[str], env: dict[str, Any], replicas: int, cache_ca: bool = False
) -> dict[str, Any]:
    """`cache_ca`: mount the cache's CA bundle (the ConfigMap `cache-ca`)."""
    app = "api"
    volumes, mounts = api_volumes(cache_ca)
    return {
        "replicas": replicas,
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector(app)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {
                "labels": labels(app, "serving"),
                "annotations": {"kubectl.kubernetes.io/default-container": app},
            },
            "spec": {
                "serviceAccountName": "api",
                # no Kubernetes API token: the cloud identity does not need one
                "automountServiceAccountToken": False,
                "securityContext": pod_security(),
                "terminationGracePeriodSeconds": 30,
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": key,
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector(app)},
                    }
                    for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
                ],
                "containers": [api_container(image, env, mounts)],
                "volumes": volumes,
            },
        },
    }


def api_hpa_spec(min_replicas: int, max_replicas: int) -> dict[str, Any]:
    """The API's autoscaler: `min_replicas` to `max_replicas` at 60% CPU, scaling down after
    five quiet minutes."""
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 60},
                },
            }
        ],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
    }


def api_pdb_spec(min_replicas: int) -> dict[str, Any]:
    """One pod always up when there are two or more; else at most one down (drains proceed)."""
    if min_replicas > 1:
        return {"minAvailable": 1, "selector": {"matchLabels": selector("api")}}
    return {"maxUnavailable": 1, "selector": {"matchLabels": selector("api")}}


MODEL_OPS_COMMAND = ["python", "-m", "apps.training.ops", "daily"]
"""The model-ops job's command (in the training image): feedback, the challenger's decision,
the next day's batch scores, drift and retraining."""


def batch_cronjob_spec(
    app: str,
    image: pulumi.Input[str],
    env: dict[str, Any],
    schedule: str,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """A scheduled batch job of the training image, run as the `training` identity: one run
    at a time, on the batch pool, hardened like every pod in `apps`. `command`: replaces the
    image's entrypoint (training's own when None)."""
    pod_labels = labels(app, app)
    container: dict[str, Any] = {"name": app, "image": image}
    if command is not None:
        container["command"] = command
    container.update(
        {
            "env": env_list(env),
            "resources": resources("1", "4Gi", "2"),
            "securityContext": container_security(),
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
        }
    )
    return {
        "schedule": schedule,
        "timeZone": "Etc/UTC",
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 3600,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "backoffLimit": 2,
                "activeDeadlineSeconds": 7200,
                "ttlSecondsAfterFinished": 7 * 86400,
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        "serviceAccountName": "training",
                        "automountServiceAccountToken": False,
                        "restartPolicy": "Never",
                        "securityContext": pod_security(),
                        **batch_scheduling(),
                        "containers": [container],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}],
                    },
                },
            },
        },
    }


def training_cronjob_spec(
    image: pulumi.Input[str], env: dict[str, Any], schedule: str
) -> dict[str, Any]:
    return batch_cronjob_spec("training", image, env, schedule)


def model_ops_cronjob_spec(
    image: pulumi.Input[str], env: dict[str, Any], schedule: str
) -> dict[str, Any]:
    """The daily model operations: the training job's pod (image, identity, resources, batch
    pool), running `MODEL_OPS_COMMAND`. It may retrain, so it gets training's resources and
    deadline."""
    return batch_cronjob_spec(MODEL_OPS_APP, image, env, schedule, MODEL_OPS_COMMAND)


@dataclass(frozen=True)
class ServingApiArgs:
    image: pulumi.Input[str]
    env: dict[str, Any]
    """The container's environment (`components.k8s.platform.api_env`)."""
    domain: str
    """The API serves `api.<domain>`."""
    min_replicas: int
    max_replicas: int
    cache_ca: bool = False
    """Mount the cache's CA bundle (the ConfigMap `cache-ca`)."""


class ServingApi(pulumi.ComponentResource):
    """The serving API. Type token `dex:k8s:ServingApi`."""

    def __init__(
        self, name: str, args: ServingApiArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        """`opts.depends_on` must hold the Envoy Gateway release (the HTTPRoute's CRD); every
        object but the autoscaler (which waits for the Deployment) waits for it."""
        own, depends_on = take_depends_on(opts)
        super().__init__("dex:k8s:ServingApi", name, None, own)
        app = "api"
        child = pulumi.ResourceOptions(parent=self, depends_on=depends_on)
        meta = {"name": app, "namespace": APPS_NS, "labels": labels(app, "serving")}
        spec = api_deployment_spec(args.image, args.env, args.min_replicas, args.cache_ca)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=untyped(meta),
            spec=untyped(spec),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=depends_on,
                # the autoscaler owns the replica count once it runs
                ignore_changes=["spec.replicas"],
            ),
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=untyped(meta),
            spec=untyped(
                {
                    "type": "ClusterIP",
                    "selector": selector(app),
                    "ports": [{"name": "http", "port": BACKENDS[app].port, "targetPort": "http"}],
                }
            ),
            opts=child,
        )
        self._route(name, args.domain, depends_on)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=untyped(meta),
            spec=untyped(api_hpa_spec(args.min_replicas, args.max_replicas)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=untyped(meta),
            spec=untyped(api_pdb_spec(args.min_replicas)),
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata=meta,
            spec={
                "selector": {"matchLabels": selector(app)},
                "namespaceSelector": {"matchNames": [APPS_NS]},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
            },
            opts=child,
        )
        self.register_outputs(
            {
                "url": f"https://{app}.{args.domain}",
                "replicas": [args.min_replicas, args.max_replicas],
            }
        )

    def _route(self, name: str, domain: str, depends_on: list[pulumi.Resource]) -> None:
        """Through the `dex` Gateway (its HTTPS listener for this host), with HSTS; bodies
        over 1 MiB are refused with 413 before they reach the pods."""
        app = "api"
        app_labels = labels(app, "serving")
        child = pulumi.ResourceOptions(parent=self, depends_on=depends_on)
        route = https_route(f"{name}-route", BACKENDS[app], domain, child, labels=app_labels)
        custom_resource(
            f"{name}-body-limit",
            ENVOY_GATEWAY_API,
            "BackendTrafficPolicy",
            {"name": f"{app}-body-limit", "namespace": APPS_NS, "labels": app_labels},
            body_limit_spec(app, API_BODY_LIMIT),
            pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, route]),
        )


@dataclass(frozen=True)
class BatchJobArgs:
    """A scheduled job of the training image (Training, ModelOps)."""

    image: pulumi.Input[str]
    """The training image (it holds apps/api too, for the shared model code)."""
    env: dict[str, Any]
    schedule: str
    """Cron schedule, UTC."""


class Training(pulumi.ComponentResource):
    """Model training on a schedule. Type token `dex:k8s:Training`. The CronJob waits for
    `opts.depends_on` (the namespace's policies, the service account)."""

    def __init__(
        self, name: str, args: BatchJobArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        own, depends_on = take_depends_on(opts)
        super().__init__("dex:k8s:Training", name, None, own)
        k8s.batch.v1.CronJob(
            f"{name}-cronjob",
            metadata=untyped(
                {"name": "training", "namespace": APPS_NS, "labels": labels("training")}
            ),
            spec=untyped(training_cronjob_spec(args.image, args.env, args.schedule)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        self.register_outputs({"schedule": args.schedule})


class ModelOps(pulumi.ComponentResource):
    """The daily feedback loop (`python -m apps.training.ops daily`) on a schedule. Type token
    `dex:k8s:ModelOps`. The CronJob waits for `opts.depends_on`."""

    def __init__(
        self, name: str, args: BatchJobArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        """`args.env`: the training job's, with the raw layer (the prediction log)."""
        own, depends_on = take_depends_on(opts)
        super().__init__("dex:k8s:ModelOps", name, None, own)
        k8s.batch.v1.CronJob(
            f"{name}-cronjob",
            metadata=untyped(
                {"name": MODEL_OPS_APP, "namespace": APPS_NS, "labels": labels(MODEL_OPS_APP)}
            ),
            spec=untyped(model_ops_cronjob_spec(args.image, args.env, args.schedule)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        self.register_outputs({"schedule": args.schedule, "command": MODEL_OPS_COMMAND})
