"""The offline validators, each proven on valid and deliberately broken objects."""

from __future__ import annotations

import copy

import pytest

from contracts.deployment import parse_plan, redacted_secret
from toolchain.validate import (
    SchemaNotFound,
    helm_merge,
    kubernetes_validator,
    load_chart,
    validate_custom_resource,
    validate_helm_values,
    validate_kubernetes,
    validate_plan,
)

pytestmark = pytest.mark.unit

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "api", "namespace": "apps", "labels": {"app": "api"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "api"}},
        "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {
                "containers": [
                    {
                        "name": "api",
                        "image": "registry/api@sha256:" + "a" * 64,
                        "ports": [{"containerPort": 8000, "name": "http"}],
                        "securityContext": {
                            "runAsNonRoot": True,
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "resources": {"limits": {"cpu": "1", "memory": "512Mi"}},
                    }
                ]
            },
        },
    },
}
NETWORK_POLICY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "default-deny", "namespace": "apps"},
    "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
}


def _broken(obj: dict, path: list[str], key: str, value: object) -> dict:  # type: ignore[type-arg]
    out = copy.deepcopy(obj)
    node = out
    for part in path:
        node = node[part]
    node[key] = value
    return out


@pytest.mark.parametrize(
    "obj",
    [
        DEPLOYMENT,
        NETWORK_POLICY,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": "apps",
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
    ],
)
def test_valid_kubernetes_objects_pass(obj: dict) -> None:  # type: ignore[type-arg]
    assert validate_kubernetes(obj) == []


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        (_broken(DEPLOYMENT, ["spec"], "replica", 2), "'replica' was unexpected"),
        (_broken(DEPLOYMENT, ["spec"], "replicas", "two"), "spec.replicas: 'two' is not of type"),
        (
            _broken(
                DEPLOYMENT, ["spec", "template", "spec", "containers", 0], "imagePullPolice", "x"
            ),
            "spec.template.spec.containers[0]",
        ),
        (
            _broken(NETWORK_POLICY, ["spec"], "policyType", ["Ingress"]),
            "'policyType' was unexpected",
        ),
        (
            {k: v for k, v in DEPLOYMENT.items() if k != "spec"} | {"spec": {"replicas": 1}},
            "'selector' is a required property",
        ),
    ],
)
def test_broken_kubernetes_objects_fail_with_the_path(obj: dict, needle: str) -> None:  # type: ignore[type-arg]
    errors = validate_kubernetes(obj)
    assert errors, "a broken object must not validate"
    assert any(needle in e for e in errors), errors


def test_every_error_is_reported_not_only_the_first() -> None:
    obj = _broken(_broken(DEPLOYMENT, ["spec"], "replica", 2), ["metadata"], "nmae", "x")
    assert len(validate_kubernetes(obj)) == 2


def test_validators_are_built_once_per_kind() -> None:
    validate_kubernetes(DEPLOYMENT)
    before = kubernetes_validator.cache_info()
    for _ in range(20):
        validate_kubernetes(DEPLOYMENT)
    after = kubernetes_validator.cache_info()
    assert after.misses == before.misses  # no schema file parsed again
    assert after.hits == before.hits + 20


def test_custom_kinds_are_not_in_the_kubernetes_schema() -> None:
    with pytest.raises(SchemaNotFound):
        validate_kubernetes(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": {"name": "x"},
            }
        )


CUSTOM_RESOURCES = {
    "ServiceMonitor": {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "api", "namespace": "apps"},
        "spec": {
            "selector": {"matchLabels": {"app": "api"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    },
    "PrometheusRule": {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "slo"},
        "spec": {
            "groups": [
                {
                    "name": "api",
                    "rules": [
                        {
                            "alert": "ApiDown",
                            "expr": "up == 0",
                            "for": "5m",
                            "labels": {"severity": "page"},
                            "annotations": {"runbook_url": "https://x"},
                        }
                    ],
                }
            ]
        },
    },
    "Certificate": {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "api-tls"},
        "spec": {
            "secretName": "api-tls",
            "dnsNames": ["api.example.com"],
            "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"},
        },
    },
    "ClusterIssuer": {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": "selfsigned"},
        "spec": {"selfSigned": {}},
    },
    "SealedSecret": {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": "db", "namespace": "apps"},
        "spec": {
            "encryptedData": {"url": "AgBy3i4OJSWK+PiTySYZZA=="},
            "template": {"metadata": {"name": "db"}, "type": "Opaque"},
        },
    },
}
CR_BREAKS = {
    "ServiceMonitor": (["spec", "endpoints", 0], "prot", "http"),
    "PrometheusRule": (["spec", "groups", 0], "rulez", []),
    "Certificate": (["spec"], "dnsName", ["x"]),
    "ClusterIssuer": (["spec"], "selfSigend", {}),
    "SealedSecret": (["spec"], "encryptedDta", {}),
}


@pytest.mark.parametrize("kind", sorted(CUSTOM_RESOURCES))
def test_custom_resources_valid_and_broken(kind: str) -> None:
    good = CUSTOM_RESOURCES[kind]
    assert validate_custom_resource(good) == []
    path, key, value = CR_BREAKS[kind]
    bad = copy.deepcopy(good)
    node = bad
    for part in path:
        node = node[part]
    node[key] = value
    errors = validate_custom_resource(bad)
    assert any(f"'{key}' was unexpected" in e for e in errors), errors


def test_helm_merge_follows_helm() -> None:
    defaults = {"a": {"b": 1, "c": [1, 2]}, "d": 1, "e": {"f": 1}}
    assert helm_merge(defaults, {"a": {"c": [3]}, "d": None, "e": {"g": 2}}) == {
        "a": {"b": 1, "c": [3]},
        "e": {"f": 1, "g": 2},
    }


@pytest.mark.parametrize(
    ("chart", "good", "bad", "needle"),
    [
        (
            "airflow",
            {"executor": "KubernetesExecutor", "webserver": {"replicas": 2}},
            {"executor": "KubernetesExecutor", "workers": {"replicaz": 1}},
            "'replicaz' was unexpected",
        ),
        ("airflow", {}, {"executor": 3}, "executor: 3 is not of type 'string'"),
        ("mlflow", {"replicaCount": 2}, {"replicaCount": 2, "backendStroe": {}}, "'backendStroe'"),
        ("cert-manager", {"crds": {"enabled": True}}, {"crds": {"enabeld": True}}, "'enabeld'"),
        ("loki", {"deploymentMode": "SingleBinary"}, {"deploymentMode": 7}, "deploymentMode: 7"),
    ],
)
def test_helm_values_against_chart_schema(chart: str, good: dict, bad: dict, needle: str) -> None:  # type: ignore[type-arg]
    assert validate_helm_values(chart, good) == []
    errors = validate_helm_values(chart, bad)
    assert any(needle in e for e in errors), errors


def test_chart_without_schema_checks_keys_against_its_defaults() -> None:
    assert load_chart("sealed-secrets").schema is None
    assert validate_helm_values("sealed-secrets", {"keyrenewperiod": "0"}) == []
    assert validate_helm_values("sealed-secrets", {"keyrenewperiode": "0"}) == [
        "keyrenewperiode: not a value of the chart; did you mean 'keyrenewperiod'?"
    ]
    # nested keys are checked; free-form maps (resources, annotations, ...) are not
    assert validate_helm_values(
        "ingress-nginx", {"controller": {"replicaCont": 2, "resources": {"limits": {}}}}
    ) == ["controller.replicaCont: not a value of the chart; did you mean 'replicaCount'?"]
    # a subchart's keys belong to the subchart, whose defaults are not vendored
    assert validate_helm_values("kube-prometheus-stack", {"grafana": {"anything": 1}}) == []
    with pytest.raises(SchemaNotFound, match="no chart 'nginx'"):
        load_chart("nginx")


def _plan(*resources: dict) -> object:  # type: ignore[type-arg]
    return parse_plan({"version": 3, "deployment": {"resources": list(resources)}}, "test")


def _k8s(obj: dict, name: str) -> dict:  # type: ignore[type-arg]
    api, kind = obj["apiVersion"], obj["kind"]
    group = api if "/" in api else f"core/{api}"
    return {
        "urn": f"urn:pulumi:t::dex::kubernetes:{group}:{kind}::{name}",
        "type": f"kubernetes:{group}:{kind}",
        "custom": True,
        "id": name,
        "inputs": obj,
        "outputs": {},
    }


def test_validate_plan_covers_objects_custom_resources_and_releases() -> None:
    release = {
        "urn": "urn:pulumi:t::dex::kubernetes:helm.sh/v3:Release::airflow",
        "type": "kubernetes:helm.sh/v3:Release",
        "custom": True,
        "id": "airflow",
        "inputs": {
            "chart": "airflow",
            "version": "1.21.0",
            "values": {"executor": "KubernetesExecutor", "webserverSecretKey": redacted_secret()},
        },
        "outputs": {},
    }
    secret_dep = _broken(DEPLOYMENT, ["metadata"], "annotations", {"x": redacted_secret()})
    good = _plan(_k8s(secret_dep, "api"), _k8s(CUSTOM_RESOURCES["ServiceMonitor"], "sm"), release)
    assert validate_plan(good) == []  # type: ignore[arg-type]

    bad_release = copy.deepcopy(release)
    bad_release["inputs"]["version"] = "1.20.0"
    bad_release["inputs"]["values"]["workers"] = {"replicaz": 1}
    bad = _plan(
        _k8s(_broken(DEPLOYMENT, ["spec"], "replica", 1), "api"),
        _k8s(_broken(CUSTOM_RESOURCES["ServiceMonitor"], ["spec"], "selectr", {}), "sm"),
        bad_release,
    )
    findings = validate_plan(bad)  # type: ignore[arg-type]
    checks = sorted(f.check for f in findings)
    assert checks == ["crd", "helm", "helm", "kubernetes"], [str(f) for f in findings]
    assert any("differs from the schema's '1.21.0'" in f.message for f in findings)


def test_shipped_plans_validate(plans) -> None:  # type: ignore[no-untyped-def]
    for stack, plan in plans.items():
        assert validate_plan(plan) == [], stack
