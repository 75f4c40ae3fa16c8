"""Offline synthesis: the plan's shape, determinism, secrets, unknowns and wiring."""

from __future__ import annotations

import json

import pytest

from contracts.deployment import SECRET_SIG, SIG_KEY, UNKNOWN, Plan, dump_plan, is_secret, load_plan
from tests.conftest import ROOT, STACKS
from toolchain.synth import DYNAMIC_PROVIDER, order_resources, synthesize

pytestmark = pytest.mark.unit


def test_two_runs_give_byte_identical_plans() -> None:
    first = dump_plan(synthesize("prod"))
    second = dump_plan(synthesize("prod"))
    assert first == second


@pytest.mark.parametrize("stack", STACKS)
def test_plan_has_the_shape_of_a_stack_export(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    doc = plan.resources[0].raw
    assert doc["type"] == "pulumi:pulumi:Stack"
    assert doc["urn"] == f"urn:pulumi:{stack}::dex::pulumi:pulumi:Stack::dex-{stack}"
    for res in plan:
        assert res.urn.startswith(f"urn:pulumi:{stack}::dex::")
        assert res.urn.rsplit("::", 1)[0].endswith(res.type)
        if res.custom and not res.type.startswith("pulumi:providers:"):
            assert res.id, res.urn
            assert "inputs" in res.raw
            assert "outputs" in res.raw


@pytest.mark.parametrize("stack", STACKS)
def test_every_custom_resource_has_an_explicit_provider(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    providers = {f"{r.urn}::{r.id}" for r in plan if r.type.startswith("pulumi:providers:")}
    for res in plan:
        if res.type == "pulumi-python:dynamic:Resource":
            # a dynamic resource is its own provider (the sealer, serialized with it)
            assert res.inputs["__provider"] == DYNAMIC_PROVIDER
            continue
        if res.custom and not res.type.startswith("pulumi:providers:"):
            assert res.provider in providers, f"{res.urn} uses no explicit provider"


@pytest.mark.parametrize("stack", STACKS)
def test_resources_come_after_what_they_need(plans: dict[str, Plan], stack: str) -> None:
    seen: set[str] = set()
    for res in plans[stack]:
        needs = set(res.dependencies)
        if res.parent:
            needs.add(res.parent)
        if res.provider:
            needs.add(res.provider.rsplit("::", 1)[0])
        assert needs <= seen, f"{res.urn} listed before {needs - seen}"
        seen.add(res.urn)


def test_order_is_independent_of_registration_order() -> None:
    a = {"urn": "urn:a", "type": "t"}
    b = {"urn": "urn:b", "type": "t", "dependencies": ["urn:c"]}
    c = {"urn": "urn:c", "type": "t", "parent": "urn:a"}
    expected = ["urn:a", "urn:c", "urn:b"]
    for perm in ([a, b, c], [c, b, a], [b, a, c]):
        assert [r["urn"] for r in order_resources(list(perm))] == expected


def _walk(value: object):  # type: ignore[no-untyped-def]
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_secrets_stay_secret(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    text = json.dumps([r.raw for r in plan])
    secrets = [v for r in plan for v in _walk(r.raw) if is_secret(v)]
    assert secrets, "the plan should carry secrets (passwords, kubeconfig)"
    for secret in secrets:
        assert set(secret) == {SIG_KEY, "ciphertext"}
        assert secret["ciphertext"] in ("[withheld]", "[unknown]")
    # The kubeconfig is built from known values, so only its marking keeps it out.
    assert "get-token" not in text
    stack_outputs = plan.resources[0].outputs
    assert is_secret(stack_outputs["kubeconfig"])
    assert stack_outputs["kubeconfig"][SIG_KEY] == SECRET_SIG


def test_generated_passwords_are_unknown_not_invented(plans: dict[str, Plan]) -> None:
    passwords = plans["prod"].of_type("random:index/randomPassword:RandomPassword")
    assert passwords
    for pw in passwords:
        assert pw.outputs["result"]["ciphertext"] == "[unknown]"
    rds = plans["prod"].of_type("aws:rds/instance:Instance")[0]
    assert rds.inputs["password"]["ciphertext"] == "[unknown]"


def test_unknown_sentinel_marks_values_only_known_after_apply(plans: dict[str, Plan]) -> None:
    unknown = {
        (r.type, key)
        for r in plans["prod"]
        if r.custom
        for key, v in r.outputs.items()
        if v == UNKNOWN
    }
    # EKS resolves an add-on's default version at creation; generated ids, keys,
    # certificates and image digests exist only once made. Nothing else is
    # left unknown (generated passwords are unknown too, inside their secret envelopes).
    made_at_deploy = {
        ("random:index/randomId:RandomId", key) for key in ("hex", "b64Url", "b64Std", "dec")
    } | {
        ("tls:index/privateKey:PrivateKey", key)
        for key in ("publicKeyPem", "publicKeyOpenssh", "publicKeyFingerprintSha256")
    }
    assert unknown == {
        ("aws:eks/addon:Addon", "addonVersion"),
        *made_at_deploy,
        ("tls:index/selfSignedCert:SelfSignedCert", "certPem"),
        ("tls:index/selfSignedCert:SelfSignedCert", "validityStartTime"),
        ("tls:index/selfSignedCert:SelfSignedCert", "validityEndTime"),
        ("docker-build:index:Image", "digest"),
        ("docker-build:index:Image", "ref"),
        ("docker-build:index:Image", "contextHash"),
    }


def test_stack_outputs_are_recorded(plans: dict[str, Plan]) -> None:
    outputs = plans["dev"].resources[0].outputs
    assert outputs["cloud"] == "aws"
    assert set(outputs["bucket_names"]) == {
        "raw",
        "bronze",
        "silver",
        "gold",
        "mlflow",
        "airflow-logs",
    }
    assert outputs["cluster_name"] == "dex-dev-eks"


def test_plan_file_round_trips_through_the_reader(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "dev.json"
    path.write_text(dump_plan(synthesize("dev")))
    plan = load_plan(path)
    assert plan.stack == "dev"
    assert len(plan) > 100


def test_reader_accepts_a_real_stack_export() -> None:
    plan = load_plan(ROOT / "tests/fixtures/export-small.json")
    assert plan.stack == "dev"
    assert len(plan) == 5
    rds = plan.of_type("aws:rds/instance:Instance")[0]
    assert is_secret(rds.inputs["password"])
    assert rds.provider
    assert rds.provider.endswith("f2a1a5a5-66c3-4a0d-9c3f-1f4b7c4b0d21")
