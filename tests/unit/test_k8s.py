"""components/k8s on all four stacks: what lands on the cluster, its hardening and its wiring.

Every Kubernetes object and custom resource of the plans is validated strictly and every
Helm release's values against the chart (`test_validate.py::test_shipped_plans_validate`);
this file asserts what the platform must *be*: secure workloads, the contracts wired into
each app, sealed secrets, network policies, and the plan's stack outputs.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.k8s import base, images, slo
from components.k8s.observability import dashboards
from components.k8s.secrets import _Sealer, seal
from stacks.mocks import DexMocks
from stacks.plan import UNKNOWN, Plan, Resource, is_secret, parse_plan
from stacks.synth import synthesize
from stacks.validate import validate_plan
from tests.conftest import ROOT, STACKS, only

pytestmark = pytest.mark.unit

POD_SPECS = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CHARTS = {
    "airflow": "1.21.0",
    "mlflow": "1.11.5",
    "cert-manager": "v1.21.1",
    "ingress-nginx": "4.15.1",
    "sealed-secrets": "2.18.5",
    "kube-prometheus-stack": "88.5.3",
    "loki": "18.11.0",
    "tempo": "1.25.1",
    "alloy": "0.12.5",
}


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
    assert charts == CHARTS
    namespaces = {
        r.inputs["metadata"]["name"] for r in plan.of_type("kubernetes:core/v1:Namespace")
    }
    assert namespaces == set(base.NAMESPACES)
    components = {r.type for r in plan if r.type.startswith("dex:k8s:")}
    assert components == {
        "dex:k8s:Platform",
        "dex:k8s:Namespaces",
        "dex:k8s:SealedSecrets",
        "dex:k8s:IngressTls",
        "dex:k8s:Observability",
        "dex:k8s:DatabaseBootstrap",
        "dex:k8s:Mlflow",
        "dex:k8s:Airflow",
        "dex:k8s:AppImages",
        "dex:k8s:ServingApi",
        "dex:k8s:Training",
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
        assert {(r.type, r.name) for r in aws if r.type.startswith(("kubernetes:", "dex:k8s"))} == {
            (r.type, r.name) for r in gcp if r.type.startswith(("kubernetes:", "dex:k8s"))
        }


# -- workload hardening ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_workload_is_hardened(plans: dict[str, Plan], stack: str) -> None:
    seen = set()
    for res, spec in pod_specs(plans[stack]):
        seen.add(res.inputs["metadata"]["name"])
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True, res.urn
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
    assert seen == {"api", "training", "database-bootstrap", "pushgateway"}


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
        assert inputs["dockerfile"]["location"] == f"apps/{app}/Dockerfile"
        assert inputs["tags"] == [f"{repo}/{app}:src-{images.source_digest(app)[:16]}"]
        assert all(":latest" not in t for t in inputs["tags"])
        assert is_secret(inputs["registries"][0]["password"])


def test_image_tags_follow_the_sources(tmp_path: Path) -> None:
    for rel in ("apps/__init__.py", "requirements.lock"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x\n")
    for app in ("api", "training", "pipelines"):
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
    (tmp_path / "apps" / "pipelines" / "main.py").write_text("changed")  # shared by all three
    after = {app: images.source_digest(app, tmp_path) for app in ("api", "training", "pipelines")}
    assert all(after[a] != before[a] for a in after)


@pytest.mark.parametrize("stack", STACKS)
def test_serving_api_runs_like_a_service(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    deployment = only(plan, "kubernetes:apps/v1:Deployment", "platform-api")
    spec = deployment.inputs["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz?only=model"
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
    ingress = only(plan, "kubernetes:networking.k8s.io/v1:Ingress", "platform-api")
    domain = "dex.example.com" if prod else "dev.dex.example.com"
    assert ingress.inputs["spec"]["tls"] == [{"hosts": [f"api.{domain}"], "secretName": "api-tls"}]
    assert ingress.inputs["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "dex"
    monitor = only(plan, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "platform-api")
    assert monitor.inputs["spec"]["endpoints"][0]["path"] == "/metrics"
    cron = only(plan, "kubernetes:batch/v1:CronJob").inputs["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == "training"


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
    auth = mlflow["ingress"]["annotations"]
    assert auth["nginx.ingress.kubernetes.io/auth-type"] == "basic"


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
    key = (
        "eks.amazonaws.com/role-arn"
        if not stack.startswith("gcp")
        else "iam.gke.io/gcp-service-account"
    )
    assert all(key in a for a in expected.values())


# -- secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_platform_secrets_reach_the_cluster_only_sealed(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    sealed = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"])
        for r in plan.of_type("kubernetes:bitnami.com/v1alpha1:SealedSecret")
    }
    assert sealed == {
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
    # the only plain Secret is the controller's key, installed before the controller
    key = only(plan, "kubernetes:core/v1:Secret")
    assert key.inputs["metadata"]["labels"]["sealedsecrets.bitnami.com/sealed-secrets-key"] == (
        "active"
    )
    assert is_secret(key.inputs["stringData"])
    controller = release(plan, "sealed-secrets")
    assert key.urn in controller.dependencies
    assert controller.inputs["values"]["keyrenewperiod"] == "0"
    # the key is protected in prod: losing it loses every sealed secret
    assert only(plan, "tls:index/privateKey:PrivateKey").protect is stack.endswith("prod")
    # sealed values are inputs of the sealer only as secrets
    for r in plan.of_type("pulumi-python:dynamic:Resource"):
        assert is_secret(r.inputs["data"]), r.urn
    assert "sealing_certificate" in plan.resources[0].outputs


def _unseal(private_key: Any, label: str, sealed: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    blob = base64.b64decode(sealed)
    (size,) = struct.unpack(">H", blob[:2])
    session = private_key.decrypt(
        blob[2 : 2 + size],
        padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA256()),
            algorithm=hashes.SHA256(),
            label=label.encode(),
        ),
    )
    return bytes(AESGCM(session).decrypt(b"\x00" * 12, blob[2 + size :], None))


@pytest.fixture(scope="module")
def sealing_key() -> tuple[Any, str]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealed-secret")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def test_seal_is_what_the_controller_opens(sealing_key: tuple[Any, str]) -> None:
    key, cert = sealing_key
    sealed = seal(cert, "apps", "api-secrets", b"rediss://:t0ken@host:6379/0")
    assert _unseal(key, "apps/api-secrets", sealed) == b"rediss://:t0ken@host:6379/0"
    # strict scope: the label binds it to namespace/name; elsewhere it does not open
    with pytest.raises(ValueError, match="Decryption failed"):
        _unseal(key, "apps/other", sealed)
    # a fresh session key each time
    assert seal(cert, "apps", "api-secrets", b"x") != seal(cert, "apps", "api-secrets", b"x")


def test_sealer_reseals_only_on_change(sealing_key: tuple[Any, str]) -> None:
    key, cert = sealing_key
    sealer = _Sealer()
    props = {"certificate": cert, "namespace": "mlflow", "name": "mlflow-db", "data": {"a": "1"}}
    created = sealer.create(props)
    assert created.id == "mlflow/mlflow-db"
    assert _unseal(key, "mlflow/mlflow-db", created.outs["encrypted"]["a"]) == b"1"
    same = sealer.diff("id", created.outs, dict(props))
    assert same.changes is False
    changed = sealer.diff("id", created.outs, {**props, "data": {"a": "2"}})
    assert changed.changes is True
    assert not changed.replaces
    moved = sealer.diff("id", created.outs, {**props, "name": "other"})
    assert moved.replaces == ["name"]
    updated = sealer.update("id", created.outs, {**props, "data": {"a": "2", "b": "3"}})
    assert {
        k: _unseal(key, "mlflow/mlflow-db", v) for k, v in updated.outs["encrypted"].items()
    } == {
        "a": b"2",
        "b": b"3",
    }
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ec_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = dt.datetime.now(dt.UTC)
    ec_cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(ec_key.public_key()).serial_number(2).not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1)).sign(ec_key, hashes.SHA256())
    )  # fmt: skip
    with pytest.raises(ValueError, match="RSA"):
        seal(ec_cert.public_bytes(serialization.Encoding.PEM).decode(), "a", "b", b"x")


# -- namespaces and network policies ----------------------------------------------------------


def test_namespaces_enforce_pod_security_and_deny_by_default(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    for ns in plan.of_type("kubernetes:core/v1:Namespace"):
        labels = ns.inputs["metadata"]["labels"]
        name = ns.inputs["metadata"]["name"]
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


# -- ingress and TLS --------------------------------------------------------------------------


def test_tls_issuer_follows_the_config(plans: dict[str, Plan]) -> None:
    prod = {r.inputs["metadata"]["name"]: r.inputs for r in plans["prod"].of_type(
        "kubernetes:cert-manager.io/v1:ClusterIssuer")}  # fmt: skip
    assert set(prod) == {"dex"}
    acme = prod["dex"]["spec"]["acme"]
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme["email"] == "platform-team@example.com"
    assert acme["solvers"][0]["http01"]["ingress"]["ingressClassName"] == "nginx"
    dev = {r.inputs["metadata"]["name"]: r.inputs for r in plans["dev"].of_type(
        "kubernetes:cert-manager.io/v1:ClusterIssuer")}  # fmt: skip
    assert set(dev) == {"dex", "dex-selfsigned-root"}
    assert dev["dex"]["spec"] == {"ca": {"secretName": "dex-ca"}}
    ca = only(plans["dev"], "kubernetes:cert-manager.io/v1:Certificate").inputs["spec"]
    assert ca["isCA"] is True
    assert ca["issuerRef"]["name"] == "dex-selfsigned-root"


def test_every_exposed_service_is_https_only(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    hosts = {}
    for chart in ("mlflow", "kube-prometheus-stack", "airflow"):
        values = release(plan, chart).inputs["values"]
        ingress = values.get("ingress") or values["grafana"]["ingress"]
        if chart == "airflow":
            ingress = ingress["apiServer"]
            assert ingress["hosts"][0]["tls"]["enabled"] is True
            hosts[chart] = ingress["hosts"][0]["name"]
        else:
            assert ingress["tls"], chart
        assert ingress["annotations"]["cert-manager.io/cluster-issuer"] == "dex", chart
        assert ingress["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    nginx = release(plan, "ingress-nginx").inputs["values"]["controller"]["config"]
    assert nginx["ssl-protocols"] == "TLSv1.2 TLSv1.3"
    assert nginx["hsts"] == "true"
    assert hosts["airflow"] == "airflow.dex.example.com"
    outputs = plan.resources[0].outputs
    assert outputs["api_url"] == "https://api.dex.example.com"
    assert outputs["mlflow_url"] == "https://mlflow.dex.example.com"
    assert outputs["airflow_url"] == "https://airflow.dex.example.com"
    assert outputs["grafana_url"] == "https://grafana.dex.example.com"
    assert is_secret(outputs["kubeconfig"])
    assert set(outputs["bucket_names"]) >= {"raw", "gold"}
    assert set(outputs["registry_urls"]) == {"api", "pipelines", "training"}


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

    chart = yaml.safe_load((ROOT / "stacks/schemas/kube-prometheus-stack/Chart.yaml").read_text())
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
            for target in panel["targets"]:
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
    assert len(alerts) == 2 * len(slo.SLOS) + 2
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
    assert only(plan, "kubernetes:batch/v1:CronJob").inputs["spec"]["schedule"] == "30 2 * * 1"
    assert validate_plan(plan) == []


def _mutated(plan: Plan, urn_part: str, change: Any) -> Plan:
    doc = {"version": 3, "deployment": {"resources": [dict(r.raw) for r in plan]}}
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
        inputs["version"] = "1.25.0"

    cases = [
        ("platform-api-deployment", typo_in_pod, "readinesProbe"),
        ("platform-mlflow-release", typo_in_values, "hots"),
        ("rules-dex-slo-api-latency", typo_in_rule, "recrd"),
        ("observability-tempo", wrong_chart_version, "1.25.0"),
    ]
    for part, change, word in cases:
        findings = validate_plan(_mutated(plans["prod"], part, change))
        assert len(findings) == 1, (part, findings)
        assert word in str(findings[0]), findings
