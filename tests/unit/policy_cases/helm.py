"""Fixtures of the Helm release rules (policies/rules_helm.py): releases whose values set each
setting securely, and releases that set it insecurely at the places charts put it (top level,
a component's or a subchart's block, Airflow's `securityContexts`, a pod spec passed whole).
The compliant ones set the setting, so they are judged, not counted as chart defaults."""

from __future__ import annotations

from typing import Any

from policies.rules_k8s_pods import HELM_RELEASE

DIGEST = "sha256:" + "c" * 64
CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "privileged": False,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
LIMITS = {"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "512Mi"}}


def release(
    values: dict[str, Any] | None = None, version: str | None = "1.2.3", chart: str = "example"
) -> tuple[str, dict[str, Any]]:
    props: dict[str, Any] = {"chart": chart, "namespace": "apps", "values": values or {}}
    if version is not None:
        props["version"] = version
    return (HELM_RELEASE, props)


def context(**changes: Any) -> dict[str, Any]:
    return {**CONTEXT, **changes}


def pod_template(**container: Any) -> dict[str, Any]:
    """A pod spec passed whole (ARC's `template`), its one container changed by `container`."""
    runner = {"name": "runner", "image": f"ghcr.io/actions/actions-runner@{DIGEST}"}
    return {"spec": {"containers": [{**runner, "securityContext": context(), **container}]}}


SECURE = {
    "securityContext": context(),
    "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "hostNetwork": False,
    "image": {"repository": "example/app", "tag": "1.4.2"},
    "resources": LIMITS,
    "webhook": {"containerSecurityContext": context(), "resources": LIMITS},
}


def case(*bad: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The secure values (judged and passed), against each insecure set of values."""
    return ([release(SECURE)], [release(values) for values in bad])


CASES: dict[str, Any] = {
    # no version (Helm takes the newest), a caret range, a partial version (`1.21` is 1.21.x);
    # an exact version, a `v`-prefixed one, a local chart, a packaged chart URL and an OCI
    # digest are pinned
    "HELM-001": (
        [
            release(),
            release(version="v1.9.0"),
            release(version=None, chart="./charts/dex-api"),
            release(version=None, chart="https://charts.example.com/example-1.2.3.tgz"),
            release(version=None, chart=f"oci://registry.example.com/charts/example@{DIGEST}"),
        ],
        [release(version=None), release(version="^1.21"), release(version="1.21")],
    ),
    # privileged at the top, in a subchart's container context, in a pod spec passed whole
    "HELM-002": case(
        {"securityContext": context(privileged=True)},
        {"webhook": {"containerSecurityContext": context(privileged="true")}},
        {"template": pod_template(securityContext=context(privileged=True))},
    ),
    "HELM-003": case(
        {"hostNetwork": True},
        {"controller": {"hostPID": True}},
        {"agent": {"podSecurityContext": {"windowsOptions": {"hostProcess": True}}}},
    ),
    "HELM-004": case(
        {"controller": {"securityContext": context(allowPrivilegeEscalation=True)}},
        {"securityContexts": {"containers": context(allowPrivilegeEscalation=True)}},
    ),
    "HELM-005": case(
        {"securityContext": context(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]})},
        {"webhook": {"containerSecurityContext": {"capabilities": {"add": ["cap_net_admin"]}}}},
    ),
    "HELM-006": case(
        {"podSecurityContext": {"runAsNonRoot": False}},
        {"scheduler": {"securityContexts": {"pod": {"runAsUser": 0}}}},
    ),
    "HELM-007": case(
        {"controller": {"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}}},
    ),
    "HELM-008": case(
        {"template": pod_template(securityContext=context(readOnlyRootFilesystem=False))},
        {"containerSecurityContext": context(readOnlyRootFilesystem="false")},
    ),
    # latest, an empty tag, a map under `images`, a pod spec's image with no tag
    "HELM-009": case(
        {"image": {"repository": "example/app", "tag": "latest"}},
        {"webhook": {"image": {"repository": "example/hook", "tag": "", "digest": ""}}},
        {"images": {"airflow": {"repository": "apache/airflow", "tag": "latest"}}},
        {"template": pod_template(image="ghcr.io/actions/actions-runner")},
    ),
    # no limits, no memory limit in a component, `resources: {}` (drops the chart's own)
    "HELM-010": case(
        {"resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
        {"controller": {"resources": {"limits": {"cpu": "1"}}}},
        {"webhook": {"resources": {}}},
    ),
}
