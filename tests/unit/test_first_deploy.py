"""The first-deploy simulation (toolchain/first_deploy/): every shipped plan passes every
check, and each check fails on a copy of a plan (or a program) with the defect it is for.

Each injected defect is one that a real first `pulumi up` would hit and the mock engine
accepts (issue #14): a default provider the stack disables, a build context resolved from
the wrong folder, a chart rendering a ServiceMonitor before its CRD, a volume claim with no
default StorageClass, releases racing node creation, an identity binding before its pool,
a Job before its Secret, a NetworkPolicy that blocks a needed port, no policy enforcement, a
verifying client without its CA, and an API whose readiness needs a model on day 0.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contracts.deployment import Plan, parse_plan
from stacks.stackfiles import read_stack_file
from tests.conftest import STACKS
from toolchain import first_deploy
from toolchain.first_deploy import Finding, check_plan

pytestmark = pytest.mark.unit

Doc = dict[str, Any]


def _invokes(doc: Doc) -> list[dict[str, str]]:
    return [{"token": t, "provider": p} for t, p in doc["dex"]["invokes"]]


def check(doc: Doc, stack: str, project_dir: Path | None = None, **kw: Any) -> list[Finding]:
    plan = parse_plan(doc, stack)
    config = read_stack_file(stack).config
    if project_dir is not None:
        kw["project_dir"] = project_dir
    return check_plan(plan, config, invokes=_invokes(doc), **kw)


def resources(doc: Doc) -> list[dict[str, Any]]:
    return doc["deployment"]["resources"]  # type: ignore[no-any-return]


def one(doc: Doc, type_: str, name_part: str = "") -> dict[str, Any]:
    found = [
        r for r in resources(doc) if r["type"] == type_ and name_part in r["urn"].rsplit("::")[-1]
    ]
    assert len(found) == 1, [r["urn"] for r in found]
    return found[0]


def urn_of(doc: Doc, type_: str, name_part: str = "") -> str:
    return str(one(doc, type_, name_part)["urn"])


def drop_dependency(res: dict[str, Any], gone: Callable[[str], bool]) -> None:
    res["dependencies"] = [d for d in res.get("dependencies", []) if not gone(d)]
    res["propertyDependencies"] = {
        k: [d for d in v if not gone(d)] for k, v in res.get("propertyDependencies", {}).items()
    }


def messages(findings: list[Finding], check_name: str) -> list[str]:
    return [f"{f.urn.rsplit('::', 1)[-1]}: {f.message}" for f in findings if f.check == check_name]


@pytest.fixture
def doc(plan_docs: dict[str, Doc]) -> Callable[[str], Doc]:
    return lambda stack: copy.deepcopy(plan_docs[stack])


# -- every shipped plan ------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_plan_passes_every_first_deploy_check(
    plan_docs: dict[str, Doc], stack: str
) -> None:
    assert [str(f) for f in check(plan_docs[stack], stack)] == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_plan_records_every_invoke_with_its_provider(
    plan_docs: dict[str, Doc], stack: str
) -> None:
    invokes = _invokes(plan_docs[stack])
    assert invokes, "the program makes invokes (zones, identities, tokens): they are recorded"
    assert all(call["provider"] for call in invokes)


# -- engine rules ------------------------------------------------------------------------------


def test_a_resource_on_a_disabled_default_provider_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    # what the sealing dynamic resources were: no provider, package pulumi-python
    resources(d).append(
        {
            "urn": "urn:pulumi:dev::dex::pulumi-python:dynamic:Resource::sealed",
            "type": "pulumi-python:dynamic:Resource",
            "custom": True,
            "inputs": {},
            "outputs": {},
        }
    )
    found = messages(check(d, "dev"), "engine")
    assert found == [
        "sealed: uses the default `pulumi-python` provider, which "
        "`pulumi:disable-default-providers: ['*']` denies: registration fails, even in preview"
    ]


def test_a_resource_that_lost_its_explicit_provider_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("gcp-dev")
    bucket = next(r for r in resources(d) if r["type"] == "gcp:storage/bucket:Bucket")
    del bucket["provider"]
    assert any("default `gcp` provider" in m for m in messages(check(d, "gcp-dev"), "engine"))


def test_an_invoke_on_a_default_provider_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    d["dex"]["invokes"].append(["command:local:run", ""])
    found = messages(check(d, "dev"), "engine")
    assert any("invoke `command:local:run` uses the default `command` provider" in m for m in found)


def test_default_providers_allowed_by_the_stack_are_not_findings(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    resources(d).append(
        {"urn": "urn:x::dyn", "type": "pulumi-python:dynamic:Resource", "custom": True}
    )
    plan = parse_plan(d, "dev")
    assert first_deploy.engine_rules(plan, {"pulumi:disable-default-providers": ["aws"]}) == []
    assert first_deploy.engine_rules(plan, {"pulumi:disable-default-providers": '["*"]'}) != []


# -- plugin paths ------------------------------------------------------------------------------


def test_a_context_resolved_from_the_project_root_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    image = one(d, "docker-build:index:Image", "images-api")
    image["inputs"]["context"]["location"] = "."
    image["inputs"]["dockerfile"]["location"] = "apps/api/Dockerfile"
    found = messages(check(d, "dev"), "paths")
    assert len(found) == 1
    assert "Dockerfile 'apps/api/Dockerfile' is no file seen from" in found[0]
    assert found[0].endswith("/stacks")


def test_paths_follow_the_projects_main_folder(doc: Callable[[str], Doc], tmp_path: Path) -> None:
    """The same plan checked against a project whose `main` is its root: `..` then points
    outside it and the check says so."""
    (tmp_path / "Pulumi.yaml").write_text("name: dex\nruntime: python\n")
    plan = parse_plan(doc("dev"), "dev")
    found = first_deploy.plugin_paths(plan, tmp_path)
    assert found
    assert all(f.check == "paths" for f in found)


def test_building_during_preview_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("gcp-dev")
    one(d, "docker-build:index:Image", "images-training")["inputs"]["buildOnPreview"] = True
    assert any("buildOnPreview" in m for m in messages(check(d, "gcp-dev"), "paths"))


# -- creation order ----------------------------------------------------------------------------


def _release(d: Doc, chart: str) -> dict[str, Any]:
    found = [
        r
        for r in resources(d)
        if r["type"] == first_deploy.RELEASE and r["inputs"].get("chart") == chart
    ]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("chart", ["sealed-secrets", "cert-manager", "mlflow"])
def test_a_chart_rendering_a_servicemonitor_before_the_crds_is_found(
    doc: Callable[[str], Doc], chart: str
) -> None:
    d = doc("dev")
    crds = urn_of(d, first_deploy.CONFIG_GROUP, "operator-crds")
    # what the engine sees when nothing orders the release after the CRDs
    for res in resources(d):
        if res["urn"] != crds:
            drop_dependency(res, lambda u: u == crds)
    found = messages(check(d, "dev"), "order")
    assert any(
        f"renders ({chart} " in m and "ServiceMonitor without waiting for its CRD" in m
        for m in found
    ), found


def test_turning_a_chart_feature_on_asks_for_its_crd(doc: Callable[[str], Doc]) -> None:
    """The gates come from the chart's templates: Loki's ServiceMonitor is off by default,
    so an unordered Loki passes; turned on in the values, the same Loki is a finding."""
    d = doc("dev")
    crds = urn_of(d, first_deploy.CONFIG_GROUP, "operator-crds")
    for res in resources(d):
        if res["urn"] != crds:
            drop_dependency(res, lambda u: u == crds)

    def loki_findings() -> list[str]:
        return [m for m in messages(check(d, "dev"), "order") if "(loki " in m]

    assert loki_findings() == []
    loki = _release(d, "loki")
    loki["inputs"]["values"].setdefault("monitoring", {})["serviceMonitor"] = {"enabled": True}
    assert len(loki_findings()) == 1


def test_a_custom_resource_without_any_crd_source_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    resources(d).append(
        {
            # a kind no chart of the plan installs (the Gateway API's come with Envoy Gateway)
            "urn": "urn:pulumi:dev::dex::kubernetes:traefik.io/v1alpha1:IngressRoute::route",
            "type": "kubernetes:traefik.io/v1alpha1:IngressRoute",
            "custom": True,
            "inputs": {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "IngressRoute",
                "metadata": {"name": "api", "namespace": "apps"},
            },
        }
    )
    assert any(
        "nothing in the plan installs its CRD" in m for m in messages(check(d, "dev"), "order")
    )


def test_cert_manager_without_its_crds_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    _release(d, "cert-manager")["inputs"]["values"]["crds"]["enabled"] = False
    found = messages(check(d, "dev"), "order")
    assert found
    assert all("nothing in the plan installs its CRD" in m for m in found)
    assert any("cert-manager.io ClusterIssuer" in m for m in found)


def test_volume_claims_without_a_default_storage_class_are_found(
    doc: Callable[[str], Doc],
) -> None:
    d = doc("prod")
    sc = urn_of(d, first_deploy.STORAGE_CLASS)
    d["deployment"]["resources"] = [r for r in resources(d) if r["urn"] != sc]
    for res in resources(d):
        drop_dependency(res, lambda u: u == sc)
    found = messages(check(d, "prod"), "order")
    claimants = {m.split(":", 1)[0] for m in found if "no default StorageClass" in m}
    assert claimants == {
        "dex-prod-platform-airflow-release",
        "dex-prod-platform-observability-kube-prometheus-stack",
        "dex-prod-platform-observability-loki",
        "dex-prod-platform-observability-tempo",
    }


def test_a_claim_before_the_storage_class_exists_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    sc = urn_of(d, first_deploy.STORAGE_CLASS)
    drop_dependency(_release(d, "loki"), lambda u: u == sc)
    found = messages(check(d, "dev"), "order")
    assert found == [
        "dex-dev-platform-observability-loki: renders a volume claim (loki "
        "templates/single-binary/statefulset.yaml) before the default StorageClass exists"
    ]


def test_gke_needs_no_storage_class_of_ours(plan_docs: dict[str, Doc]) -> None:
    d = plan_docs["gcp-dev"]
    assert not [r for r in resources(d) if r["type"] == first_deploy.STORAGE_CLASS]


@pytest.mark.parametrize("stack", ["dev", "gcp-prod"])
def test_releases_racing_node_creation_are_found(doc: Callable[[str], Doc], stack: str) -> None:
    d = doc(stack)
    provider = one(d, "pulumi:providers:kubernetes")
    capacity = {r["urn"] for r in resources(d) if r["type"] in first_deploy.NODE_CAPACITY}
    addons = {r["urn"] for r in resources(d) if r["type"] == first_deploy.EKS_ADDON}
    drop_dependency(provider, lambda u: u in capacity or u in addons)
    found = messages(check(d, stack), "order")
    assert any(
        "airflow-release: runs pods but does not wait for any node group" in m for m in found
    )
    if stack == "dev":
        assert any(
            "does not wait for the coredns, kube-proxy, vpc-cni add-on(s)" in m for m in found
        )


def test_a_workload_identity_binding_before_the_cluster_is_found(
    doc: Callable[[str], Doc],
) -> None:
    d = doc("gcp-dev")
    clusters = {r["urn"] for r in resources(d) if r["type"] in first_deploy.CLUSTERS}
    members = [
        r
        for r in resources(d)
        if r["type"].startswith("gcp:serviceaccount/iAM")
        and r["inputs"].get("role") == "roles/iam.workloadIdentityUser"
    ]
    assert members
    drop_dependency(members[0], lambda u: u in clusters)
    found = messages(check(d, "gcp-dev"), "order")
    assert any("Identity Pool does not exist" in m for m in found)


@pytest.mark.parametrize("stack", ["dev", "gcp-dev"])
def test_a_service_account_before_its_binding_is_found(
    doc: Callable[[str], Doc], stack: str
) -> None:
    d = doc(stack)
    sa = one(d, "kubernetes:core/v1:ServiceAccount", "sa-api")
    binding_types = ("aws:eks/podIdentityAssociation", "gcp:serviceaccount/iAM")
    bindings = {r["urn"] for r in resources(d) if r["type"].startswith(binding_types)}
    drop_dependency(sa, lambda u: u in bindings)
    found = messages(check(d, stack), "order")
    assert any("sa-api: its pods may start before their cloud identity binding" in m for m in found)


def test_a_job_before_the_secret_it_mounts_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    secret = urn_of(d, "kubernetes:core/v1:Secret", "platform-database-bootstrap")
    for res in resources(d):
        drop_dependency(res, lambda u: u == secret)
    assert messages(check(d, "dev"), "order") == [
        "dex-dev-platform-database-job: mounts Secret platform/database-bootstrap without "
        "waiting for it"
    ]


def test_a_release_before_a_secret_its_values_name_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("gcp-dev")
    secret = urn_of(d, "kubernetes:core/v1:Secret", "airflow-airflow-metadata")
    for res in resources(d):
        drop_dependency(res, lambda u: u == secret)
    assert any(
        "name Secret airflow/airflow-metadata without waiting" in m
        for m in messages(check(d, "gcp-dev"), "order")
    )


def test_a_pod_mounting_a_secret_nothing_creates_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    d["deployment"]["resources"] = [
        r
        for r in resources(d)
        if "platform-database-bootstrap" not in r["urn"].rsplit("::")[-1]
        or r["type"] != "kubernetes:core/v1:Secret"
    ]
    assert any(
        "mounts Secret platform/database-bootstrap, which nothing in the plan creates" in m
        for m in messages(check(d, "dev"), "order")
    )


def test_waves_put_the_network_before_the_cluster_before_the_platform(
    plans: dict[str, Plan],
) -> None:
    waves = first_deploy.Graph(plans["dev"]).waves()
    wave_of = {r.type: i for i, wave in enumerate(waves) for r in wave}
    assert wave_of["aws:ec2/vpc:Vpc"] < wave_of["aws:eks/cluster:Cluster"]
    assert wave_of["aws:eks/cluster:Cluster"] < wave_of["aws:eks/nodeGroup:NodeGroup"]
    assert wave_of["aws:eks/nodeGroup:NodeGroup"] < wave_of["pulumi:providers:kubernetes"]
    assert wave_of["pulumi:providers:kubernetes"] < wave_of[first_deploy.CONFIG_GROUP]
    assert wave_of[first_deploy.CONFIG_GROUP] < wave_of["kubernetes:apps/v1:Deployment"]
    # every custom resource in exactly one wave, and each after all it waits for
    placed = [r.urn for wave in waves for r in wave]
    assert len(placed) == len(set(placed))
    index = {
        u: wave_of_urn for wave_of_urn, wave in enumerate(waves) for u in (r.urn for r in wave)
    }
    graph = first_deploy.Graph(plans["dev"])
    for urn, i in index.items():
        assert all(index[d] < i for d in graph.prereqs[urn] if d in index)


# -- reachability ------------------------------------------------------------------------------


def _drop_policy(d: Doc, namespace: str, policy: str) -> None:
    d["deployment"]["resources"] = [
        r
        for r in resources(d)
        if not (
            r["type"] == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
            and r["inputs"]["metadata"]
            == {**r["inputs"]["metadata"], "name": policy, "namespace": namespace}
        )
    ]


def test_the_bootstrap_job_blocked_from_postgres_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    _drop_policy(d, "platform", "allow-bootstrap-database-out")
    assert messages(check(d, "dev"), "reach") == [
        "platform: bootstrap Job -> Postgres: egress to port 5432/TCP is not allowed from "
        "namespace platform"
    ]


def test_a_cache_on_another_port_than_the_policy_allows_is_found(
    doc: Callable[[str], Doc],
) -> None:
    """Memorystore with TLS listens on 6378: a policy written for 6379 blocks the API."""
    d = doc("gcp-dev")
    cache = next(r for r in resources(d) if r["type"] == "dex:gcp:Cache")
    cache["outputs"]["port"] = 6380
    assert messages(check(d, "gcp-dev"), "reach") == [
        "apps: API -> cache: egress to port 6380/TCP is not allowed from namespace apps"
    ]


def test_mlflow_refusing_its_clients_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("prod")
    _drop_policy(d, "mlflow", "allow-tracking-clients")
    found = messages(check(d, "prod"), "reach")
    assert (
        "mlflow: API -> MLflow: ingress on port 5000/TCP is not allowed into namespace mlflow"
        in found
    )
    assert (
        "mlflow: model-ops -> MLflow: ingress on port 5000/TCP is not allowed into namespace "
        "mlflow" in found
    )
    assert len(found) == 4  # the API, training, model-ops and the pipeline tasks


def test_dns_blocked_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    _drop_policy(d, "apps", "allow-dns")
    found = messages(check(d, "dev"), "reach")
    assert found == [
        "apps: apps -> DNS: egress to port 53/UDP is not allowed from namespace apps",
        "apps: apps -> DNS: egress to port 53/UDP is not allowed from namespace apps",
        "apps: apps -> DNS: egress to port 53/UDP is not allowed from namespace apps",
    ]  # the API, training and model-ops


def test_the_pod_identity_agent_blocked_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    _drop_policy(d, "airflow", "allow-metadata-out")
    assert messages(check(d, "dev"), "reach") == [
        "airflow: airflow -> identity agent: egress to port 80/TCP is not allowed from "
        "namespace airflow"
    ]


def test_network_policies_not_enforced_on_eks_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    cni = next(
        r
        for r in resources(d)
        if r["type"] == first_deploy.EKS_ADDON and r["inputs"].get("addonName") == "vpc-cni"
    )
    cni["inputs"].pop("configurationValues", None)
    found = messages(check(d, "dev"), "reach")
    assert len(found) == 1
    assert "does not enforce NetworkPolicies" in found[0]


def test_network_policies_not_enforced_on_gke_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("gcp-prod")
    cluster = one(d, "gcp:container/cluster:Cluster")
    cluster["inputs"].pop("datapathProvider", None)
    cluster["inputs"].pop("networkPolicy", None)
    found = messages(check(d, "gcp-prod"), "reach")
    assert len(found) == 1
    assert "Dataplane V2" in found[0]


def _policy(d: Doc, namespace: str, policy: str) -> dict[str, Any]:
    (res,) = [
        r
        for r in resources(d)
        if r["type"] == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
        and r["inputs"]["metadata"]["name"] == policy
        and r["inputs"]["metadata"]["namespace"] == namespace
    ]
    return res["inputs"]["spec"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("stack", "sources"),
    [
        ("dev", ["10.0.0.10"]),  # EKS: the control plane's interfaces, in the VPC
        ("gcp-prod", ["172.16.0.1", "kube-system"]),  # the master range, the konnectivity agents
    ],
)
def test_the_api_server_calls_every_webhook(
    plans: dict[str, Plan], stack: str, sources: list[str]
) -> None:
    from components.k8s.namespaces import WEBHOOKS

    seen = {
        (
            c.source if isinstance(c.source, str) else c.source.namespace,
            tuple(sorted(c.target.pods.items())),
            c.port,
        )
        for c in first_deploy.required_connections(plans[stack])
        if c.what.startswith("API server") and isinstance(c.target, first_deploy.Endpoint)
    }
    expected = {(s, tuple(sorted(h.pods.items())), h.port) for h in WEBHOOKS for s in sources}
    assert seen == expected


def test_a_webhook_the_api_server_cannot_reach_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    _drop_policy(d, "platform", "allow-webhook-cert-manager")
    assert messages(check(d, "dev"), "reach") == [
        "platform: API server -> cert-manager webhook: ingress on port 10250/TCP is not allowed "
        "into namespace platform"
    ]


def test_webhooks_closed_to_the_konnectivity_agents_are_found(doc: Callable[[str], Doc]) -> None:
    """On GKE the API server may call through the konnectivity agents' pods, which an ipBlock
    does not match: a policy admitting only the master range misses them; one admitting
    another range misses the master."""
    d = doc("gcp-prod")
    spec = _policy(d, "platform", "allow-webhook-envoy-gateway")
    spec["ingress"][0]["from"] = [{"ipBlock": {"cidr": "172.16.0.0/28"}}]
    assert messages(check(d, "gcp-prod"), "reach") == [
        "platform: API server -> envoy-gateway webhook: ingress on port 9443/TCP is not allowed "
        "into namespace platform"
    ]
    spec["ingress"][0]["from"] = [{"ipBlock": {"cidr": "10.0.0.0/8"}}]
    assert len(messages(check(d, "gcp-prod"), "reach")) == 2  # the master and the agents


def test_the_policy_evaluator_on_its_own() -> None:
    allow_db = {
        "podSelector": {"matchLabels": {"app": "job"}},
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.9.0.0/16"]}}],
                    "ports": [{"port": 5432, "protocol": "TCP"}]}],
    }  # fmt: skip
    deny = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    policies = {"ns": [deny, allow_db]}
    job = first_deploy.Endpoint("ns", {"app": "job"})
    other = first_deploy.Endpoint("ns", {"app": "web"})
    allowed = first_deploy._allowed
    assert allowed(policies, {}, job, "Egress", "10.0.0.5", 5432, "TCP")
    assert not allowed(policies, {}, job, "Egress", "10.9.0.5", 5432, "TCP")  # except
    assert not allowed(policies, {}, job, "Egress", "10.0.0.5", 5433, "TCP")
    assert not allowed(policies, {}, job, "Egress", "10.0.0.5", 5432, "UDP")
    assert not allowed(policies, {}, other, "Egress", "10.0.0.5", 5432, "TCP")
    assert not allowed(policies, {}, job, "Egress", other, 5432, "TCP")  # ipBlock: not pods
    assert allowed({}, {}, job, "Egress", "10.0.0.5", 1, "TCP")  # no policy: open


# -- TLS trust ---------------------------------------------------------------------------------


def test_a_bootstrap_job_without_its_ca_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    job = one(d, "kubernetes:batch/v1:Job")
    container = job["inputs"]["spec"]["template"]["spec"]["containers"][0]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "postgres-ca"]
    found = messages(check(d, "dev"), "tls")
    assert len(found) == 1
    assert "verifies Postgres (sslmode=verify-full)" in found[0]


@pytest.mark.parametrize(
    ("chart", "mounts"), [("mlflow", "extraVolumeMounts"), ("airflow", "volumeMounts")]
)
def test_a_chart_without_the_postgres_ca_is_found(
    doc: Callable[[str], Doc], chart: str, mounts: str
) -> None:
    d = doc("gcp-prod")
    _release(d, chart)["inputs"]["values"][mounts] = []
    found = messages(check(d, "gcp-prod"), "tls")
    assert len(found) == 1
    assert f"{chart} verifies Postgres" in found[0]


def test_an_unverified_database_connection_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("gcp-dev")
    next(r for r in resources(d) if r["type"] == "dex:gcp:Database")["outputs"]["sslmode"] = (
        "require"
    )
    found = messages(check(d, "gcp-dev"), "tls")
    assert "database: clients connect with sslmode=require: the server is not verified" in found


def test_an_api_without_the_caches_private_ca_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("gcp-dev")
    api = one(d, "kubernetes:apps/v1:Deployment", "api-deployment")
    container = api["inputs"]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != "DEX_API_REDIS_CA_FILE"]
    found = messages(check(d, "gcp-dev"), "tls")
    assert len(found) == 1
    assert "DEX_API_REDIS_CA_FILE" in found[0]


# -- cold start --------------------------------------------------------------------------------


def test_an_api_whose_readiness_needs_a_model_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("prod")
    api = one(d, "kubernetes:apps/v1:Deployment", "api-deployment")
    probe = api["inputs"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGet"]["path"] = "/readyz?only=model"
    found = messages(check(d, "prod"), "cold-start")
    assert len(found) == 1
    assert "needs ['model']" in found[0]


def test_the_waves_command_output_is_json(plans: dict[str, Plan]) -> None:
    described = first_deploy.describe_waves(plans["gcp-dev"])
    assert described[0]["wave"] == 0
    assert json.loads(json.dumps(described)) == described
    last = described[-1]["resources"]
    assert all(item["waits_for"] for item in last)


def test_dex_plan_waves_prints_the_waves_and_the_checks(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dex.cli import app

    result = CliRunner().invoke(app, ["plan", "gcp-dev", "--waves", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["stack"] == "gcp-dev"
    assert report["findings"] == []
    first = {r["type"] for r in report["waves"][0]["resources"]}
    assert "pulumi:providers:gcp" in first
    table = CliRunner().invoke(app, ["plan", "dev", "--waves"])
    assert table.exit_code == 0, table.output
    assert "first deploy of dev" in table.stdout
    assert "no findings" in table.stdout


def test_gcp_resources_before_their_apis_are_found(doc: Callable[[str], Doc]) -> None:
    """What the program did before: `depends_on` on the components, which their children do
    not inherit. Only the provider's dependency reaches every resource."""
    d = doc("gcp-dev")
    provider = next(
        r
        for r in resources(d)
        if r["type"] == "pulumi:providers:gcp" and r["urn"].endswith("::gcp")
    )
    drop_dependency(provider, lambda u: "gcp:projects/service:Service" in u)
    found = messages(check(d, "gcp-dev"), "order")
    assert any(
        "may be created before its API is on" in m and "compute.googleapis.com" in m for m in found
    )
    # the lookups and the APIs themselves use a provider of their own, with no dependency
    apis = [
        r
        for r in resources(d)
        if r["type"] == "pulumi:providers:gcp" and r["urn"].endswith("::gcp-apis")
    ]
    assert apis
    assert not apis[0].get("dependencies")


def test_the_gateway_cut_off_from_a_backend_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("dev")
    _drop_policy(d, "platform", "allow-gateway-to-api")
    assert messages(check(d, "dev"), "reach") == [
        "platform: Gateway -> api: egress to port 8000/TCP is not allowed from namespace platform"
    ]
    d = doc("gcp-dev")
    _drop_policy(d, "mlflow", "allow-from-gateway")
    assert messages(check(d, "gcp-dev"), "reach") == [
        "mlflow: Gateway -> mlflow: ingress on port 5000/TCP is not allowed into namespace mlflow"
    ]


def test_gke_managing_its_own_gateway_crds_is_found(doc: Callable[[str], Doc]) -> None:
    d = doc("gcp-prod")
    one(d, "gcp:container/cluster:Cluster")["inputs"].pop("gatewayApiConfig")
    found = messages(check(d, "gcp-prod"), "order")
    assert len(found) == 1
    assert "CHANNEL_DISABLED" in found[0]


def test_kubernetes_calls_before_the_deployers_access_policy_are_found(
    doc: Callable[[str], Doc],
) -> None:
    d = doc("prod")
    provider = one(d, "pulumi:providers:kubernetes")
    drop_dependency(provider, lambda u: "accessPolicyAssociation" in u or "accessEntry" in u)
    found = messages(check(d, "prod"), "order")
    assert len(found) == 1
    assert "cluster-admin access policy" in found[0]
