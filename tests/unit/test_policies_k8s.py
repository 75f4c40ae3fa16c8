"""The Kubernetes pod rules read every workload kind and every container list, and K8S-014's
NodePort half (test_policies.py's fixtures cover its LoadBalancer half)."""

from __future__ import annotations

from typing import Any

import pytest

from policies import all_rules
from policies.model import UNKNOWN, PackConfig
from policies.rules_k8s import POD_SPEC_PATHS
from policies.runner import check
from tests.unit.policy_cases.k8s import container, with_context, workload
from tests.unit.test_policies import build_doc

pytestmark = pytest.mark.unit

RULES = {r.id: r for r in all_rules()}
KINDS = [t.rsplit(":", 1)[-1] for t in POD_SPEC_PATHS]

CONTAINER_FLAWS: list[tuple[str, dict[str, Any]]] = [
    ("K8S-001", with_context(runAsNonRoot=None, runAsUser=0)),
    ("K8S-002", with_context(allowPrivilegeEscalation=True)),
    ("K8S-003", with_context(privileged=True)),
    ("K8S-005", with_context(capabilities={"drop": ["NET_RAW"]})),
    ("K8S-006", with_context(capabilities={"drop": ["ALL"], "add": ["CAP_SYS_ADMIN"]})),
    ("K8S-009", with_context(windowsOptions={"hostProcess": True})),
    ("K8S-013", with_context(seccompProfile={"type": "Unconfined"})),
    ("K8S-022", with_context(procMount="Unmasked")),
    ("K8S-024", {"env": [{"name": "REDIS_PASSWORD", "value": "hunter2"}]}),
]
POD_FLAWS: list[tuple[str, dict[str, Any]]] = [
    ("K8S-008", {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
    ("K8S-009", {"hostPID": True}),
    ("K8S-009", {"securityContext": {"windowsOptions": {"hostProcess": True}}}),
    ("K8S-023", {"securityContext": {"sysctls": [{"name": "kernel.sem", "value": "1"}]}}),
]


def _run(rule_id: str, *resources: Any) -> list[str]:
    report = check(build_doc(list(resources)), "prod", PackConfig(), rules=[RULES[rule_id]])
    return [v.message for v in report.violations]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("rule_id", "flaw"), CONTAINER_FLAWS)
@pytest.mark.parametrize("where", ["containers", "initContainers", "ephemeralContainers"])
def test_container_rules_read_every_kind_and_container_list(
    kind: str, rule_id: str, flaw: dict[str, Any], where: str
) -> None:
    assert _run(rule_id, workload(kind)) == []
    bad = workload(kind, **{where: [container("flawed", **flaw)]})
    assert _run(rule_id, bad), f"{rule_id} missed a flaw in a {kind}'s {where}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("rule_id", "flaw"), POD_FLAWS)
def test_pod_rules_read_every_kind(kind: str, rule_id: str, flaw: dict[str, Any]) -> None:
    assert _run(rule_id, workload(kind)) == []
    assert _run(rule_id, workload(kind, **flaw)), f"{rule_id} missed a flaw in a {kind}"


def test_ephemeral_containers_need_no_limits_or_probes() -> None:
    probe = {"httpGet": {"path": "/healthz", "port": 8000}}
    app = container(readinessProbe=probe, livenessProbe=probe)
    debug = container("debug")
    del debug["resources"]
    pod = workload("Deployment", containers=[app], ephemeralContainers=[debug])
    assert _run("K8S-007", pod) == []
    assert _run("K8S-012", pod) == []


def test_an_unknown_pod_spec_defers_the_checks() -> None:
    doc = build_doc([("kubernetes:apps/v1:Deployment", {"spec": {"template": UNKNOWN}})])
    report = check(doc, "prod", rules=[RULES["K8S-003"]])
    assert report.violations == ()
    assert [rule for rule, _ in report.unknown] == ["K8S-003"]


SERVICE = "kubernetes:core/v1:Service"


def _service(type_: str, *ports: dict[str, Any], **spec: Any) -> tuple[str, dict[str, Any]]:
    return (SERVICE, {"metadata": {"name": "db"}, "spec": {"type": type_, "ports": list(ports)}})


def test_node_ports_expose_no_data_ports() -> None:
    good = [
        _service("NodePort", {"name": "http", "port": 80, "targetPort": 8080}),
        _service("ClusterIP", {"name": "postgres", "port": 5432}),
    ]
    for service in good:
        assert _run("K8S-014", service) == []
    bad = [
        _service("NodePort", {"port": 5432, "nodePort": 30432}),
        _service("NodePort", {"port": 80, "targetPort": 6379}),
        _service("NodePort", {"name": "tcp-redis", "port": 7000, "targetPort": "redis"}),
    ]
    for service in bad:
        (message,) = _run("K8S-014", service)
        assert "on every node" in message


def test_internal_load_balancers_by_each_clouds_annotation() -> None:
    for key, value in [
        ("service.beta.kubernetes.io/aws-load-balancer-scheme", "internal"),
        ("networking.gke.io/load-balancer-type", "Internal"),
        ("cloud.google.com/load-balancer-type", "Internal"),
    ]:
        service = (
            SERVICE,
            {"metadata": {"annotations": {key: value}}, "spec": {"type": "LoadBalancer"}},
        )
        assert _run("K8S-014", service) == [], key
