"""components/k8s/runners.py under Pulumi's mock engine: actions-runner-controller and one
runner scale set per stack, named as the workflows' `runs-on` expects; GitHub App credentials
by Secret name only; runner pods that pass Pod Security `restricted` and the Kubernetes schema,
with no Docker daemon; namespaces that deny everything but DNS, HTTPS out and the API server.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.k8s import runners
from components.k8s.runners import CiRunners, CiRunnersArgs, scale_set_name, validate_args
from contracts.deployment import Plan, Resource, parse_plan
from stacks.stackfiles import read_stack_file
from tests.conftest import STACKS
from toolchain.ci_reach import runner_label
from toolchain.synth import build_plan, run_program
from toolchain.validate import validate_kubernetes

pytestmark = pytest.mark.unit

ARGS = CiRunnersArgs(
    stack="prod",
    github_config_url="https://github.com/acme/dex",
    node_selector={"dex.io/pool": "system"},
)
RELEASE = "kubernetes:helm.sh/v3:Release"


def synth(args: CiRunnersArgs = ARGS) -> Plan:
    """A one-component program (a Kubernetes provider and CiRunners), run under the mocks."""

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}", enable_server_side_apply=True)
        CiRunners("ci", args, opts=pulumi.ResourceOptions(provider=provider))

    stack_file = read_stack_file(args.stack if args.stack in STACKS else "dev")
    monitor = run_program(stack_file, program=program)
    return parse_plan(json.loads(json.dumps(build_plan(monitor, stack_file))), args.stack)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return synth()


def component(plan: Plan) -> Resource:
    (found,) = plan.of_type("dex:k8s:CiRunners")
    return found


def release(plan: Plan, chart: str) -> Resource:
    (found,) = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == chart]
    return found


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """What Pod Security `restricted` (and this repository's hardening) refuses in a pod spec."""
    out = []
    pod = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            out.append(field)
    if any("hostPath" in v for v in spec.get("volumes", [])):
        out.append("hostPath volume")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        ctx = c.get("securityContext") or {}
        name = c.get("name")
        if ctx.get("privileged") is not False:
            out.append(f"{name}: privileged not false")
        if ctx.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: privilege escalation")
        if ctx.get("capabilities", {}).get("drop") != ["ALL"] or ctx["capabilities"].get("add"):
            out.append(f"{name}: capabilities")
        if not (ctx.get("runAsNonRoot") or pod.get("runAsNonRoot")):
            out.append(f"{name}: may run as root")
        if (ctx.get("seccompProfile") or pod.get("seccompProfile")) != {"type": "RuntimeDefault"}:
            out.append(f"{name}: seccomp")
        if 0 in (ctx.get("runAsUser"), pod.get("runAsUser")):
            out.append(f"{name}: uid 0")
        if "resources" not in c or "limits" not in c["resources"]:
            out.append(f"{name}: no resource limits")
    return out


def as_pod(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": spec}


# -- the component tree -----------------------------------------------------------------------


def test_one_component_and_its_children(plan: Plan) -> None:
    comp = component(plan)
    children = [r for r in plan if r.parent == comp.urn]
    assert {r.type for r in children} == {
        "kubernetes:core/v1:Namespace",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        RELEASE,
    }
    assert all(r.name.startswith("ci-") for r in children)
    for res in plan:  # everything on the cluster through the given provider
        if res.type.startswith("kubernetes:"):
            assert "pulumi:providers:kubernetes::k8s" in (res.provider or ""), res.urn
    assert comp.outputs["runner_label"] == "dex-prod"
    assert comp.outputs["namespace"] == "arc-runners"


def test_the_scale_set_is_named_as_the_workflows_ask() -> None:
    for stack in STACKS:
        assert scale_set_name(stack) == runner_label(stack) == f"dex-{stack}"


def test_the_charts_are_the_current_arc_release(plan: Plan) -> None:
    controller = release(plan, runners.CONTROLLER_CHART)
    scale_set = release(plan, runners.SCALE_SET_CHART)
    for res in (controller, scale_set):
        assert res.inputs["chart"].startswith(
            "oci://ghcr.io/actions/actions-runner-controller-charts/"
        )
        assert res.inputs["version"] == "0.15.1"
        assert res.inputs["atomic"] is True
        assert not (res.inputs.get("repositoryOpts") or {}).get("repo")  # OCI: no repository
    assert controller.inputs["namespace"] == "arc-systems"
    assert scale_set.inputs["namespace"] == "arc-runners"
    assert scale_set.inputs["name"] == "dex-prod"
    # the scale set after the controller (its CRDs; its finalizers on delete)
    assert controller.urn in scale_set.dependencies
    namespaces = {r.urn for r in plan.of_type("kubernetes:core/v1:Namespace")}
    assert namespaces <= set(controller.dependencies)


def test_github_credentials_are_a_secret_name_only(plan: Plan) -> None:
    values = release(plan, runners.SCALE_SET_CHART).inputs["values"]
    assert values["githubConfigUrl"] == "https://github.com/acme/dex"
    assert values["githubConfigSecret"] == "dex-ci-github-app"
    forbidden = {"github_token", "github_app_private_key", "github_app_id"}
    for plan_values in (values, release(plan, runners.CONTROLLER_CHART).inputs["values"]):
        assert not forbidden & {k for k, _ in walk(plan_values)}
    assert values["runnerScaleSetName"] == "dex-prod"
    assert values["controllerServiceAccount"] == {
        "namespace": "arc-systems",
        "name": "arc-controller",
    }
    controller = release(plan, runners.CONTROLLER_CHART).inputs["values"]
    assert controller["serviceAccount"]["name"] == "arc-controller"
    assert controller["flags"]["watchSingleNamespace"] == "arc-runners"


# -- the pods ---------------------------------------------------------------------------------


def test_runner_pods_are_restricted_and_run_no_docker(plan: Plan) -> None:
    values = release(plan, runners.SCALE_SET_CHART).inputs["values"]
    assert "containerMode" not in values  # no dind, no Kubernetes-mode job pods
    spec = values["template"]["spec"]
    assert restricted_violations(spec) == []
    assert validate_kubernetes(as_pod(spec)) == []
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsUser"] == 1001  # the image's `runner` user
    (runner,) = spec["containers"]
    assert runner["name"] == "runner"
    assert runner["image"] == "ghcr.io/actions/actions-runner:2.338.1"
    assert runner["resources"]["limits"]["memory"] == "4Gi"
    assert runner["resources"]["requests"]["cpu"] == "1"
    text = json.dumps(spec)
    assert "docker.sock" not in text
    assert "dind" not in text
    assert spec["nodeSelector"] == {"dex.io/pool": "system"}


def test_the_restricted_check_catches_docker_in_docker(plan: Plan) -> None:
    spec = copy.deepcopy(
        release(plan, runners.SCALE_SET_CHART).inputs["values"]["template"]["spec"]
    )
    spec["containers"].append(
        {"name": "dind", "image": "docker:dind", "securityContext": {"privileged": True}}
    )
    found = restricted_violations(spec)
    assert "dind: privileged not false" in found
    assert "dind: privilege escalation" in found


def test_listener_and_controller_are_hardened(plan: Plan) -> None:
    values = release(plan, runners.SCALE_SET_CHART).inputs["values"]
    listener = values["listenerTemplate"]["spec"]
    assert restricted_violations(listener) == []
    (container,) = listener["containers"]
    assert container["name"] == "listener"  # the name the controller merges into
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # the listener merges into the controller's pod: its spec minus the image is a valid Pod
    assert (
        validate_kubernetes(as_pod({**listener, "containers": [{**container, "image": "x"}]})) == []
    )
    controller = release(plan, runners.CONTROLLER_CHART).inputs["values"]
    as_spec = {
        "securityContext": controller["podSecurityContext"],
        "containers": [
            {
                "name": "manager",
                "securityContext": controller["securityContext"],
                "resources": controller["resources"],
            }
        ],
    }
    assert restricted_violations(as_spec) == []
    assert controller["securityContext"]["readOnlyRootFilesystem"] is True


# -- namespaces and network policies ----------------------------------------------------------


def test_namespaces_enforce_pod_security(plan: Plan) -> None:
    labels = {
        r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"]
        for r in plan.of_type("kubernetes:core/v1:Namespace")
    }
    assert set(labels) == {"arc-systems", "arc-runners"}
    assert labels["arc-runners"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["arc-systems"]["pod-security.kubernetes.io/enforce"] == "baseline"
    for ns in labels.values():
        assert ns["pod-security.kubernetes.io/warn"] == "restricted"
        assert ns["pod-security.kubernetes.io/audit"] == "restricted"


def test_egress_is_dns_https_and_the_api_server_only(plan: Plan) -> None:
    policies = plan.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    by_ns: dict[str, dict[str, Any]] = {}
    for res in policies:
        obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **res.inputs}
        assert validate_kubernetes(obj) == [], res.urn
        by_ns.setdefault(res.inputs["metadata"]["namespace"], {})[
            res.inputs["metadata"]["name"]
        ] = res.inputs["spec"]
    assert set(by_ns) == {"arc-systems", "arc-runners"}
    for specs in by_ns.values():
        assert specs["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        assert set(specs) == {"default-deny", "allow-dns", "allow-https-out", "allow-kube-api-out"}
        ports = set()
        for name, spec in specs.items():
            assert "ingress" not in spec, name  # nothing connects in
            for rule in spec.get("egress", []):
                ports |= {p["port"] for p in rule["ports"]}
                for peer in rule["to"]:
                    if "ipBlock" in peer:
                        assert "169.254.0.0/16" in peer["ipBlock"]["except"]  # no metadata
        assert ports == {53, 443, 6443}
        dns = specs["allow-dns"]["egress"][0]["to"][0]
        assert dns["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}


def test_cluster_readers_get_read_access_on_gke_only_when_asked(plan: Plan) -> None:
    assert not plan.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    reader = "dex-ci-read@dex-platform-prod.iam.gserviceaccount.com"
    gke = synth(
        CiRunnersArgs(**{**ARGS.__dict__, "stack": "gcp-prod", "cluster_readers": (reader,)})
    )
    (role,) = gke.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    (binding,) = gke.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    assert role.inputs["rules"] == runners.read_rules()
    assert binding.inputs["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": reader}
    ]
    assert binding.inputs["roleRef"]["name"] == role.inputs["metadata"]["name"] == "dex-ci-read"
    for res, kind in ((role, "ClusterRole"), (binding, "ClusterRoleBinding")):
        obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, **res.inputs}
        assert validate_kubernetes(obj) == [], res.urn
    assert release(gke, runners.SCALE_SET_CHART).inputs["name"] == "dex-gcp-prod"


SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"


def _plural(kind: str) -> str:
    """A kind's resource name: lower case, `es` after an s, `ies` for a consonant and y, else
    `s`. apimachinery's `UnsafeGuessKindToResource` makes every y `ies` (`gatewaies`); the
    CRDs at the pinned versions name `gateways`, `envoyproxies`, `securitypolicies` (Envoy
    Gateway v1.9.0), `clusterissuers` (cert-manager v1.21.1)."""
    name = kind.lower()
    if name.endswith("s"):
        return name + "es"
    if name.endswith("y") and name[-2] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def test_the_read_role_names_every_kind_the_stacks_manage() -> None:
    """`dex-ci-read` lists its kinds explicitly: each Kubernetes type of the four synthesized
    plans (and the role and binding this component adds) must be in CI_READS, and nothing
    else, so a new kind fails here instead of failing CI's first refresh."""
    kinds = {
        r["type"]
        for stack in STACKS
        for r in json.loads((SNAPSHOTS / f"{stack}.json").read_text())["deployment"]["resources"]
        if r["type"].startswith("kubernetes:")
    }
    gke = synth(
        CiRunnersArgs(**{**ARGS.__dict__, "cluster_readers": ("ci@p.iam.gserviceaccount.com",)})
    )
    kinds |= {r.type for r in gke if r.type.startswith("kubernetes:")}
    missing = sorted(kinds - set(runners.CI_READS))
    assert missing == [], "kinds the stacks manage that dex-ci-read cannot read"
    stale = sorted(set(runners.CI_READS) - kinds)
    assert stale == [], "kinds dex-ci-read names that no stack manages"


def test_the_read_role_uses_each_kinds_own_group_and_resource() -> None:
    for token, reads in runners.CI_READS.items():
        group_version, kind = token.removeprefix("kubernetes:").split(":")
        if group_version in ("helm.sh/v3", "yaml/v2"):
            continue  # components, read through what they made
        group = group_version.split("/")[0]
        assert reads[0] == ("" if group == "core" else group, _plural(kind)), token


def test_the_config_groups_apply_only_crds(plans: dict[str, Plan]) -> None:
    """CI_READS reads a ConfigGroup's objects as CustomResourceDefinitions: true while every
    file it applies is a CRD (`<group>_<plural>.yaml` from a CRD folder)."""
    for stack, plan in plans.items():
        for group in plan.of_type("kubernetes:yaml/v2:ConfigGroup"):
            for url in group.inputs["files"]:
                assert "crd" in url, (stack, url)
                assert re.fullmatch(r"[a-z0-9.-]+_[a-z0-9]+\.yaml", url.rsplit("/", 1)[-1]), url


def test_the_read_role_only_reads() -> None:
    rules = runners.read_rules()
    for rule in rules:
        assert rule["verbs"] == ["get", "list"], rule  # no watch, no write
        assert "*" not in rule["apiGroups"] + rule["resources"], rule
        assert "resourceNames" not in rule, rule
    secrets = [r for r in rules if "secrets" in r["resources"]]
    assert secrets == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]
    # what a refresh lists to judge a Deployment, a Job and a Service
    core = next(r for r in rules if r["apiGroups"] == [""] and "pods" in r["resources"])
    assert {"pods", "endpoints", "persistentvolumeclaims"} <= set(core["resources"])
    assert {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"],
            "verbs": ["get", "list"]} in rules  # fmt: skip


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stack": "Prod"}, "`stack`"),
        ({"github_config_url": "https://gitlab.com/acme/dex"}, "`github_config_url`"),
        ({"github_app_secret": "GitHub_App"}, "`github_app_secret`"),
        ({"min_runners": -1}, "`min_runners`"),
        ({"max_runners": 0}, "`max_runners`"),
        ({"min_runners": 4, "max_runners": 3}, "`max_runners`"),
        ({"runner_memory": "4 GB"}, "`runner_memory`"),
        ({"work_volume_gib": 1}, "`work_volume_gib`"),
        ({"runner_image": "ghcr.io/actions/actions-runner"}, "`runner_image`"),
        ({"cluster_readers": ("ci-read@example.com",)}, "`cluster_readers`"),
    ],
)
def test_bad_args_stop_before_any_resource(change: dict[str, Any], message: str) -> None:
    args = CiRunnersArgs(**{**ARGS.__dict__, **change})
    with pytest.raises(ValueError, match=message):
        validate_args(args)


def test_defaults_are_valid_for_every_stack() -> None:
    for stack in STACKS:
        validate_args(CiRunnersArgs(stack=stack, github_config_url="https://github.com/acme"))
