"""The Helm release rules (policies/rules_helm.py) beyond their fixtures: a setting the values
leave to the chart is counted, never flagged nor passed in silence; blocks switched off, volume
claims and repository-only images are not misread; each flaw injected into a release of the
synthesized prod stack is found where it was put; every release of the four stacks is
either flagged, counted or judged on a value it sets."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from policies import all_rules
from policies.model import UNKNOWN
from policies.rules_k8s_pods import HELM_RELEASE
from policies.runner import Report, check
from tests.conftest import STACKS
from tests.unit.policy_cases.helm import CASES, SECURE, context, release
from tests.unit.test_policies import build_doc

pytestmark = pytest.mark.unit

RULES = {r.id: r for r in all_rules()}
VALUE_RULES = sorted(r for r in RULES if r.startswith("HELM-") and r != "HELM-001")
READS: dict[str, set[str]] = {
    "HELM-002": {"privileged"},
    "HELM-003": {"hostNetwork", "hostPID", "hostIPC", "hostProcess"},
    "HELM-004": {"allowPrivilegeEscalation"},
    "HELM-005": {"capabilities"},
    "HELM-006": {"runAsNonRoot", "runAsUser"},
    "HELM-007": {"seccompProfile"},
    "HELM-008": {"readOnlyRootFilesystem"},
    "HELM-009": {"image", "images", "tag", "digest", "sha"},
    "HELM-010": {"resources"},
}
"""The values keys each rule reads, found here independently of the rules' own walk."""


def _run(rule_id: str, *resources: Any) -> Report:
    return check(build_doc(list(resources)), "prod", rules=[RULES[rule_id]])


def test_every_value_rule_says_which_keys_it_reads() -> None:
    assert set(READS) == set(VALUE_RULES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_each_insecure_fixture_release_is_flagged_on_its_own(rule_id: str) -> None:
    _, bad = CASES[rule_id]
    for res in bad:
        report = _run(rule_id, res)
        assert report.violations, f"{rule_id} missed {res[1]}"
        if rule_id != "HELM-001":
            assert all(v.message.startswith("values .") for v in report.violations)


@pytest.mark.parametrize("rule_id", VALUE_RULES)
@pytest.mark.parametrize(
    "values",
    [
        {},
        {"replicas": 2, "serviceAccount": {"create": True}},
        # a block switched off is not rendered: what it says does not count
        {
            "nodeExporter": {
                "enabled": False,
                "hostNetwork": True,
                "securityContext": context(privileged=True, runAsUser=0),
                "image": {"tag": "latest"},
                "resources": {},
            }
        },
    ],
)
def test_settings_left_to_the_chart_are_counted_not_flagged(
    rule_id: str, values: dict[str, Any]
) -> None:
    report = _run(rule_id, release(values))
    assert report.violations == ()
    assert [rule for rule, _ in report.unknown] == [rule_id]


@pytest.mark.parametrize("rule_id", VALUE_RULES)
def test_value_files_keep_a_secure_verdict_open_but_not_a_flaw(rule_id: str) -> None:
    files = {"valueYamlFiles": [{"path": "values/prod.yaml"}]}
    secure = (HELM_RELEASE, {**release(SECURE)[1], **files})
    assert _run(rule_id, secure).violations == ()
    assert len(_run(rule_id, secure).unknown) == 1
    _, bad = CASES[rule_id]
    flawed = (HELM_RELEASE, {**bad[0][1], **files})
    assert _run(rule_id, flawed).violations


@pytest.mark.parametrize(
    ("rule_id", "values"),
    [
        (
            "HELM-009",
            {"images": {"airflow": {"repository": "r", "tag": UNKNOWN, "digest": UNKNOWN}}},
        ),
        ("HELM-009", {"template": {"spec": {"containers": [{"name": "a", "image": UNKNOWN}]}}}),
        ("HELM-002", {"controller": {"securityContext": UNKNOWN}}),
        ("HELM-010", {"resources": UNKNOWN}),
    ],
)
def test_values_known_only_after_apply_defer_the_check(
    rule_id: str, values: dict[str, Any]
) -> None:
    report = _run(rule_id, release(values))
    assert report.violations == ()
    assert [rule for rule, _ in report.unknown] == [rule_id]


def test_an_unknown_value_does_not_hide_a_flaw_beside_it() -> None:
    values = {"image": {"tag": UNKNOWN}, "webhook": {"image": {"tag": "latest"}}}
    assert [v.message for v in _run("HELM-009", release(values)).violations] == [
        "values .webhook.image tag is latest and no digest, so the same release runs whatever "
        "the tag points to at its next pull"
    ]


@pytest.mark.parametrize(
    ("values", "flagged"),
    [
        # a volume claim's resources are not a container's
        (
            {
                "prometheusSpec": {
                    "storageSpec": {
                        "volumeClaimTemplate": {
                            "spec": {"resources": {"requests": {"storage": "50Gi"}}}
                        }
                    }
                },
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
            },
            False,
        ),
        ({"persistence": {"resources": {"requests": {"storage": "1Gi"}}}, "resources": {}}, True),
    ],
)
def test_volume_claims_are_not_containers(values: dict[str, Any], flagged: bool) -> None:
    assert bool(_run("HELM-010", release(values)).violations) is flagged


@pytest.mark.parametrize(
    ("image", "flagged"),
    [
        # ingress-nginx: the repository in `image.image`, beside its tag
        ({"controller": {"image": {"image": "ingress-nginx/controller", "tag": "v1.15.1"}}}, False),
        ({"image": {"registry": "docker.io", "repository": "a", "tag": "3.2"}}, False),
        ({"image": {"repository": "a", "tag": "latest", "sha": "abc123"}}, False),
        ({"image": {"repository": "a", "tag": 1.5}}, False),
        ({"image": "registry.example:5000/app:1.0"}, False),
        ({"image": f"app@sha256:{'d' * 64}"}, False),
        ({"image": "registry.example:5000/app"}, True),  # a port, not a tag: latest
        ({"image": "app:latest"}, True),
        ({"image": {"repository": "a", "tag": None}}, True),
        # kube-prometheus-stack: image maps nested in an `image` map
        ({"crds": {"upgradeJob": {"image": {"kubectl": {"repository": "k", "tag": ""}}}}}, True),
    ],
)
def test_image_references(image: dict[str, Any], flagged: bool) -> None:
    assert bool(_run("HELM-009", release(image)).violations) is flagged


def test_an_image_map_with_only_a_repository_leaves_the_tag_to_the_chart() -> None:
    report = _run("HELM-009", release({"image": {"repository": "mirror.example/app"}}))
    assert report.violations == ()
    assert len(report.unknown) == 1


@pytest.mark.parametrize(
    ("version", "chart", "flagged"),
    [
        ("1.21.0", "airflow", False),
        ("v1.9.0", "oci://docker.io/envoyproxy/gateway-helm", False),
        ("1.0.0-rc.1", "x", False),
        (None, "./charts/api", False),
        (None, "oci://ghcr.io/x/chart@sha256:" + "e" * 64, False),
        (None, "airflow", True),
        ("", "airflow", True),
        ("~1.21.0", "airflow", True),
        ("1.x", "airflow", True),
        (">=1.0.0 <2.0.0", "airflow", True),
        ("*", "airflow", True),
    ],
)
def test_chart_versions(version: str | None, chart: str, flagged: bool) -> None:
    assert bool(_run("HELM-001", release(version=version, chart=chart)).violations) is flagged


@pytest.mark.parametrize(
    ("helm", "pod"),
    [
        ("HELM-002", "K8S-003"),
        ("HELM-003", "K8S-009"),
        ("HELM-004", "K8S-002"),
        ("HELM-005", "K8S-006"),
        ("HELM-006", "K8S-001"),
        ("HELM-007", "K8S-013"),
        ("HELM-008", "K8S-004"),
    ],
)
def test_value_rules_carry_their_pod_rules_controls(helm: str, pod: str) -> None:
    assert RULES[helm].frameworks == RULES[pod].frameworks


# -- the synthesized stacks --------------------------------------------------------------------


def _releases(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["urn"]: r for r in doc["deployment"]["resources"] if r["type"] == HELM_RELEASE}


def _set(values: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _find(doc: dict[str, Any], name_part: str) -> dict[str, Any]:
    (found,) = [r for urn, r in _releases(doc).items() if urn.endswith(name_part)]
    return found


def _without_memory_limit(values: dict[str, Any]) -> None:
    del values["singleBinary"]["resources"]["limits"]["memory"]


Edit = Callable[[dict[str, Any]], None]
INJECTED: list[tuple[str, str, str, Edit]] = [
    (
        "HELM-002",
        "sealed-secrets-controller",
        ".containerSecurityContext.privileged",
        lambda v: _set(v, "containerSecurityContext.privileged", True),
    ),
    ("HELM-003", "karpenter-release", ".hostNetwork", lambda v: _set(v, "hostNetwork", True)),
    (
        "HELM-004",
        "gateway-cert-manager",
        ".webhook.containerSecurityContext.allowPrivilegeEscalation",
        lambda v: _set(v, "webhook.containerSecurityContext.allowPrivilegeEscalation", True),
    ),
    (
        "HELM-005",
        "ci-runners-controller",
        ".securityContext.capabilities",
        lambda v: _set(v, "securityContext.capabilities.add", ["SYS_ADMIN"]),
    ),
    (
        "HELM-006",
        "airflow-release",
        ".securityContexts.pod.runAsUser",
        lambda v: _set(v, "securityContexts.pod.runAsUser", 0),
    ),
    (
        "HELM-007",
        "karpenter-release",
        ".controller.securityContext.seccompProfile",
        lambda v: _set(v, "controller.securityContext.seccompProfile.type", "Unconfined"),
    ),
    (
        "HELM-008",
        "sealed-secrets-controller",
        ".containerSecurityContext.readOnlyRootFilesystem",
        lambda v: _set(v, "containerSecurityContext.readOnlyRootFilesystem", False),
    ),
    ("HELM-009", "mlflow-release", ".image", lambda v: _set(v, "image.tag", "latest")),
    ("HELM-010", "observability-loki", ".singleBinary.resources", _without_memory_limit),
]


@pytest.mark.parametrize(("rule_id", "release_name", "path", "edit"), INJECTED)
def test_a_flaw_injected_into_a_stack_release_is_found_where_it_was_put(
    plan_docs: dict[str, dict[str, Any]], rule_id: str, release_name: str, path: str, edit: Edit
) -> None:
    doc = copy.deepcopy(plan_docs["prod"])
    target = _find(doc, release_name)
    before = check(doc, "prod", rules=[RULES[rule_id]])
    assert not [v for v in before.violations if v.urn == target["urn"]]
    edit(target["inputs"]["values"])
    after = check(doc, "prod", rules=[RULES[rule_id]])
    found = [v.message for v in after.violations if v.urn == target["urn"]]
    assert found, f"{rule_id} missed the flaw injected at {path}"
    assert all(m.startswith(f"values {path} ") for m in found), found


def test_an_unpinned_stack_chart_is_found(plan_docs: dict[str, dict[str, Any]]) -> None:
    doc = copy.deepcopy(plan_docs["prod"])
    target = _find(doc, "gateway-cert-manager")
    assert check(doc, "prod", rules=[RULES["HELM-001"]]).violations == ()
    del target["inputs"]["version"]
    (found,) = check(doc, "prod", rules=[RULES["HELM-001"]]).violations
    assert found.urn == target["urn"]


def _keys(values: Any) -> set[str]:
    if isinstance(values, dict):
        return set(values) | {k for child in values.values() for k in _keys(child)}
    if isinstance(values, list):
        return {k for child in values for k in _keys(child)}
    return set()


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_release_is_flagged_counted_or_judged_on_what_it_sets(
    plan_docs: dict[str, dict[str, Any]], stack: str
) -> None:
    doc = plan_docs[stack]
    releases = _releases(doc)
    assert len(releases) > 5
    for rule_id in VALUE_RULES:
        report = check(doc, "prod", rules=[RULES[rule_id]])
        flagged = {v.urn for v in report.violations}
        counted = {urn for _, urn in report.unknown}
        assert flagged | counted <= set(releases)
        assert not flagged & counted
        for urn in set(releases) - flagged - counted:
            sets = _keys(releases[urn]["inputs"].get("values") or {})
            assert sets & READS[rule_id], f"{rule_id} passed {urn} on values that set none of it"
        if RULES[rule_id].enforcement["prod"] == "mandatory":
            assert not flagged, [v.message for v in report.violations]
