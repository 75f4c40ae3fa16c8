"""components/k8s on all four stacks: what lands on the cluster, its hardening and its wiring.

Every Kubernetes object and custom resource of the plans is validated strictly and every
Helm release's values against the chart (`test_validate.py::test_shipped_plans_validate`);
this file asserts what the platform must *be*: secure workloads, the contracts wired into
each app, sealed secrets, network policies, and the plan's stack outputs.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components.k8s import apps, base, gateway, images, mlflow, namespaces, slo
from components.k8s.observability import dashboards
from contracts.deployment import UNKNOWN, Plan, Resource, is_secret, parse_plan
from tests.conftest import ROOT, STACKS, only
from toolchain import first_deploy
from toolchain.first_deploy import Endpoint
from toolchain.mocks import DexMocks
from toolchain.synth import synthesize
from toolchain.validate import UNVENDORED_CHARTS, UNVENDORED_CRDS, unknown_keys, validate_plan

pytestmark = pytest.mark.unit

GATEWAY_API = "kubernetes:gateway.networking.k8s.io/v1:"
HTTP_ROUTE = GATEWAY_API + "HTTPRoute"
ENVOY = "kubernetes:gateway.envoyproxy.io/v1alpha1:"

POD_SPECS = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CHARTS = {
    "airflow": "1.21.0",
    "mlflow": "1.11.5",
    "cert-manager": "v1.21.1",
    "oci://docker.io/envoyproxy/gateway-helm": "v1.9.0",
    "sealed-secrets": "2.18.5",
    "kube-prometheus-stack": "88.5.3",
    "loki": "18.11.0",
    "tempo": "2.2.4",
    "alloy": "1.11.1",
    "oci://ghcr.io/actions/actions-runner-controller-charts/gha-runner-scale-set-controller": (
        "0.15.1"
    ),
    "oci://ghcr.io/actions/actions-runner-controller-charts/gha-runner-scale-set": "0.15.1",
}
AWS_ONLY_CHARTS = {"oci://public.ecr.aws/karpenter/karpenter": "1.14.1"}
CLOUD_SPECIFIC = (
    "-storage-class",  # AWS: EKS ships no default StorageClass; GKE does (standard-rwo)
    "-cache-ca-",  # GCP: Memorystore presents a private CA; ElastiCache a public one
    "karpenter",  # AWS: node autoscaling (GKE autoscales its node pools itself)
    "ci-read",  # GCP: CI's read-only ClusterRole (EKS grants it through access entries)
)
"""Name parts of the Kubernetes objects only one cloud needs (the rest is the same on both)."""


def pod_specs(plan: Plan) -> Iterator[tuple[Resource, dict[str, Any]]]:
    for typ, path in POD_SPECS.items():
        for res in plan.of_type(typ):
            spec: Any = res.inputs
            for part in path:
                spec = spec[part]
            yield res, spec


def bucket_urls(plan: Plan) -> dict[str, str]:
    store = next(r for r in plan if r.type in ("dex:aws:ObjectStore", "dex:gcp:ObjectStore"))
    urls: dict[str, str] = store.outputs["bucket_urls"]
    return urls


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def release(plan: Plan, chart: str) -> Resource:
    found = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == chart]
    assert len(found) == 1, chart
    return found[0]


# -- the whole platform, on every stack ----------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_carries_the_whole_platform(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert validate_plan(plan) == []
    charts = {r.inputs["chart"]: r.inputs["version"] for r in plan.of_type(
        "kubernetes:helm.sh/v3:Release")}  # fmt: skip
    on_aws = not stack.startswith("gcp")
    assert charts == {**CHARTS, **(AWS_ONLY_CHARTS if on_aws else {})}
    namespaces = {
        r.inputs["metadata"]["name"] for r in plan.of_type("kubernetes:core/v1:Namespace")
    }
    assert namespaces == {*base.NAMESPACES, "arc-systems", "arc-runners"}
    components = {r.type for r in plan if r.type.startswith("dex:k8s:")}
    assert components - {"dex:k8s:Karpenter"} == {
        "dex:k8s:CiRunners",
        "dex:k8s:Platform",
        "dex:k8s:Namespaces",
        "dex:k8s:SealedSecrets",
        "dex:k8s:EdgeGateway",
        "dex:k8s:Observability",
        "dex:k8s:DatabaseBootstrap",
        "dex:k8s:Mlflow",
        "dex:k8s:Airflow",
        "dex:k8s:AppImages",
        "dex:k8s:ServingApi",
        "dex:k8s:Training",
        "dex:k8s:ModelOps",
    }
    # one Kubernetes provider for all of it, built from the cluster contract's kubeconfig
    provider = only(plan, "pulumi:providers:kubernetes")
    assert provider.inputs["enableServerSideApply"] == "true"
    for res in plan:
        if res.type.startswith("kubernetes:"):
            assert res.provider.startswith(provider.urn), res.urn


def test_same_kubernetes_objects_on_both_clouds(plans: dict[str, Plan]) -> None:
    """components/k8s is cloud-agnostic: the same objects (by type and name) on EKS and GKE;
    only the contract values (bucket URLs, endpoints, identities) differ."""
    for env in ("dev", "prod"):
        aws, gcp = plans[env], plans[f"gcp-{env}"]

        def common(plan: Plan) -> set[tuple[str, str]]:
            return {
                (r.type, r.name)
                for r in plan
                if r.type.startswith(("kubernetes:", "dex:k8s"))
                and not any(part in r.name for part in CLOUD_SPECIFIC)
            }

        shared = common(aws)
        # an empty set on both sides would compare equal: the comparison must hold objects
        assert any(kind == "kubernetes:apps/v1:Deployment" for kind, _ in shared), env
        assert shared == common(gcp)
        assert only(aws, "kubernetes:storage.k8s.io/v1:StorageClass")
        assert only(gcp, "kubernetes:core/v1:ConfigMap", "cache-ca-apps")


# -- workload hardening ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_workload_is_hardened(plans: dict[str, Plan], stack: str) -> None:
    seen = set()
    for res, spec in pod_specs(plans[stack]):
        seen.add(res.inputs["metadata"]["name"])
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True, res.urn
        # above 10000, beyond any host account's uid (Checkov CKV_K8S_40)
        assert pod_ctx["runAsUser"] >= 10000, (res.urn, pod_ctx["runAsUser"])
        assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}, res.urn
        assert not spec.get("hostNetwork"), res.urn
        assert not spec.get("hostPID"), res.urn
        assert not spec.get("hostIPC"), res.urn
        assert spec["automountServiceAccountToken"] is False, res.urn  # no API token
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, res.urn
        for c in spec["containers"] + spec.get("initContainers", []):
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, res.urn
            assert ctx["privileged"] is False, res.urn
            assert ctx["readOnlyRootFilesystem"] is True, res.urn
            assert ctx["capabilities"] == {"drop": ["ALL"]}, res.urn
            limits = c["resources"]["limits"]
            assert {"cpu", "memory"} <= set(limits), res.urn
            assert c["resources"]["requests"]["memory"] == limits["memory"], res.urn
            image = c["image"]
            # built images are known only once pushed (unknown here, by digest below);
            # third-party ones are pinned by digest in the code
            assert image == UNKNOWN or "@sha256:" in image, (res.urn, image)
    assert seen == {"api", "training", "model-ops", "database-bootstrap", "pushgateway"}


def test_built_images_are_referenced_by_digest() -> None:
    """With the digests the build reports, every pod and the Airflow chart use them."""

    class Built(DexMocks):
        def new_resource(self, args):  # type: ignore[no-untyped-def]
            rid, outputs = super().new_resource(args)
            if args.typ == "docker-build:index:Image":
                outputs["digest"] = "sha256:" + "ab" * 32
            return rid, outputs

    plan = parse_plan(json.loads(json.dumps(synthesize("prod", mocks=Built("prod")))), "prod")
    repo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dex-prod"
    by_name = {res.inputs["metadata"]["name"]: spec for res, spec in pod_specs(plan)}
    assert by_name["api"]["containers"][0]["image"] == f"{repo}/api@sha256:{'ab' * 32}"
    assert by_name["training"]["containers"][0]["image"] == f"{repo}/training@sha256:{'ab' * 32}"
    # the model-ops job runs the same training image
    assert by_name["model-ops"]["containers"][0]["image"] == f"{repo}/training@sha256:{'ab' * 32}"
    airflow = release(plan, "airflow").inputs["values"]["images"]["airflow"]
    assert airflow["repository"] == f"{repo}/pipelines"
    assert airflow["digest"] == "sha256:" + "ab" * 32
    tag, digest = airflow["tag"].split("@")
    assert tag == "src-" + images.source_digest("pipelines")[:16]
    assert digest == "sha256:" + "ab" * 32
    pushed = {r.name: r.inputs for r in plan.of_type("docker-build:index:Image")}
    assert set(pushed) == {
        f"dex-prod-platform-images-{a}" for a in ("api", "pipelines", "training")
    }
    for name, inputs in pushed.items():
        app = name.rsplit("-", 1)[-1]
        assert inputs["push"] is True
        # resolved by the plugin from the program's `main` folder (stacks/), not the root
        assert inputs["context"]["location"] == ".."
        assert inputs["dockerfile"]["location"] == f"../apps/{app}/Dockerfile"
        assert inputs["buildOnPreview"] is False
        assert inputs["tags"] == [f"{repo}/{app}:src-{images.source_digest(app)[:16]}"]
        assert all(":latest" not in t for t in inputs["tags"])
        assert is_secret(inputs["registries"][0]["password"])


def test_image_tags_follow_the_sources(tmp_path: Path) -> None:
    for rel in ("apps/__init__.py", "requirements.lock"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x\n")
    for app in ("api", "training", "pipelines", "shared"):
        (tmp_path / "apps" / app).mkdir(parents=True, exist_ok=True)
        (tmp_path / "apps" / app / "main.py").write_text(app)
    before = {app: images.source_digest(app, tmp_path) for app in ("api", "training", "pipelines")}
    assert images.source_digest("api", tmp_path) == before["api"]  # stable
    (tmp_path / "apps" / "api" / "__pycache__").mkdir()
    (tmp_path / "apps" / "api" / "__pycache__" / "x.pyc").write_bytes(b"cache")
    assert images.source_digest("api", tmp_path) == before["api"]  # caches do not count
    (tmp_path / "apps" / "training" / "main.py").write_text("changed")
    assert images.source_digest("training", tmp_path) != before["training"]
    assert images.source_digest("api", tmp_path) == before["api"]  # api does not use it
    (tmp_path / "apps" / "pipelines" / "main.py").write_text("changed")
    assert images.source_digest("api", tmp_path) == before["api"]  # the API ships no pipelines
    (tmp_path / "apps" / "shared" / "main.py").write_text("changed")  # shared by all three
    after = {app: images.source_digest(app, tmp_path) for app in ("api", "training", "pipelines")}
    assert all(after[a] != before[a] for a in after)


@pytest.mark.parametrize("stack", STACKS)
def test_serving_api_runs_like_a_service(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    deployment = only(plan, "kubernetes:apps/v1:Deployment", "platform-api")
    spec = deployment.inputs["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    # ready on day 0 too (no model yet): the first `pulumi up` must finish
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz?only=serving"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["serviceAccountName"] == "api"
    assert {t["topologyKey"] for t in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert "spec.replicas" in deployment.raw["ignoreChanges"]  # the HPA owns it
    hpa = only(plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    prod = stack.endswith("prod")
    assert (hpa.inputs["spec"]["minReplicas"], hpa.inputs["spec"]["maxReplicas"]) == (
        (2, 10) if prod else (1, 3)
    )
    pdb = only(plan, "kubernetes:policy/v1:PodDisruptionBudget", "platform-api")
    assert pdb.inputs["spec"].get("minAvailable") == (1 if prod else None)
    # served through the Gateway's `https-api` listener, bodies over 1 MiB refused (413)
    assert not plan.of_type("kubernetes:networking.k8s.io/v1:Ingress")
    route = only(plan, HTTP_ROUTE, "platform-api-route").inputs
    domain = "dex.example.com" if prod else "dev.dex.example.com"
    assert route["metadata"]["namespace"] == "apps"
    assert route["spec"]["hostnames"] == [f"api.{domain}"]
    assert route["spec"]["parentRefs"][0]["sectionName"] == "https-api"
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "api", "port": 80}
    ]
    limit = only(plan, ENVOY + "BackendTrafficPolicy", "platform-api").inputs
    assert limit["metadata"]["namespace"] == "apps"
    assert limit["spec"] == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "api"}],
        "requestBuffer": {"limit": "1Mi"},
    }
    monitor = only(plan, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "platform-api")
    assert monitor.inputs["spec"]["endpoints"][0]["path"] == "/metrics"
    cron = only(plan, "kubernetes:batch/v1:CronJob", "training-cronjob").inputs["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == "training"


@pytest.mark.parametrize("stack", STACKS)
def test_model_ops_runs_the_training_pod_with_its_own_command(
    plans: dict[str, Plan], stack: str
) -> None:
    """The feedback loop: a daily CronJob in the training image, as the training identity,
    hardened, scheduled and sized like training; only its name, labels, command and the raw
    layer in its env differ."""
    plan = plans[stack]
    training = only(plan, "kubernetes:batch/v1:CronJob", "platform-training-cronjob")
    ops = only(plan, "kubernetes:batch/v1:CronJob", "platform-model-ops-cronjob")
    assert ops.parent.endswith("dex:k8s:ModelOps::" + ops.name.removesuffix("-cronjob"))
    assert ops.inputs["metadata"]["name"] == "model-ops"
    assert ops.inputs["metadata"]["namespace"] == "apps"
    spec = ops.inputs["spec"]
    assert spec["schedule"] == "30 6 * * *"
    assert spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "training"
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert c["command"] == ["python", "-m", "apps.training.ops", "daily"]
    assert "args" not in c
    t_pod = training.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (t,) = t_pod["containers"]
    assert "command" not in t  # training keeps the image's entrypoint
    # the training image (by digest once pushed: test_built_images_are_referenced_by_digest)
    assert c["image"] == t["image"]
    for key in ("securityContext", "resources", "volumeMounts"):
        assert c[key] == t[key], key
    for key in ("securityContext", "tolerations", "affinity", "volumes"):
        assert pod[key] == t_pod[key], key
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["tolerations"][0]["key"] == "dex.io/pool"  # the batch pool
    assert spec["jobTemplate"]["spec"] == {
        **training.inputs["spec"]["jobTemplate"]["spec"],
        "template": spec["jobTemplate"]["spec"]["template"],
    }  # same retries, deadline and TTL
    labels = spec["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "model-ops"  # what its logs and alert select
    # the training job's environment, and the raw layer: the API's prediction log
    env, t_env = env_of(c), env_of(t)
    assert env == {**t_env, "DEX_LAKE_RAW_URL": bucket_urls(plan)["raw"]}
    assert env["DEX_PUSHGATEWAY_URL"] == "http://pushgateway.observability.svc.cluster.local:9091"
    assert env["DEX_LAKE_URL"] == bucket_urls(plan)["gold"]
    # after the namespaces' policies and the service accounts, like training
    assert set(training.dependencies) <= set(ops.dependencies)
    # its alert reads this CronJob's kube-state-metrics
    (rule,) = [
        r
        for g in slo.rule_groups()
        for r in g["rules"]
        if r.get("alert") == "DexModelOpsNotSucceeding"
    ]
    assert 'namespace="apps",cronjob="model-ops"' in rule["expr"]


# -- wiring: each app's settings come from this stack's contracts ---------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_apps_are_wired_to_this_stacks_resources(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    urls = bucket_urls(plan)
    scheme = "s3://" if not stack.startswith("gcp") else "gs://"
    assert all(u.startswith(scheme) for u in urls.values())
    specs = {res.inputs["metadata"]["name"]: spec for res, spec in pod_specs(plan)}
    api = env_of(specs["api"]["containers"][0])
    assert api["DEX_API_LAKE_URL"] == urls["gold"]
    assert api["DEX_LAKE_GOLD_URL"] == urls["gold"]
    assert api["DEX_LAKE_RAW_URL"] == urls["raw"]  # the prediction log
    assert api["DEX_API_TRACKING_URI"] == "http://mlflow.mlflow.svc.cluster.local"
    assert api["DEX_API_REDIS_URL"] == {"secretKeyRef": {"name": "api-secrets", "key": "redis-url"}}
    if stack.endswith("prod"):
        assert api["DEX_API_AUTH_MODE"] == "jwks"
        assert api["DEX_API_JWKS_URL"].startswith("https://")
        assert "DEX_API_JWT_SECRET" not in api
    else:
        assert api["DEX_API_AUTH_MODE"] == "hs256"
        assert api["DEX_API_JWT_SECRET"]["secretKeyRef"]["name"] == "api-secrets"
    # tokens must name their issuer outside local development, on every stack
    assert api["DEX_API_JWT_ISSUER"].startswith("https://")
    # the rollout is explicit, and off on every shipped stack
    assert api["DEX_API_ROLLOUT"] == "off"
    assert float(api["DEX_API_CANARY_SHARE"]) == 0.0
    assert float(api["DEX_API_SHADOW_SHARE"]) == 1.0
    training = env_of(specs["training"]["containers"][0])
    assert training["DEX_LAKE_URL"] == urls["gold"]
    assert training["MLFLOW_TRACKING_URI"] == "http://mlflow.mlflow.svc.cluster.local"
    # no plaintext secret in any pod's env
    for spec in specs.values():
        for c in spec["containers"]:
            for e in c.get("env", []):
                assert "value" in e or "secretKeyRef" in e["valueFrom"], e
                assert not is_secret(e.get("value")), e

    airflow = release(plan, "airflow").inputs["values"]
    assert airflow["executor"] == "KubernetesExecutor"
    assert airflow["postgresql"]["enabled"] is False
    assert airflow["data"]["metadataSecretName"] == "airflow-metadata"
    assert airflow["config"]["logging"]["remote_base_log_folder"] == urls["airflow-logs"] + "/tasks"
    assert airflow["config"]["logging"]["remote_log_conn_id"] == (
        "aws_default" if scheme == "s3://" else "google_cloud_default"
    )
    task_env = {e["name"]: e["value"] for e in airflow["env"]}
    for layer in ("raw", "bronze", "silver", "gold"):
        assert task_env[f"DEX_LAKE_{layer.upper()}_URL"] == urls[layer]
    assert task_env["DEX_LAKE_URL"] == urls["silver"] + "/_pipeline"
    assert airflow["workers"]["serviceAccount"] == {"create": False, "name": "pipelines"}
    assert airflow["scheduler"]["serviceAccount"] == {"create": False, "name": "airflow"}
    assert airflow["createUserJob"]["defaultUser"]["password"] == "$(DEX_AIRFLOW_ADMIN_PASSWORD)"

    mlflow = release(plan, "mlflow").inputs["values"]
    assert mlflow["artifactRoot"]["proxiedArtifactStorage"] is True
    assert mlflow["artifactRoot"]["defaultArtifactsDestination"] == urls["mlflow"] + "/artifacts"
    assert mlflow["serviceAccount"] == {"create": False, "name": "mlflow"}
    assert mlflow["backendStore"]["existingDatabaseSecret"]["name"] == "mlflow-db"
    assert mlflow["backendStore"]["postgres"]["password"] == ""  # only by secret reference
    db = next(r for r in plan if r.type in ("dex:aws:Database", "dex:gcp:Database"))
    assert mlflow["backendStore"]["postgres"]["host"] == db.outputs["host"]
    assert mlflow["ingress"] == {"enabled": False}  # the Gateway serves it, with basic auth
    auth = only(plan, ENVOY + "SecurityPolicy", "platform-mlflow").inputs
    assert auth["metadata"]["namespace"] == "mlflow"
    assert auth["spec"] == {
        "targetRefs": [
            {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "mlflow"}
        ],
        "basicAuth": {"users": {"name": "mlflow-basic-auth"}},
    }


@pytest.mark.parametrize("stack", STACKS)
def test_service_accounts_carry_the_cloud_identity(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    identity = next(
        r for r in plan if r.type in ("dex:aws:WorkloadIdentity", "dex:gcp:WorkloadIdentity")
    )
    expected = identity.outputs["service_account_annotations"]
    accounts = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs
        for r in plan.of_type("kubernetes:core/v1:ServiceAccount")
        if r.inputs["metadata"]["namespace"] in base.NAMESPACES
    }
    assert set(accounts) == {
        ("mlflow", "mlflow"),
        ("airflow", "airflow"),
        ("airflow", "pipelines"),
        ("apps", "training"),
        ("apps", "api"),
    }
    for (_ns, name), inputs in accounts.items():
        assert inputs["metadata"]["annotations"] == expected[name]
        # only Airflow talks to the Kubernetes API (it launches the task pods)
        assert inputs["automountServiceAccountToken"] is (name == "airflow"), name
    if stack.startswith("gcp"):
        assert all("iam.gke.io/gcp-service-account" in a for a in expected.values())
    else:
        # EKS Pod Identity: no annotation; an association per (namespace, account) instead
        assert all(a == {} for a in expected.values())
        associations = {
            (r.inputs["namespace"], r.inputs["serviceAccount"])
            for r in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        }
        assert set(accounts) <= associations
    # every account waits for the binding that lets its pods assume their identity
    binding_types = ("aws:eks/podIdentityAssociation", "gcp:serviceaccount/iAMMember")
    bindings = {r.urn for r in plan if r.type.startswith(binding_types)}
    for res in plan.of_type("kubernetes:core/v1:ServiceAccount"):
        if res.inputs["metadata"]["namespace"] in base.NAMESPACES:
            assert bindings & set(res.dependencies), res.urn


# -- secrets --------------------------------------------------------------------------------


PLATFORM_SECRETS = {
    ("platform", "database-bootstrap"),
    ("mlflow", "mlflow-db"),
    ("mlflow", "mlflow-basic-auth"),
    ("airflow", "airflow-metadata"),
    ("airflow", "airflow-fernet-key"),
    ("airflow", "airflow-api-secret-key"),
    ("airflow", "airflow-jwt-secret"),
    ("airflow", "airflow-admin"),
    ("apps", "api-secrets"),
    ("observability", "grafana-admin"),
}


@pytest.mark.parametrize("stack", STACKS)
def test_platform_secrets_are_program_secrets_without_a_dynamic_provider(
    plans: dict[str, Plan], stack: str
) -> None:
    """The platform's own Secrets are written by the program, every value a Pulumi secret
    (encrypted in the state, masked in previews); nothing uses a dynamic provider, which the
    engine refuses under `disable-default-providers: ["*"]` (issue #14)."""
    plan = plans[stack]
    secrets = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r
        for r in plan.of_type("kubernetes:core/v1:Secret")
    }
    key = secrets.pop(("platform", "sealed-secrets-key"))
    assert set(secrets) == PLATFORM_SECRETS
    for res in secrets.values():
        assert is_secret(res.inputs["stringData"]), res.urn
        assert res.inputs["type"] == "Opaque"
    assert not plan.of_type("pulumi-python:dynamic:Resource")
    assert not plan.of_type("kubernetes:bitnami.com/v1alpha1:SealedSecret")
    # the sealing controller stays for the secrets a team keeps in git, with the stack's key
    assert key.inputs["metadata"]["labels"]["sealedsecrets.bitnami.com/sealed-secrets-key"] == (
        "active"
    )
    assert is_secret(key.inputs["stringData"])
    controller = release(plan, "sealed-secrets")
    assert key.urn in controller.dependencies
    assert controller.inputs["values"]["keyrenewperiod"] == "0"
    # the key is protected in prod: losing it loses every sealed secret
    assert only(plan, "tls:index/privateKey:PrivateKey").protect is stack.endswith("prod")
    assert "sealing_certificate" in plan.resources[0].outputs


# -- namespaces and network policies ----------------------------------------------------------


def test_namespaces_enforce_pod_security_and_deny_by_default(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    for ns in plan.of_type("kubernetes:core/v1:Namespace"):
        labels = ns.inputs["metadata"]["labels"]
        name = ns.inputs["metadata"]["name"]
        if name.startswith("arc-"):
            continue  # the CI runners' own (tests/unit/test_runners.py)
        assert labels["pod-security.kubernetes.io/enforce"] == base.NAMESPACES[name]
        assert labels["pod-security.kubernetes.io/enforce"] in ("restricted", "baseline")
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"
        assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert base.NAMESPACES["apps"] == "restricted"
    policies: dict[str, dict[str, Any]] = {}
    for r in plan.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy"):
        meta = r.inputs["metadata"]
        policies[f"{meta['namespace']}/{meta['name']}"] = r.inputs["spec"]
    for ns in base.NAMESPACES:
        deny = policies[f"{ns}/default-deny"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        dns = policies[f"{ns}/allow-dns"]["egress"][0]
        assert {p["port"] for p in dns["ports"]} == {53}

    def egress_ports(ns: str) -> set[int]:
        return {
            p["port"]
            for key, spec in policies.items()
            if key.startswith(f"{ns}/")
            for rule in spec.get("egress", [])
            for p in rule.get("ports", [])
        }

    assert 6379 in egress_ports("apps")
    assert 5432 not in egress_ports("apps")
    assert 5432 in egress_ports("mlflow")
    assert 6379 not in egress_ports("mlflow")
    assert 5432 in egress_ports("airflow")
    # the tracking server admits only the apps and Airflow (and the ingress), on 5000
    tracking = policies["mlflow/allow-tracking-clients"]["ingress"][0]
    allowed = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in tracking["from"]
    }
    assert allowed == {"apps", "airflow"}


EXTERNAL_INGRESS = {
    "allow-gateway-public": (gateway.PROXY_LABELS, set(gateway.PROXY_PORTS.values())),
    **{f"allow-webhook-{h.name}": (h.pods, {h.port}) for h in namespaces.WEBHOOKS},
}
"""The only policies that may admit addresses outside the cluster: name -> (the pods, ports)."""
OLD_ALLOW_WEBHOOKS = {
    "podSelector": {},
    "policyTypes": ["Ingress"],
    "ingress": [
        {
            "from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
            "ports": [{"port": p, "protocol": "TCP"} for p in (10250, 8080, 9443)],
        }
    ],
}
"""The `allow-webhooks` policy before it was narrowed: the internet on three ports of every pod
of `platform`."""


def policy_specs(plan: Plan) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"], r.inputs["spec"])
        for r in plan.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    ]


def open_ingress(specs: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """Ingress rules that admit addresses outside the cluster (an ipBlock peer, or no peer at
    all) more widely than the platform needs: outside EXTERNAL_INGRESS, on other pods than
    the policy is for, or on other ports."""
    problems = []
    for ns, name, spec in specs:
        for rule in spec.get("ingress") or []:
            peers = rule.get("from") or [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
            if not any("ipBlock" in peer for peer in peers):
                continue
            where = f"{ns}/{name}"
            if name not in EXTERNAL_INGRESS:
                problems.append(f"{where}: admits addresses outside the cluster")
                continue
            pods, ports = EXTERNAL_INGRESS[name]
            if (spec.get("podSelector") or {}).get("matchLabels") != pods:
                problems.append(f"{where}: selects {spec.get('podSelector')}, not {pods}")
            opened = {p.get("port") for p in rule.get("ports") or [{}]}
            if not opened <= ports:
                problems.append(f"{where}: opens {sorted(map(str, opened))}, not {sorted(ports)}")
    return problems


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_proxies_and_the_webhooks_admit_addresses_outside_the_cluster(
    plans: dict[str, Plan], stack: str
) -> None:
    specs = policy_specs(plans[stack])
    assert open_ingress(specs) == []
    names = {name for ns, name, _ in specs if ns == "platform"}
    assert set(EXTERNAL_INGRESS) <= names
    assert "allow-webhooks" not in names
    # the old policy (every pod of `platform`, three ports, from anywhere) is what it catches
    assert open_ingress([("platform", "allow-webhooks", OLD_ALLOW_WEBHOOKS)]) == [
        "platform/allow-webhooks: admits addresses outside the cluster"
    ]
    wide = {**OLD_ALLOW_WEBHOOKS, "podSelector": {}}
    assert open_ingress([("platform", "allow-webhook-cert-manager", wide)]) == [
        f"platform/allow-webhook-cert-manager: selects {{}}, not {namespaces.WEBHOOKS[0].pods}",
        "platform/allow-webhook-cert-manager: opens ['10250', '8080', '9443'], not [10250]",
    ]


@pytest.mark.parametrize("stack", ["prod", "gcp-prod"])
def test_each_webhook_admits_the_api_server_on_its_own_pods_and_port(
    plans: dict[str, Plan], stack: str
) -> None:
    """Evaluated with the first-deploy simulation's NetworkPolicy semantics: the API server
    (from its cloud's range: the GKE control plane's, EKS's VPC; or GKE's konnectivity agents)
    reaches each webhook's pods on their port, nothing else of `platform` on those ports, and
    no address outside that range reaches them at all."""
    from toolchain.first_deploy.reach import api_server_sources

    plan = plans[stack]
    policies, labels = first_deploy._policies(plan), first_deploy._namespace_labels(plan)
    bootstrap = Endpoint("platform", {"app.kubernetes.io/name": "database-bootstrap"})
    sources = api_server_sources(plan)
    addresses = [s for s in sources if isinstance(s, str)]
    assert addresses, sources
    for hook in namespaces.WEBHOOKS:
        pods = Endpoint("platform", hook.pods)
        for source in sources:
            assert first_deploy._allowed(
                policies, labels, pods, "Ingress", source, hook.port, "TCP"
            ), (hook, source)
            assert not first_deploy._allowed(
                policies, labels, bootstrap, "Ingress", source, hook.port, "TCP"
            ), hook
        assert not first_deploy._allowed(
            policies, labels, pods, "Ingress", "203.0.113.5", hook.port, "TCP"
        ), f"{hook.name}: admits an address outside the API server's range"
        others = {h.port for h in namespaces.WEBHOOKS} - {hook.port}
        for port in others:
            assert not first_deploy._allowed(
                policies, labels, pods, "Ingress", addresses[0], port, "TCP"
            ), (hook, port)


def test_webhooks_admit_only_the_api_servers_range_when_it_is_known() -> None:
    """Given the control plane's range, the webhooks admit it and the konnectivity agents,
    and no other address outside the cluster."""
    specs = dict(namespaces.network_policy_specs("platform", api_server_cidrs=("172.16.0.0/28",)))
    policies = {"platform": list(specs.values())}
    konnectivity = Endpoint("kube-system", {"k8s-app": "konnectivity-agent"})
    for hook in namespaces.WEBHOOKS:
        spec = specs[f"allow-webhook-{hook.name}"]
        assert spec["ingress"][0]["from"] == [
            namespaces.KONNECTIVITY_AGENTS,
            {"ipBlock": {"cidr": "172.16.0.0/28"}},
        ]
        pods = Endpoint("platform", hook.pods)
        allowed = functools.partial(first_deploy._allowed, policies, {}, pods, "Ingress")
        assert allowed("172.16.0.2", hook.port, "TCP")
        assert allowed(konnectivity, hook.port, "TCP")
        assert not allowed("203.0.113.7", hook.port, "TCP")
        assert not allowed(Endpoint("kube-system", {"k8s-app": "kube-dns"}), hook.port, "TCP")


# -- the Gateway and TLS ----------------------------------------------------------------------

HOSTS = {"api": "apps", "mlflow": "mlflow", "airflow": "airflow", "grafana": "observability"}
"""Each host the Gateway serves (host prefix -> the namespace serving it)."""


def gateway_objects(plan: Plan) -> list[Resource]:
    """Every Gateway API and Envoy Gateway object of a plan."""
    return [r for r in plan if r.type.startswith((GATEWAY_API, ENVOY))]


def test_tls_issuer_follows_the_config(plans: dict[str, Plan]) -> None:
    prod = {r.inputs["metadata"]["name"]: r.inputs for r in plans["prod"].of_type(
        "kubernetes:cert-manager.io/v1:ClusterIssuer")}  # fmt: skip
    assert set(prod) == {"dex"}
    acme = prod["dex"]["spec"]["acme"]
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme["email"] == "platform-team@example.com"
    # HTTP-01 through the Gateway's plain-HTTP listener (cert-manager's Gateway API solver)
    assert acme["solvers"] == [
        {
            "http01": {
                "gatewayHTTPRoute": {
                    "parentRefs": [
                        {
                            "group": "gateway.networking.k8s.io",
                            "kind": "Gateway",
                            "name": "dex",
                            "namespace": "platform",
                            "sectionName": "http",
                        }
                    ]
                }
            }
        }
    ]
    cert_manager = release(plans["prod"], "cert-manager").inputs["values"]
    assert cert_manager["config"] == {"gatewayAPI": {"enabled": True}}
    dev = {r.inputs["metadata"]["name"]: r.inputs for r in plans["dev"].of_type(
        "kubernetes:cert-manager.io/v1:ClusterIssuer")}  # fmt: skip
    assert set(dev) == {"dex", "dex-selfsigned-root"}
    assert dev["dex"]["spec"] == {"ca": {"secretName": "dex-ca"}}
    ca = only(plans["dev"], "kubernetes:cert-manager.io/v1:Certificate", "dex-ca").inputs["spec"]
    assert ca["isCA"] is True
    assert ca["issuerRef"]["name"] == "dex-selfsigned-root"


@pytest.mark.parametrize("stack", STACKS)
def test_every_exposed_service_is_https_only(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    domain = "dex.example.com" if stack.endswith("prod") else "dev.dex.example.com"
    # no Ingress anywhere; the charts' own ones are off
    assert not plan.of_type("kubernetes:networking.k8s.io/v1:Ingress")
    assert release(plan, "mlflow").inputs["values"]["ingress"] == {"enabled": False}
    assert release(plan, "airflow").inputs["values"]["ingress"] == {"apiServer": {"enabled": False}}
    kps = release(plan, "kube-prometheus-stack").inputs["values"]
    assert kps["grafana"]["ingress"] == {"enabled": False}
    eg = release(plan, "oci://docker.io/envoyproxy/gateway-helm")
    assert eg.inputs["namespace"] == "platform"
    assert eg.inputs["values"]["crds"] == {"enabled": True}  # the Gateway API CRDs with it

    gateway_class = only(plan, GATEWAY_API + "GatewayClass").inputs
    assert (
        gateway_class["spec"]["controllerName"] == "gateway.envoyproxy.io/gatewayclass-controller"
    )
    assert gateway_class["spec"]["parametersRef"]["kind"] == "EnvoyProxy"
    gateway = only(plan, GATEWAY_API + "Gateway").inputs
    assert (gateway["metadata"]["namespace"], gateway["metadata"]["name"]) == ("platform", "dex")
    listeners = {x["name"]: x for x in gateway["spec"]["listeners"]}
    assert set(listeners) == {"http", *(f"https-{h}" for h in HOSTS)}
    # plain HTTP admits only the Gateway's own namespace: the redirect and ACME's challenges
    http = listeners.pop("http")
    assert (http["port"], http["protocol"]) == (80, "HTTP")
    assert http["allowedRoutes"]["namespaces"] == {"from": "Same"}
    certificates = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in plan.of_type("kubernetes:cert-manager.io/v1:Certificate")
        if r.inputs["metadata"]["name"] != "dex-ca"
    }
    for host, namespace in HOSTS.items():
        https = listeners[f"https-{host}"]
        assert (https["port"], https["protocol"]) == (443, "HTTPS")
        assert https["hostname"] == f"{host}.{domain}"
        assert https["tls"] == {
            "mode": "Terminate",
            "certificateRefs": [{"group": "", "kind": "Secret", "name": f"{host}-tls"}],
        }
        # each HTTPS listener admits routes only from the namespace that serves its host
        assert https["allowedRoutes"]["namespaces"] == {
            "from": "Selector",
            "selector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        }
        cert = certificates.pop(f"{host}-tls")
        assert cert["metadata"]["namespace"] == "platform"  # beside the Gateway
        assert cert["spec"]["dnsNames"] == [f"{host}.{domain}"]
        assert cert["spec"]["issuerRef"] == {
            "name": "dex",
            "kind": "ClusterIssuer",
            "group": "cert-manager.io",
        }
    assert certificates == {}

    routes = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs["spec"]
        for r in plan.of_type(HTTP_ROUTE)
    }
    assert set(routes) == {("platform", "http-to-https"), *((ns, h) for h, ns in HOSTS.items())}
    # HTTP -> HTTPS: one rule, a 301 to https for every host (the ACME challenge's Exact path,
    # in cert-manager's own route, takes precedence over this PathPrefix /)
    redirect = routes.pop(("platform", "http-to-https"))
    assert redirect["parentRefs"][0]["sectionName"] == "http"
    assert sorted(redirect["hostnames"]) == sorted(f"{h}.{domain}" for h in HOSTS)
    assert redirect["rules"] == [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "filters": [
                {
                    "type": "RequestRedirect",
                    "requestRedirect": {"scheme": "https", "statusCode": 301},
                }
            ],
        }
    ]
    for (namespace, host), spec in routes.items():
        assert HOSTS[host] == namespace
        assert spec["parentRefs"] == [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "dex",
                "namespace": "platform",
                "sectionName": f"https-{host}",
            }
        ]
        assert spec["hostnames"] == [f"{host}.{domain}"]
        (rule,) = spec["rules"]
        # HSTS on every response of every HTTPS route
        assert {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [
            {"name": "Strict-Transport-Security", "value": "max-age=31536000; includeSubDomains"}
        ]}} in rule["filters"], host  # fmt: skip
        assert len(rule["backendRefs"]) == 1, host
    # TLS 1.2 at least, on the whole Gateway
    tls = only(plan, ENVOY + "ClientTrafficPolicy").inputs["spec"]
    assert tls == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "dex"}],
        "tls": {"minVersion": "1.2"},
    }
    # HA proxies in prod
    proxy = only(plan, ENVOY + "EnvoyProxy").inputs["spec"]["provider"]["kubernetes"]
    prod = stack.endswith("prod")
    assert proxy["envoyDeployment"]["replicas"] == (2 if prod else 1)
    assert ("envoyPDB" in proxy) is prod
    outputs = plan.resources[0].outputs
    for host in HOSTS:
        assert outputs[f"{host}_url"] == f"https://{host}.{domain}"
    if prod:
        assert is_secret(outputs["kubeconfig"])
        assert set(outputs["bucket_names"]) >= {"raw", "gold"}
        assert set(outputs["registry_urls"]) == {"api", "pipelines", "training"}


def test_backends_in_the_routes_match_the_workloads() -> None:
    """The route and policy tables name the ports the workloads really use."""
    assert gateway.BACKENDS["api"].pod_port == apps.API_PORT
    assert gateway.BACKENDS["mlflow"].pod_port == 5000  # the tracking clients' port too
    assert mlflow.SERVICE_URL == "http://mlflow.mlflow.svc.cluster.local"
    assert {b.host: b.namespace for b in gateway.BACKENDS.values()} == HOSTS


def test_mlflow_basic_auth_reads_an_htpasswd_from_the_generated_password() -> None:
    """Envoy's basic auth reads `.htpasswd` lines hashed `{SHA}` (base64 SHA-1: Envoy Gateway
    v1.9.0 api/v1alpha1/basic_auth_types.go). The Secret holds the line of the generated
    password, and the stack output `mlflow_password` is that password."""
    # `htpasswd -nbs foo bar`, the format's own reference
    assert gateway.htpasswd_line("foo", "bar") == "foo:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00="
    captured: dict[str, Any] = {}

    class Known(DexMocks):
        def new_resource(self, args):  # type: ignore[no-untyped-def]
            rid, outputs = super().new_resource(args)
            if args.typ == "random:index/randomPassword:RandomPassword" and args.name.endswith(
                "mlflow-basic-auth"
            ):
                outputs["result"] = "s3cret-generated"
            if args.typ == "kubernetes:core/v1:Secret" and args.name.endswith(
                "mlflow-mlflow-basic-auth"
            ):
                data = args.inputs["stringData"]  # a secret: the wire form wraps its value
                captured.update(data.get("value", data))
            return rid, outputs

    doc = synthesize("dev", mocks=Known("dev"))
    assert captured == {".htpasswd": gateway.htpasswd_line("dex", "s3cret-generated")}
    assert is_secret(doc["deployment"]["resources"][0]["outputs"]["mlflow_password"])


# -- the Gateway's network paths ----------------------------------------------------------------

PROXY = Endpoint("platform", gateway.PROXY_LABELS)


@pytest.mark.parametrize("stack", ["prod", "gcp-dev"])
def test_the_gateway_reaches_each_backend_and_only_them(plans: dict[str, Plan], stack: str) -> None:
    """Evaluated with the first-deploy simulation's NetworkPolicy semantics, both ends."""
    plan = plans[stack]
    policies, labels = first_deploy._policies(plan), first_deploy._namespace_labels(plan)

    def allowed(side: Endpoint, direction: str, peer: Endpoint | str, port: int) -> bool:
        return first_deploy._allowed(policies, labels, side, direction, peer, port, "TCP")

    for backend in gateway.BACKENDS.values():
        target = Endpoint(backend.namespace, backend.pods or {})
        assert allowed(PROXY, "Egress", target, backend.pod_port), backend
        assert allowed(target, "Ingress", PROXY, backend.pod_port), backend
        # not another port, and not from another pod of `platform`
        assert not allowed(target, "Ingress", PROXY, backend.pod_port + 1), backend
        other = Endpoint("platform", {"app.kubernetes.io/name": "cert-manager"})
        assert not allowed(target, "Ingress", other, backend.pod_port), backend
    # the load balancer reaches the proxies where Envoy listens for 80/443 (10080/10443)
    for port in (10080, 10443):
        assert allowed(PROXY, "Ingress", "203.0.113.7", port)
    assert not allowed(PROXY, "Ingress", "203.0.113.7", 19000)  # the admin port
    bootstrap = Endpoint("platform", {"app.kubernetes.io/name": "database-bootstrap"})
    assert not allowed(bootstrap, "Ingress", "203.0.113.7", 10443)
    # the proxies get their configuration from the controller
    controller = Endpoint("platform", gateway.CONTROLLER_LABELS)
    assert allowed(PROXY, "Egress", controller, gateway.XDS_PORT)
    assert allowed(controller, "Ingress", PROXY, gateway.XDS_PORT)
    names = {r.inputs["metadata"]["name"] for r in plan.of_type(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy")}  # fmt: skip
    assert not {"allow-public-ingress", "allow-ingress-to-backends"} & names
    assert "allow-from-ingress-controller" not in names


# -- creation order: everything of the Gateway API after the chart that installs its CRDs -------


@pytest.mark.parametrize("stack", STACKS)
def test_gateway_objects_wait_for_envoy_gateway(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    graph = first_deploy.Graph(plan)
    eg = release(plan, "oci://docker.io/envoyproxy/gateway-helm").urn
    objects = gateway_objects(plan)
    assert len(objects) == 11  # class, proxy, gateway, 5 routes, 3 policies
    for res in objects:
        assert graph.waits_for(res.urn, [eg]), res.urn
    # cert-manager watches Gateway API kinds: it starts after their CRDs exist
    assert graph.waits_for(release(plan, "cert-manager").urn, [eg])


def _doc(plan: Plan) -> dict[str, Any]:
    return {
        "version": 3,
        "deployment": {"resources": [json.loads(json.dumps(r.raw)) for r in plan]},
    }


def test_first_deploy_finds_a_route_before_its_crd_and_a_chart_without_crds(
    plans: dict[str, Plan],
) -> None:
    plan = plans["dev"]
    eg = release(plan, "oci://docker.io/envoyproxy/gateway-helm").urn
    doc = _doc(plan)
    for raw in doc["deployment"]["resources"]:
        if raw["urn"].endswith("platform-api-route"):
            raw["dependencies"] = [d for d in raw["dependencies"] if d != eg]
            # and nothing it waits for waits for the release either
            raw["dependencies"] = [d for d in raw["dependencies"] if "platform-api" in d]
            raw["propertyDependencies"] = {}
    found = [str(f) for f in first_deploy.creation_order(parse_plan(doc, "dev"))]
    assert any("platform-api-route" in f and "without waiting for its CRD" in f for f in found)
    # the chart's `crds` subchart off: nothing in the plan installs the Gateway API's CRDs
    doc = _doc(plan)
    for raw in doc["deployment"]["resources"]:
        if raw["urn"] == eg:
            raw["inputs"]["values"]["crds"] = {"enabled": False}
    found = [str(f) for f in first_deploy.creation_order(parse_plan(doc, "dev"))]
    missing = [f for f in found if "nothing in the plan installs its CRD" in f]
    assert len(missing) == 11, missing


# -- the hand check of the Gateway API and Envoy Gateway CRDs -----------------------------------
#
# No CRD schema of these kinds is vendored (toolchain/validate.py `UNVENDORED_CRDS`): the fields
# this program writes were read from the CRDs envoyproxy/gateway ships at tag v1.9.0:
#   charts/gateway-helm/charts/crds/crds/gatewayapi-crds.yaml  (Gateway API bundle v1.6.1,
#     experimental channel; GatewayClass, Gateway, HTTPRoute: version v1, served + storage)
#   charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_{envoyproxies,
#     clienttrafficpolicies,securitypolicies,backendtrafficpolicies}.yaml (v1alpha1)
# Field names, `required` lists, enums and patterns are the CRDs'; every level this program
# writes is closed (`additionalProperties: false`): the API server's structural pruning would
# silently drop a misspelled field. Only the branches the program writes are spelled out.


def _closed(properties: Mapping[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(required),
        "additionalProperties": False,
    }


def _array(items: Mapping[str, Any], max_items: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "array", "items": dict(items)}
    if max_items is not None:
        out["maxItems"] = max_items
    return out


ANY: dict[str, Any] = {}
STRING = {"type": "string"}
INT = {"type": "integer"}
DNS_NAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECTION_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
METADATA = _closed({"name": STRING, "namespace": STRING, "labels": {"type": "object"}}, ("name",))
PARENT_REF = _closed(
    {
        "group": STRING,
        "kind": STRING,
        "name": {"type": "string", "minLength": 1, "maxLength": 253},
        "namespace": STRING,
        "sectionName": {"type": "string", "pattern": SECTION_NAME},
        "port": INT,
    },
    ("name",),
)
POLICY_TARGET = _closed(
    {"group": STRING, "kind": STRING, "name": STRING, "sectionName": STRING},
    ("group", "kind", "name"),
)
RESOURCES = {"type": "object"}  # a core ResourceRequirements (schema-checked by Kubernetes)
SPREAD = _array({"type": "object"})  # core TopologySpreadConstraints
HEADER = _closed({"name": STRING, "value": STRING}, ("name", "value"))
ALLOWED_ROUTES = _closed(
    {
        "namespaces": _closed(
            {
                "from": {"enum": ["All", "Selector", "Same"]},
                "selector": _closed(
                    {
                        "matchLabels": {"type": "object"},
                        "matchExpressions": _array({"type": "object"}),
                    }
                ),
            }
        ),
        "kinds": _array(_closed({"group": STRING, "kind": STRING}, ("kind",))),
    }
)


def _kind(api_version: str, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return _closed(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


GW = "gateway.networking.k8s.io/v1"
EG = "gateway.envoyproxy.io/v1alpha1"
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "GatewayClass": _kind(
        GW,
        "GatewayClass",
        _closed(
            {
                "controllerName": {"type": "string", "minLength": 1, "maxLength": 253},
                "description": STRING,
                "parametersRef": _closed(
                    {"group": STRING, "kind": STRING, "name": STRING, "namespace": STRING},
                    ("group", "kind", "name"),
                ),
            },
            ("controllerName",),
        ),
    ),
    "Gateway": _kind(
        GW,
        "Gateway",
        _closed(
            {
                "gatewayClassName": {"type": "string", "minLength": 1},
                "listeners": _array(
                    _closed(
                        {
                            "name": {"type": "string", "pattern": SECTION_NAME},
                            "hostname": {"type": "string", "pattern": DNS_NAME},
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                            "protocol": STRING,
                            "tls": _closed(
                                {
                                    "mode": {"enum": ["Terminate", "Passthrough"]},
                                    "certificateRefs": _array(
                                        _closed(
                                            {
                                                "group": STRING,
                                                "kind": STRING,
                                                "name": STRING,
                                                "namespace": STRING,
                                            },
                                            ("name",),
                                        ),
                                        64,
                                    ),
                                    "options": {"type": "object"},
                                }
                            ),
                            "allowedRoutes": ALLOWED_ROUTES,
                        },
                        ("name", "port", "protocol"),
                    ),
                    64,
                ),
                "infrastructure": {"type": "object"},
            },
            ("gatewayClassName", "listeners"),
        ),
    ),
    "HTTPRoute": _kind(
        GW,
        "HTTPRoute",
        _closed(
            {
                "parentRefs": _array(PARENT_REF, 32),
                "hostnames": _array({"type": "string", "pattern": DNS_NAME}, 16),
                "rules": _array(
                    _closed(
                        {
                            "name": STRING,
                            "matches": _array(
                                _closed(
                                    {
                                        "path": _closed(
                                            {
                                                "type": {
                                                    "enum": [
                                                        "Exact",
                                                        "PathPrefix",
                                                        "RegularExpression",
                                                    ]
                                                },
                                                "value": STRING,
                                            }
                                        )
                                    }
                                ),
                                64,
                            ),
                            "filters": _array(
                                _closed(
                                    {
                                        "type": {
                                            "enum": [
                                                "RequestHeaderModifier",
                                                "ResponseHeaderModifier",
                                                "RequestMirror",
                                                "RequestRedirect",
                                                "URLRewrite",
                                                "ExtensionRef",
                                                "CORS",
                                                "ExternalAuth",
                                            ]
                                        },
                                        "requestRedirect": _closed(
                                            {
                                                "scheme": {"enum": ["http", "https"]},
                                                "statusCode": {"enum": [301, 302, 303, 307, 308]},
                                                "hostname": STRING,
                                                "port": INT,
                                            }
                                        ),
                                        "responseHeaderModifier": _closed(
                                            {
                                                "set": _array(HEADER, 16),
                                                "add": _array(HEADER, 16),
                                                "remove": _array(STRING, 16),
                                            }
                                        ),
                                    },
                                    ("type",),
                                ),
                                16,
                            ),
                            "backendRefs": _array(
                                _closed(
                                    {
                                        "group": STRING,
                                        "kind": STRING,
                                        "name": STRING,
                                        "namespace": STRING,
                                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                        "weight": INT,
                                    },
                                    ("name",),
                                ),
                                16,
                            ),
                        }
                    ),
                    16,
                ),
            }
        ),
    ),
    "EnvoyProxy": _kind(
        EG,
        "EnvoyProxy",
        _closed(
            {
                "provider": _closed(
                    {
                        "type": {"enum": ["Kubernetes", "Host"]},
                        "kubernetes": _closed(
                            {
                                "envoyDeployment": _closed(
                                    {
                                        "replicas": INT,
                                        "container": _closed({"resources": RESOURCES}),
                                        "pod": _closed({"topologySpreadConstraints": SPREAD}),
                                    }
                                ),
                                "envoyPDB": _closed(
                                    {"minAvailable": {"type": ["integer", "string"]}}
                                ),
                                "envoyService": _closed(
                                    {"externalTrafficPolicy": {"enum": ["Local", "Cluster"]}}
                                ),
                            }
                        ),
                    },
                    ("type",),
                )
            }
        ),
    ),
    "ClientTrafficPolicy": _kind(
        EG,
        "ClientTrafficPolicy",
        _closed(
            {
                "targetRefs": _array(POLICY_TARGET),
                "tls": _closed(
                    {
                        "minVersion": {"enum": ["Auto", "1.0", "1.1", "1.2", "1.3"]},
                        "maxVersion": {"enum": ["Auto", "1.0", "1.1", "1.2", "1.3"]},
                    }
                ),
            }
        ),
    ),
    "SecurityPolicy": _kind(
        EG,
        "SecurityPolicy",
        _closed(
            {
                "targetRefs": _array(POLICY_TARGET),
                "basicAuth": _closed(
                    {
                        "users": _closed(
                            {"group": STRING, "kind": STRING, "name": STRING, "namespace": STRING},
                            ("name",),
                        ),
                        "forwardUsernameHeader": STRING,
                    },
                    ("users",),
                ),
            }
        ),
    ),
    "BackendTrafficPolicy": _kind(
        EG,
        "BackendTrafficPolicy",
        _closed(
            {
                "targetRefs": _array(POLICY_TARGET),
                "requestBuffer": _closed(
                    {
                        "limit": {
                            "type": ["integer", "string"],
                            "pattern": r"^[1-9]+[0-9]*([EPTGMK]i|[EPTGMk])?$",
                        }
                    }
                ),
            }
        ),
    ),
}


FILTER_FIELDS = {
    "RequestRedirect": "requestRedirect",
    "ResponseHeaderModifier": "responseHeaderModifier",
}


def _cel_problems(obj: Mapping[str, Any]) -> list[str]:
    """The CRDs' CEL rules the fields this program writes can break."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    problems = []
    if kind == "Gateway":
        for listener in spec.get("listeners", []):
            tls = listener.get("tls")
            if listener.get("protocol") in ("HTTPS", "TLS") and not tls:
                problems.append(f"listener {listener.get('name')}: tls must be set for HTTPS/TLS")
            if (
                tls
                and tls.get("mode", "Terminate") == "Terminate"
                and not (tls.get("certificateRefs") or tls.get("options"))
            ):
                problems.append(f"listener {listener.get('name')}: certificateRefs or options")
        names = [x.get("name") for x in spec.get("listeners", [])]
        if len(names) != len(set(names)):
            problems.append("listener names must be unique")
    if kind == "HTTPRoute":
        for rule in spec.get("rules", []):
            types = [f.get("type") for f in rule.get("filters", [])]
            if "RequestRedirect" in types and rule.get("backendRefs"):
                problems.append("RequestRedirect filter must not be used together with backendRefs")
            for f in rule.get("filters", []):
                key = FILTER_FIELDS.get(f.get("type"))
                if key and key not in f:
                    problems.append(f"filter.{key} must be specified for {f.get('type')}")
            for ref in rule.get("backendRefs", []):
                if ref.get("kind", "Service") == "Service" and "port" not in ref:
                    problems.append("Must have port for Service reference")
    if kind in ("ClientTrafficPolicy", "SecurityPolicy", "BackendTrafficPolicy"):
        for ref in spec.get("targetRefs", []):
            if ref.get("group") != "gateway.networking.k8s.io":
                problems.append(f"targetRefs[*].group {ref.get('group')!r}")
            allowed = ("Gateway",) if kind == "ClientTrafficPolicy" else ("Gateway", "HTTPRoute")
            if ref.get("kind") not in allowed:
                problems.append(f"targetRefs[*].kind {ref.get('kind')!r}")
    return problems


def crd_problems(obj: Mapping[str, Any]) -> list[str]:
    schema = CRD_SCHEMAS[str(obj["kind"])]
    found = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(obj)
    ]
    return sorted(found) + _cel_problems(obj)


def _obj(res: Resource) -> dict[str, Any]:
    keep = ("apiVersion", "kind", "metadata", "spec")
    obj: dict[str, Any] = json.loads(json.dumps({k: v for k, v in res.inputs.items() if k in keep}))
    return obj


@pytest.mark.parametrize("stack", STACKS)
def test_gateway_objects_pass_the_hand_check(plans: dict[str, Plan], stack: str) -> None:
    objects = gateway_objects(plans[stack])
    assert {r.inputs["kind"] for r in objects} == set(CRD_SCHEMAS)
    for res in objects:
        assert crd_problems(_obj(res)) == [], res.urn


def _by_kind(plan: Plan, kind: str, name_part: str = "") -> dict[str, Any]:
    (res,) = [r for r in gateway_objects(plan) if r.inputs["kind"] == kind and name_part in r.name]
    return _obj(res)


@pytest.mark.parametrize(
    ("kind", "name_part", "change", "needle"),
    [
        ("Gateway", "", lambda s: s["listeners"][1].update(allowedRoute={}), "allowedRoute"),
        (
            "Gateway",
            "",
            lambda s: s["listeners"][1]["tls"].update(certificateRef=[]),
            "certificateRef",
        ),
        (
            "Gateway",
            "",
            lambda s: s["listeners"][1]["tls"].pop("certificateRefs"),
            "certificateRefs",
        ),
        ("Gateway", "", lambda s: s.update(gatewayClass="dex"), "gatewayClass"),
        (
            "Gateway",
            "",
            lambda s: s["listeners"][0]["allowedRoutes"]["namespaces"].update(
                {"from": "Everywhere"}
            ),
            "Everywhere",
        ),
        (
            "HTTPRoute",
            "redirect",
            lambda s: s["rules"][0]["filters"][0].update(type="Redirect"),
            "Redirect",
        ),
        (
            "HTTPRoute",
            "redirect",
            lambda s: s["rules"][0]["filters"][0]["requestRedirect"].update(statusCode=300),
            "300",
        ),
        (
            "HTTPRoute",
            "redirect",
            lambda s: s["rules"][0].update(backendRefs=[{"name": "x", "port": 80}]),
            "backendRefs",
        ),
        ("HTTPRoute", "api", lambda s: s["parentRefs"][0].update(section="https-api"), "section"),
        (
            "HTTPRoute",
            "api",
            lambda s: s["rules"][0]["filters"][0].update(responseHeaderModifiers={}),
            "responseHeaderModifiers",
        ),
        ("HTTPRoute", "api", lambda s: s["rules"][0]["backendRefs"][0].pop("port"), "port"),
        ("ClientTrafficPolicy", "", lambda s: s["tls"].update(minimumVersion="1.2"), "minimum"),
        ("ClientTrafficPolicy", "", lambda s: s["tls"].update(minVersion="TLSv1.2"), "TLSv1.2"),
        ("SecurityPolicy", "", lambda s: s.update(basicAuthentication={}), "basicAuthentication"),
        (
            "SecurityPolicy",
            "",
            lambda s: s["basicAuth"].update(user=s["basicAuth"].pop("users")),
            "user",
        ),
        ("BackendTrafficPolicy", "", lambda s: s["requestBuffer"].update(limit="1MB"), "1MB"),
        ("BackendTrafficPolicy", "", lambda s: s.update(requestBuffering={}), "requestBuffering"),
        (
            "EnvoyProxy",
            "",
            lambda s: s["provider"]["kubernetes"].update(envoyDeploy={}),
            "envoyDeploy",
        ),
        ("GatewayClass", "", lambda s: s.update(controller="x"), "controller"),
    ],
)
def test_hand_check_catches_a_typo(
    plans: dict[str, Plan], kind: str, name_part: str, change: Any, needle: str
) -> None:
    obj = _by_kind(plans["prod"], kind, name_part)
    assert crd_problems(obj) == []
    change(obj["spec"])
    problems = crd_problems(obj)
    assert any(needle in p for p in problems), problems


ENVOY_GATEWAY_VALUES = {
    "crds": {"enabled": True},
    "deployment": {
        "replicas": 1,
        "envoyGateway": {"resources": {}},
        "pod": {"topologySpreadConstraints": []},
    },
    "podDisruptionBudget": {"minAvailable": 0},
}
"""The keys of envoyproxy/gateway v1.9.0 charts/gateway-helm/values.tmpl.yaml this program sets,
with their defaults (the chart ships no values schema; its values are not vendored)."""


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_envoy_gateway_values_are_the_charts(plans: dict[str, Plan], stack: str) -> None:
    values = release(plans[stack], "oci://docker.io/envoyproxy/gateway-helm").inputs["values"]
    assert unknown_keys(ENVOY_GATEWAY_VALUES, values) == []
    assert values["deployment"]["replicas"] == (2 if stack == "prod" else 1)
    assert values["podDisruptionBudget"]["minAvailable"] == (1 if stack == "prod" else 0)
    typo = {**values, "deployment": {**values["deployment"], "replica": 2}}
    assert unknown_keys(ENVOY_GATEWAY_VALUES, typo) == [
        "deployment.replica: not a value of the chart; did you mean 'replicas'?"
    ]


def test_validate_plan_lists_the_gateway_kinds_and_still_reports_unlisted_ones(
    plans: dict[str, Plan],
) -> None:
    for kind in CRD_SCHEMAS:
        group = GW if kind in ("GatewayClass", "Gateway", "HTTPRoute") else EG
        assert UNVENDORED_CRDS[(group, kind)] == "v1.9.0", kind
    assert UNVENDORED_CHARTS["oci://docker.io/envoyproxy/gateway-helm"] == "v1.9.0"

    def unlisted_kind(inputs: dict[str, Any]) -> None:
        inputs["kind"] = "GRPCRoute"

    def other_version(inputs: dict[str, Any]) -> None:
        inputs["version"] = "v1.8.3"

    findings = validate_plan(_mutated(plans["prod"], "platform-api-route", unlisted_kind))
    assert [(f.check, "GRPCRoute" in f.message) for f in findings] == [("schema", True)]
    findings = validate_plan(_mutated(plans["prod"], "gateway-envoy-gateway", other_version))
    assert [(f.check, "v1.8.3" in f.message) for f in findings] == [("helm", True)]


# -- observability ----------------------------------------------------------------------------


def test_operator_crds_are_applied_server_side_before_the_chart(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    crds = only(plan, "kubernetes:yaml/v2:ConfigGroup")
    files = crds.inputs["files"]
    assert len(files) == 10
    assert all(
        "/prometheus-operator/v0.93.1/example/prometheus-operator-crd-full/" in f for f in files
    )
    kps = release(plan, "kube-prometheus-stack")
    assert kps.inputs["skipCrds"] is True
    assert kps.inputs["values"]["crds"] == {"enabled": False}
    assert crds.urn in kps.dependencies
    # the chart's appVersion is the operator release the CRDs come from
    import yaml

    chart = yaml.safe_load(
        (ROOT / "toolchain/schemas/kube-prometheus-stack/Chart.yaml").read_text()
    )
    assert chart["appVersion"] == "v0.93.1"
    for rule in plan.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule"):
        assert crds.urn in rule.dependencies


def test_dashboards_are_provisioned_from_the_repository(plans: dict[str, Plan]) -> None:
    boards = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in plans["prod"].of_type("kubernetes:core/v1:ConfigMap")
        if r.inputs["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    }
    assert set(boards) == {"dex-dashboard-api", "dex-dashboard-pipelines", "dex-dashboard-models"}
    for stem, board in dashboards().items():
        shipped = json.loads(boards[f"dex-dashboard-{stem}"]["data"][f"dex-{stem}.json"])
        assert shipped == board
        assert board["uid"] == f"dex-{stem}"


def _exprs() -> list[tuple[str, str]]:
    out = []
    for stem, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{stem}/{panel['title']}", target["expr"]))
    return out


def test_dashboard_queries_only_use_metrics_that_exist() -> None:
    """Every metric a panel reads is exported by the apps or recorded by the rules."""
    import re

    sources = "\n".join(p.read_text() for p in (ROOT / "apps").rglob("*.py"))
    recorded = {r["record"] for g in slo.rule_groups() for r in g["rules"] if "record" in r}
    for where, expr in _exprs():
        for metric in re.findall(r"\b(dex[_:][a-z0-9_:]+)", expr):
            base_name = re.sub(r"_(bucket|count|sum)$", "", metric)
            assert metric in recorded or f'"{base_name}"' in sources, (where, metric)


def test_alerts_have_severity_and_runbooks() -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    alerts = [r for g in slo.rule_groups() for r in g["rules"] if "alert" in r]
    assert len(alerts) == 2 * len(slo.SLOS) + 2 + 3
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        url = alert["labels"]["runbook_url"]
        anchor = url.split("#", 1)[1]
        assert url.startswith(slo.RUNBOOK_BASE)
        assert f'<a id="{anchor}"></a>' in runbooks, anchor
        assert alert["annotations"]["summary"]


def test_platform_follows_the_config(synth) -> None:  # type: ignore[no-untyped-def]
    plan = synth(
        "dev",
        platform={
            "domain": "ml.acme.io",
            "tls_issuer": "acme",
            "acme_email": "ops@acme.io",
            "api_min_replicas": 3,
            "api_max_replicas": 7,
            "training_schedule": "30 2 * * 1",
            "api_rollout": "canary",
            "api_canary_share": 0.2,
            "api_shadow_share": 0.5,
            "model_ops_schedule": "15 7 * * *",
            "model_mae_alert_celsius": 2.5,
        },
    )
    outputs = plan.resources[0].outputs
    assert outputs["api_url"] == "https://api.ml.acme.io"
    issuers = plan.of_type("kubernetes:cert-manager.io/v1:ClusterIssuer")
    assert [r.inputs["spec"]["acme"]["email"] for r in issuers] == ["ops@acme.io"]
    hpa = only(plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 7)
    pdb = only(plan, "kubernetes:policy/v1:PodDisruptionBudget", "platform-api").inputs["spec"]
    assert pdb["minAvailable"] == 1
    cron = only(plan, "kubernetes:batch/v1:CronJob", "training-cronjob")
    assert cron.inputs["spec"]["schedule"] == "30 2 * * 1"
    ops = only(plan, "kubernetes:batch/v1:CronJob", "model-ops-cronjob")
    assert ops.inputs["spec"]["schedule"] == "15 7 * * *"
    deployment = only(plan, "kubernetes:apps/v1:Deployment", "platform-api")
    api = env_of(deployment.inputs["spec"]["template"]["spec"]["containers"][0])
    assert api["DEX_API_ROLLOUT"] == "canary"
    assert float(api["DEX_API_CANARY_SHARE"]) == 0.2
    assert float(api["DEX_API_SHADOW_SHARE"]) == 0.5
    rule = only(plan, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "dex-model-rollout")
    (mae,) = [
        r
        for r in rule.inputs["spec"]["groups"][0]["rules"]
        if r.get("alert") == "DexChampionOnlineMaeHigh"
    ]
    assert '(dex_model_online_mae{role="champion"}) > 2.5 ' in mae["expr"]
    assert validate_plan(plan) == []


@pytest.mark.parametrize(
    ("platform", "key"),
    [
        ({"api_rollout": "canary"}, "dex:platform.api_canary_share"),
        ({"api_rollout": "shadow", "api_shadow_share": 0}, "dex:platform.api_shadow_share"),
        ({"api_canary_share": 2}, "dex:platform.api_canary_share"),
        ({"api_rollout": "blue-green"}, "dex:platform.api_rollout"),
        ({"model_ops_schedule": "daily at 6"}, "dex:platform.model_ops_schedule"),
        ({"model_mae_alert_celsius": -1}, "dex:platform.model_mae_alert_celsius"),
    ],
)
def test_a_bad_rollout_knob_stops_the_program_naming_the_key(
    synth: Any, platform: dict[str, Any], key: str
) -> None:
    with pytest.raises(Exception, match=re.escape(key)):
        synth("dev", platform=platform)


def _mutated(plan: Plan, urn_part: str, change: Any) -> Plan:
    doc = plan.document()
    for raw in doc["deployment"]["resources"]:
        if urn_part in raw["urn"]:
            raw["inputs"] = json.loads(json.dumps(raw["inputs"]))
            change(raw["inputs"])
    return parse_plan(doc, plan.stack)


def test_validation_catches_mistakes_in_the_platforms_objects(plans: dict[str, Plan]) -> None:
    """The checks that pass on the shipped plans do fail on a misspelled field."""

    def typo_in_pod(inputs: dict[str, Any]) -> None:
        inputs["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}

    def typo_in_values(inputs: dict[str, Any]) -> None:
        inputs["values"]["backendStore"]["postgres"]["hots"] = "db"

    def typo_in_rule(inputs: dict[str, Any]) -> None:
        inputs["spec"]["groups"][0]["rules"][0]["recrd"] = "x"

    def wrong_chart_version(inputs: dict[str, Any]) -> None:
        inputs["version"] = "1.25.1"

    cases = [
        ("platform-api-deployment", typo_in_pod, "readinesProbe"),
        ("platform-mlflow-release", typo_in_values, "hots"),
        ("rules-dex-slo-api-latency", typo_in_rule, "recrd"),
        ("observability-tempo", wrong_chart_version, "1.25.1"),
    ]
    for part, change, word in cases:
        findings = validate_plan(_mutated(plans["prod"], part, change))
        assert len(findings) == 1, (part, findings)
        assert word in str(findings[0]), findings


@pytest.mark.parametrize("stack", ["dev", "gcp-prod"])
def test_prebuilt_images_are_looked_up_not_built(synth: Any, stack: str) -> None:
    """`image_source: registry` (CI's in-network deploys, which have no Docker daemon): no
    docker-build at all; each workload runs the digest the registry holds for the app's
    source tag (pushed before by `dex images push`)."""
    platform = {"ci_github_config_url": "https://github.com/dataenginex/dex"}
    plan = synth(stack, platform={**platform, "image_source": "registry"})
    assert not [r for r in plan if r.type.startswith(("docker-build:", "pulumi:providers:docker"))]
    api = only(plan, "kubernetes:apps/v1:Deployment", "platform-api")
    image = api.inputs["spec"]["template"]["spec"]["containers"][0]["image"]
    repo, digest = image.split("@")
    assert repo.endswith("/api")
    assert digest.startswith("sha256:")
    assert len(digest) == len("sha256:") + 64
    airflow = release(plan, "airflow").inputs["values"]["images"]["airflow"]
    assert airflow["tag"] == images.source_tag("pipelines") + "@" + airflow["digest"]


def test_an_image_not_pushed_yet_shows_in_a_preview_and_stops_an_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PR that changes an app previews with tags nobody has pushed: the preview shows the
    tag (and warns); `pulumi up` refuses, naming the command that pushes it."""
    import pulumi

    warned: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warned.append(msg))
    assert images.pushed_ref("api", "r/api", "src-1", "sha256:" + "a" * 64) == (
        "r/api@sha256:" + "a" * 64
    )
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: True)
    assert images.pushed_ref("api", "r/api", "src-1", "") == "r/api:src-1"
    assert "dex images push" in warned[0]
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: False)
    with pytest.raises(ValueError, match=r"r/api:src-1 is not in the registry"):
        images.pushed_ref("api", "r/api", "src-1", "")


@pytest.mark.parametrize("stack", STACKS)
def test_the_api_starts_with_the_environment_its_deployment_gives_it(
    plans: dict[str, Plan], stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings the API validates at start, fed the Deployment's own environment (a long
    random stand-in for each value that comes from a Secret): a missing or refused variable
    fails here, not in a crash-looping pod."""
    from apps.api.settings import ApiSettings

    (deployment,) = [
        r
        for r in plans[stack].of_type("kubernetes:apps/v1:Deployment")
        if r.name.endswith("api-deployment")
    ]
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    for item in container["env"]:
        value = item.get("value")
        if value is None:  # from a Secret
            value = "s3cr3t-" + "x" * 40 if "REDIS" not in item["name"] else "rediss://:t@h:6379/0"
        monkeypatch.setenv(item["name"], str(value))
    settings = ApiSettings()
    assert settings.environment == stack.removeprefix("gcp-")
    assert settings.jwt_issuer
    assert settings.rollout == "off"


def test_the_api_starts_in_canary_with_the_shares_its_deployment_gives_it(
    synth: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollout knobs reach the API as settings it accepts: a canary of a fifth of the
    callers, with a sampled shadow share kept for a later switch."""
    from apps.api.settings import ApiSettings

    plan = synth(
        "prod",
        platform={"api_rollout": "canary", "api_canary_share": 0.2, "api_shadow_share": 0.3},
    )
    deployment = only(plan, "kubernetes:apps/v1:Deployment", "platform-api")
    for item in deployment.inputs["spec"]["template"]["spec"]["containers"][0]["env"]:
        value = item.get("value")
        if value is None:  # from a Secret
            value = "s3cr3t-" + "x" * 40 if "REDIS" not in item["name"] else "rediss://:t@h:6379/0"
        monkeypatch.setenv(item["name"], str(value))
    settings = ApiSettings()
    assert (settings.rollout, settings.canary_share, settings.shadow_share) == ("canary", 0.2, 0.3)


def _reads(settings: Any) -> set[str]:
    """The variables a pydantic-settings class reads: its prefix and each field's name."""
    prefix = settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in settings.model_fields}


def _unread(plan: Plan) -> dict[str, set[str]]:
    """Per pod, the `DEX_*` variables it gets that its app does not read."""
    from apps.api.settings import ApiSettings
    from apps.training.settings import ModelOpsSettings, TrainingSettings
    from contracts.lake import LAKE_URL_ENV, LAYERS, layer_url_env

    lake_vars = {LAKE_URL_ENV, *(layer_url_env(layer) for layer in LAYERS)}
    # read outside a settings class: the git commit (train.py), the Pushgateway (metrics.push)
    explicit = {"DEX_GIT_COMMIT", "DEX_PUSHGATEWAY_URL"}
    reads = {
        "api": _reads(ApiSettings) | lake_vars,
        "training": _reads(TrainingSettings) | lake_vars | explicit,
        "model-ops": _reads(ModelOpsSettings) | _reads(TrainingSettings) | lake_vars | explicit,
    }
    specs = {res.inputs["metadata"]["name"]: spec for res, spec in pod_specs(plan)}
    out = {}
    for name, known in reads.items():
        pod = {v for v in env_of(specs[name]["containers"][0]) if v.startswith("DEX_")}
        assert pod, name
        out[name] = pod - known
    return out


@pytest.mark.parametrize("stack", STACKS)
def test_every_variable_a_pod_gets_is_one_its_app_reads(plans: dict[str, Plan], stack: str) -> None:
    """The settings ignore variables they do not know (`extra="ignore"`), so a field renamed
    on one side would be dropped silently in the pod: every `DEX_*` variable the API,
    training and model-ops pods get is a field of their app's settings, a lake variable of
    `contracts.lake` (the names the lake reader reads) or one read explicitly."""
    assert _unread(plans[stack]) == {"api": set(), "training": set(), "model-ops": set()}


def test_the_variable_check_catches_a_renamed_setting(
    plans: dict[str, Plan], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A setting the platform sets, renamed in the app: the check names the orphan."""
    from apps.api.settings import ApiSettings

    fields = dict(ApiSettings.model_fields)
    fields["canary_fraction"] = fields.pop("canary_share")
    monkeypatch.setattr(ApiSettings, "model_fields", fields)
    assert _unread(plans["dev"])["api"] == {"DEX_API_CANARY_SHARE"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_bootstrap_job_runs_as_a_high_uid_and_writes_nothing(
    plans: dict[str, Plan], stack: str
) -> None:
    """psql runs as uid/gid 10070, not the image's `postgres` (70): it needs no passwd entry
    and no writable HOME, because the script writes no file and psql reads no rc file and keeps
    no history in a non-interactive run."""
    from components.k8s.database import BOOTSTRAP_UID, bootstrap_script

    (job,) = [
        r
        for r in plans[stack].of_type("kubernetes:batch/v1:Job")
        if r.inputs["metadata"]["name"] == "database-bootstrap"
    ]
    pod = job.inputs["spec"]["template"]["spec"]
    ctx = pod["securityContext"]
    assert BOOTSTRAP_UID >= 10000
    assert ctx["runAsUser"] == ctx["runAsGroup"] == ctx["fsGroup"] == BOOTSTRAP_UID
    (container,) = pod["containers"]
    assert "runAsUser" not in container["securityContext"]  # no override back to 70
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert all(m.get("readOnly") for m in container["volumeMounts"])  # nothing writable
    script = bootstrap_script(["airflow", "mlflow"])
    for line in script.splitlines():
        if line.startswith("psql"):
            assert "--no-psqlrc" in line, line
            assert " -f " in line, line
        assert ">" not in line, line  # no redirection into a file


@pytest.mark.parametrize("stack", STACKS)
def test_a_changed_bootstrap_script_runs_a_new_job(plans: dict[str, Plan], stack: str) -> None:
    """The script lives in a ConfigMap; the Job's pod template carries its hash, so a changed
    script changes the Job's spec and `replace_on_changes` runs it again."""
    from components.k8s.database import SCRIPT_HASH, script_digest

    plan = plans[stack]
    (config_map,) = [
        r
        for r in plan.of_type("kubernetes:core/v1:ConfigMap")
        if r.inputs["metadata"]["name"] == "database-bootstrap"
    ]
    (job,) = [
        r
        for r in plan.of_type("kubernetes:batch/v1:Job")
        if r.inputs["metadata"]["name"] == "database-bootstrap"
    ]
    annotations = job.inputs["spec"]["template"]["metadata"]["annotations"]
    assert annotations[SCRIPT_HASH] == script_digest(dict(config_map.inputs["data"]))
    changed = {**config_map.inputs["data"], "bootstrap.sql": "SELECT 1;\n"}
    assert script_digest(changed) != annotations[SCRIPT_HASH]
    assert "spec" in job.raw.get("replaceOnChanges", [])
