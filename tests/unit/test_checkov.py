"""Checkov on Pulumi plans (toolchain/checkov): the conversion, the accepted findings, and the
real Checkov (pinned, in .venv-checkov: `make checkov`) over the four stacks and over one
insecure edit per mapped type family."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from contracts.deployment import UNKNOWN, document, redacted_secret
from policies.runner import (
    CHECKOV_EQUIVALENTS,
    check,
    checkov_equivalents,
    render_json,
    render_markdown,
    render_sarif,
    render_text,
)
from tests.unit.checkov_flips import FLIPS
from tests.unit.test_policies import CASES as POLICY_CASES
from tests.unit.test_policies import build_doc
from toolchain.checkov import merged, severities, stack_of
from toolchain.checkov.accepted import ACCEPTED, AcceptedError, load, reason_for
from toolchain.checkov.convert import (
    NOT_SCANNED_HELM,
    ConversionError,
    Converted,
    convert,
    plural,
    snake,
    tables,
)
from toolchain.checkov.run import Scan, executable, scan

pytestmark = pytest.mark.unit

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"
STACKS = ("dev", "prod", "gcp-dev", "gcp-prod")


def _plan(stack: str) -> dict[str, Any]:
    return json.loads((SNAPSHOTS / f"{stack}.json").read_text())


def _first(stack: str, type_: str) -> dict[str, Any]:
    return next(r for r in _plan(stack)["deployment"]["resources"] if r["type"] == type_)


def _resource(type_: str, inputs: dict[str, Any], name: str = "r", **extra: Any) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:prod::dex::{type_}::{name}",
        "type": type_,
        "custom": True,
        "inputs": inputs,
        "outputs": {},
        **extra,
    }


def _values(converted: Converted, address_prefix: str) -> dict[str, Any]:
    resources = converted.terraform["planned_values"]["root_module"]["resources"]
    return next(r["values"] for r in resources if r["address"].startswith(address_prefix))


# -- names and shapes -------------------------------------------------------------------------


def test_names() -> None:
    assert snake("enableDnsHostnames") == "enable_dns_hostnames"
    assert snake("ipv6CidrBlock") == "ipv6_cidr_block"
    assert snake("kmsKeyId") == "kms_key_id"
    assert plural("lifecycle_rule") == "lifecycle_rules"
    assert plural("policy") == "policies"
    assert plural("cors") == "cors"


def test_gcp_blocks_take_their_terraform_shape() -> None:
    """A pluralised list gets its Terraform name back, a MaxItems-1 object becomes a
    one-element list, a map keeps its keys, an unknown is left out (after_unknown)."""
    bucket = _resource(
        "gcp:storage/bucket:Bucket",
        {
            "lifecycleRules": [{"action": {"type": "Delete"}, "condition": {"age": 30}}],
            "versioning": {"enabled": True},
            "labels": {"dataLayer": "raw"},
            "uniformBucketLevelAccess": True,
            "selfLink": UNKNOWN,
        },
    )
    converted = convert(document([bucket]))
    values = _values(converted, "google_storage_bucket.")
    assert values["lifecycle_rule"] == [
        {"action": [{"type": "Delete"}], "condition": [{"age": 30}]}
    ]
    assert values["versioning"] == [{"enabled": True}]
    assert values["labels"] == {"dataLayer": "raw"}
    assert values["uniform_bucket_level_access"] is True
    assert "self_link" not in values
    change = converted.terraform["resource_changes"][0]["change"]
    assert change["after_unknown"] == {"self_link": True}


def test_aws_renames_and_secrets() -> None:
    cluster = _first("prod", "aws:eks/cluster:Cluster")
    values = _values(convert(document([cluster])), "aws_eks_cluster.")
    assert values["encryption_config"][0]["provider"] == [
        {"key_arn": cluster["inputs"]["encryptionConfig"]["provider"]["keyArn"]}
    ]
    assert values["vpc_config"][0]["endpoint_public_access"] is False
    db = _resource("aws:rds/instance:Instance", {"password": redacted_secret(), "tags": {"A": "b"}})
    values = _values(convert(document([db])), "aws_db_instance.")
    assert values["password"] == "(secret)"
    assert values["tags"] == {"A": "b"}


def test_references_come_from_property_dependencies() -> None:
    bucket = _resource("aws:s3/bucket:Bucket", {"bucket": "b"}, name="data")
    block = _resource(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        {"bucket": "b", "blockPublicAcls": True},
        name="data-pab",
        propertyDependencies={"bucket": [bucket["urn"]]},
    )
    converted = convert(document([bucket, block]))
    config = converted.terraform["configuration"]["root_module"]["resources"]
    refs = next(r for r in config if r["type"] == "aws_s3_bucket_public_access_block")
    assert refs["expressions"] == {
        "bucket": {"references": ["aws_s3_bucket.data.id", "aws_s3_bucket.data"]}
    }
    assert converted.urns["aws_s3_bucket.data"] == bucket["urn"]


def test_every_bridged_type_of_the_stacks_has_a_table() -> None:
    known = tables()
    for stack in STACKS:
        converted = convert(_plan(stack))  # raises on a type without a table
        bridged = {t for t in converted.types.values() if not t.startswith("kubernetes:")}
        assert bridged <= set(known)
        assert converted.scanned > 150


def test_unknown_bridged_type_is_refused() -> None:
    with pytest.raises(ConversionError, match="aws:newservice/thing:Thing"):
        convert(document([_resource("aws:newservice/thing:Thing", {})]))


def test_helm_releases_and_custom_resources_are_counted_not_skipped() -> None:
    converted = convert(_plan("prod"))
    helm = [
        r
        for r in _plan("prod")["deployment"]["resources"]
        if r["type"] == "kubernetes:helm.sh/v3:Release"
    ]
    assert len(converted.not_scanned[NOT_SCANNED_HELM]) == len(helm) > 5
    everything = {r["urn"] for r in _plan("prod")["deployment"]["resources"] if r.get("custom")}
    handled = set(converted.urns.values()) | {
        u for us in converted.not_scanned.values() for u in us
    }
    providers = {u for u in everything if "::pulumi:providers:" in u or "$pulumi:providers:" in u}
    assert everything - providers <= handled


def test_manifests_are_kubernetes_objects() -> None:
    converted = convert(_plan("prod"))
    kinds = {m["kind"] for m in converted.manifests.values()}
    assert {"Deployment", "CronJob", "NetworkPolicy", "Namespace"} <= kinds
    apis = {m["apiVersion"] for m in converted.manifests.values()}
    assert "v1" in apis
    assert "apps/v1" in apis
    assert not any(a.startswith("core/") for a in apis)


@pytest.mark.parametrize("provider", ["aws", "gcp"])
def test_tables_are_derived_from_the_committed_metadata_and_the_sdks(provider: str) -> None:
    """metadata/<provider>.json is exactly what derive.py makes of the copied bridge metadata
    (sources/) and the installed SDK: a provider upgrade that changes a map property fails."""
    from toolchain.checkov.derive import derive

    folder = Path(__file__).resolve().parents[2] / "toolchain" / "checkov" / "metadata"
    committed = json.loads((folder / f"{provider}.json").read_text())
    metadata = json.loads((folder / "sources" / f"{provider}-bridge-metadata.json").read_text())
    tokens = (folder / "sources" / f"{provider}-tokens.txt").read_text().split()
    assert derive(metadata, tokens, committed["source"]) == committed


def test_nested_renames_belong_to_the_longest_prefix_resource() -> None:
    from toolchain.checkov.derive import renamed_by_resource

    renamed = {
        "aws:eks/ClusterVpcConfig:ClusterVpcConfig": {"subnetIds": "subnet_ids"},
        "aws:eks/NodeGroupScalingConfig:NodeGroupScalingConfig": {"maxSize": "max_size"},
        "aws:eks/cluster:Cluster": {"identities": "identity"},
        "aws:rds/Orphan:Orphan": {"x": "y"},
    }
    out = renamed_by_resource(
        renamed,
        ["aws:eks/cluster:Cluster", "aws:eks/nodeGroup:NodeGroup", "aws:rds/instance:Instance"],
    )
    assert out == {
        "aws:eks/cluster:Cluster": {"subnetIds": "subnet_ids", "identities": "identity"},
        "aws:eks/nodeGroup:NodeGroup": {"maxSize": "max_size"},
    }


# -- accepted findings ------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accepted.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("- {check: CKV_AWS, stacks: [dev], reason: a reason long enough to pass}", "Checkov id"),
        ("- {check: CKV_AWS_1, stacks: [dev], reason: short}", "must say why"),
        (
            "- {check: CKV_AWS_1, stacks: [qa], reason: a reason long enough to pass}",
            "no stack named qa",
        ),
        (
            "- {check: CKV_AWS_1, stack: [dev], reason: a reason long enough to pass}",
            "unknown field",
        ),
        (
            "- {check: CKV_AWS_1, stacks: dev, reason: a reason long enough to pass}",
            "list of stack",
        ),
    ],
)
def test_accepted_file_is_validated(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(AcceptedError, match=message):
        load(_write(tmp_path, f"accepted:\n  {entry}\n"), stacks=STACKS)


def test_acceptance_is_by_check_stack_and_resource(tmp_path: Path) -> None:
    entries = load(
        _write(
            tmp_path,
            "accepted:\n  - {check: CKV_AWS_18, stacks: [dev], resources: ['*-raw'], "
            "reason: dev buckets log nothing by choice}\n",
        ),
        stacks=STACKS,
    )
    assert reason_for(entries, "CKV_AWS_18", "dev", "urn:pulumi:dev::dex::x::dex-dev-raw")
    assert (
        reason_for(entries, "CKV_AWS_18", "prod", "urn:pulumi:prod::dex::x::dex-prod-raw") is None
    )
    assert reason_for(entries, "CKV_AWS_18", "dev", "urn:pulumi:dev::dex::x::dex-dev-gold") is None
    assert reason_for(entries, "CKV_AWS_19", "dev", "urn:pulumi:dev::dex::x::dex-dev-raw") is None


def test_merge_makes_unaccepted_failures_mandatory() -> None:
    from toolchain.checkov.accepted import Acceptance
    from toolchain.checkov.run import Finding

    doc = document(
        [
            _resource("aws:s3/bucket:Bucket", {"bucket": "b"}, name="a"),
            _resource("aws:s3/bucket:Bucket", {"bucket": "c"}, name="b"),
        ]
    )
    report = check(doc, "prod", rules=[])
    urn_a, urn_b = (r["urn"] for r in doc["deployment"]["resources"])
    result = Scan(
        [
            Finding(
                "CKV_AWS_18",
                "Access logging",
                urn_a,
                "aws:s3/bucket:Bucket",
                False,
                "terraform_plan",
            ),
            Finding(
                "CKV_AWS_18",
                "Access logging",
                urn_b,
                "aws:s3/bucket:Bucket",
                False,
                "terraform_plan",
            ),
            Finding(
                "CKV_AWS_19", "Encrypted", urn_a, "aws:s3/bucket:Bucket", True, "terraform_plan"
            ),
        ],
        seconds=1.5,
    )
    accepted = [Acceptance("CKV_AWS_18", ("prod",), ("a",), "bucket a logs elsewhere, by design")]
    out = merged(
        report,
        convert(doc),
        result,
        "prod",
        accepted,
        severities({"AWS-S3-011": ["CKV_AWS_18"]}, {"AWS-S3-011": "high"}),
    )
    assert not out.passed
    assert [(v.policy_id, v.urn, v.enforcement, v.severity) for v in out.violations] == [
        ("CKV_AWS_18", urn_b, "mandatory", "high")
    ]
    assert out.scan is not None
    assert [a.urn for a in out.scan.accepted] == [urn_a]
    assert out.scan.checks == 3
    assert out.scan.passed == 1
    for text in (render_text(out), render_markdown(out), render_json(out)):
        assert "CKV_AWS_18" in text
        assert "checkov 3.3.30" in text.replace('"tool": ', "")
    sarif = json.loads(render_sarif(out, "Pulumi.prod.yaml", rules=[]))
    assert sarif["runs"][0]["tool"]["driver"]["rules"][0]["id"] == "CKV_AWS_18"
    assert sarif["runs"][0]["results"][0]["ruleIndex"] == 0


def test_stack_of() -> None:
    assert stack_of(_plan("gcp-prod")) == "gcp-prod"


# -- the real Checkov -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_runs() -> dict[str, Scan]:
    """One Checkov run: the four stacks, and each flip's original and edited resource."""
    executable()  # a clear error when `make checkov` has not run
    plans: dict[str, Converted] = {s: convert(_plan(s)) for s in STACKS}
    for i, flip in enumerate(FLIPS):
        original = _first(flip.stack, flip.type)
        edited = copy.deepcopy(original)
        flip.edit(edited["inputs"])
        # what a stack export would hold: outputs as the inputs now say
        edited["outputs"] = {
            k: v for k, v in edited["outputs"].items() if k not in original["inputs"]
        } | edited["inputs"]
        plans[f"flip-{i}-original"] = convert(document([original]))
        plans[f"flip-{i}-edited"] = convert(document([edited]))
    bucket = _first("prod", "aws:s3/bucket:Bucket")
    block = next(
        r
        for r in _plan("prod")["deployment"]["resources"]
        if r["type"] == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
        and bucket["urn"] in (r.get("propertyDependencies") or {}).get("bucket", [])
    )
    unlinked = copy.deepcopy(block)
    unlinked.pop("propertyDependencies")
    plans["graph-linked"] = convert(document([bucket, block]))
    plans["graph-unlinked"] = convert(document([bucket, unlinked]))
    for rule_id, (good, bad, *_) in POLICY_CASES.items():
        plans[f"rule-{rule_id}-good"] = convert(build_doc(good))
        plans[f"rule-{rule_id}-bad"] = convert(build_doc(bad))
    return scan(plans)


def _verdict(result: Scan, check_id: str, type_: str) -> bool | None:
    found = [f.passed for f in result.findings if f.check_id == check_id and f.type == type_]
    return all(found) if found else None


@pytest.mark.parametrize(
    "i", range(len(FLIPS)), ids=[f"{f.type.split(':')[1]}-{f.check}" for f in FLIPS]
)
def test_an_insecure_edit_flips_its_checkov_check(checkov_runs: dict[str, Scan], i: int) -> None:
    flip = FLIPS[i]
    assert _verdict(checkov_runs[f"flip-{i}-original"], flip.check, flip.type) is True
    assert _verdict(checkov_runs[f"flip-{i}-edited"], flip.check, flip.type) is False


def test_graph_checks_see_connected_resources(checkov_runs: dict[str, Scan]) -> None:
    """CKV2_AWS_6 (a bucket has a public access block) passes only through the reference
    the conversion writes from propertyDependencies."""
    assert _verdict(checkov_runs["graph-linked"], "CKV2_AWS_6", "aws:s3/bucket:Bucket") is True
    assert _verdict(checkov_runs["graph-unlinked"], "CKV2_AWS_6", "aws:s3/bucket:Bucket") is False


def test_the_stacks_pass_checkov_with_every_failure_explained(
    checkov_runs: dict[str, Scan],
) -> None:
    entries = load(stacks=STACKS)
    unexplained = []
    used: set[int] = set()
    for stack in STACKS:
        result = checkov_runs[stack]
        assert len(result.passed) > 500
        for f in result.failed:
            hits = [i for i, e in enumerate(entries) if e.covers(f.check_id, stack, f.urn)]
            used.update(hits)
            if not hits:
                unexplained.append((stack, f.check_id, f.urn.rsplit("::", 1)[-1], f.title))
    assert unexplained == [], f"Checkov failures nobody accepted in {ACCEPTED.name}"
    stale = [f"{e.check} on {e.stacks}" for i, e in enumerate(entries) if i not in used]
    assert stale == [], f"entries of {ACCEPTED.name} that cover no finding"


def _observed_equivalents(runs: dict[str, Scan]) -> dict[str, list[str]]:
    """Per DEX rule, the Checkov checks that fail on a non-compliant fixture and pass on every
    compliant fixture resource of the same type that they judge."""
    out: dict[str, list[str]] = {}
    for rule_id in sorted(POLICY_CASES):
        good, bad = runs[f"rule-{rule_id}-good"], runs[f"rule-{rule_id}-bad"]
        passing = {(f.check_id, f.type) for f in good.findings if f.passed}
        failing_good = {(f.check_id, f.type) for f in good.findings if not f.passed}
        found = sorted(
            {
                f.check_id
                for f in bad.failed
                if (f.check_id, f.type) in passing and (f.check_id, f.type) not in failing_good
            }
        )
        if found:
            out[rule_id] = found
    return out


def test_rules_table_names_the_checkov_checks_seen_on_the_fixtures(
    checkov_runs: dict[str, Scan],
) -> None:
    """policies/checkov-equivalents.json (the rules table's Checkov column) is what Checkov
    does on the rules' own fixtures. DEX_UPDATE_EQUIVALENTS=1 rewrites it."""
    import os

    observed = _observed_equivalents(checkov_runs)
    if os.environ.get("DEX_UPDATE_EQUIVALENTS"):
        CHECKOV_EQUIVALENTS.write_text(
            json.dumps(
                {
                    "about": "DEX rule -> Checkov checks that fail on the rule's non-compliant "
                    "fixture and pass on its compliant one (tests/unit/test_checkov.py)",
                    "checkov": "3.3.30",
                    "equivalents": observed,
                },
                indent=1,
                sort_keys=True,
            )
            + "\n"
        )
    assert checkov_equivalents() == observed
    assert len(observed) > 40


def test_cli_policy_check_with_checkov(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dex.cli import app

    runner = CliRunner()
    prod = str(SNAPSHOTS / "prod.json")
    res = runner.invoke(app, ["policy", "check", prod, "--with", "checkov", "-f", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)["checkov"]
    assert out["failed"] == 0
    assert out["passed"] > 500
    assert {a["policy_id"] for a in out["accepted"]} >= {"CKV_AWS_144", "CKV_K8S_43"}
    assert out["not_scanned"][NOT_SCANNED_HELM] == 12

    # one flaw no accepted entry covers: an SQS queue without encryption
    doc = _plan("prod")
    queue = next(r for r in doc["deployment"]["resources"] if r["type"] == "aws:sqs/queue:Queue")
    for key in ("kmsMasterKeyId", "sqsManagedSseEnabled"):
        queue["inputs"].pop(key, None)
        queue["outputs"].pop(key, None)
    edited = tmp_path / "prod-edited.json"
    edited.write_text(json.dumps(doc))
    res = runner.invoke(app, ["policy", "check", str(edited), "--with", "checkov"])
    assert res.exit_code == 1, res.output
    assert "[MANDATORY] medium   CKV_AWS_27" in res.output
    assert "FAILED" in res.output

    monkeypatch.setenv("DEX_CHECKOV", str(tmp_path / "no-checkov"))
    res = runner.invoke(app, ["policy", "check", prod, "--with", "checkov"])
    assert res.exit_code == 2
    assert "make checkov" in res.output


def test_review_comment_shows_both(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dex.cli import app

    base = tmp_path / "base.json"
    base.write_text(json.dumps(document([])))
    head = str(SNAPSHOTS / "gcp-prod.json")
    args = ["review", "gcp-prod", str(base), head, "--env", "prod", "--with-checkov"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "0 mandatory, 1 advisory" in res.output  # HELM-008, accepted everywhere
    assert "**checkov 3.3.30**" in res.output
    assert "Accepted Checkov findings" in res.output
    assert "Helm release" in res.output


def test_state_is_the_outputs_with_the_inputs_where_they_say_nothing() -> None:
    """A stack export's outputs are the refreshed state (drift included) and win; a plan's
    unknown outputs never hide a known input; nested objects merge; Pulumi's own keys go."""
    from toolchain.checkov.convert import _state

    inputs = {
        "versioning": {"enabled": True, "mfaDelete": False},
        "acl": "private",
        "__defaults": [],
    }
    outputs = {"versioning": {"enabled": False}, "acl": UNKNOWN, "arn": "arn:x", "__meta": "{}"}
    assert _state(inputs, outputs) == {
        "versioning": {"enabled": False, "mfaDelete": False},
        "acl": "private",
        "arn": "arn:x",
    }
