"""The PR review comment: one per stack, found again by its marker, summary first, details
collapsed, always under GitHub's limit."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from contracts.deployment import Plan, dump_plan, parse_plan
from dex.cli import app
from dex.review import COMMENT_LIMIT, build_comment, marker
from policies.runner import check
from tests.conftest import Synth
from toolchain.diff import diff_plans

pytestmark = pytest.mark.unit


def _doc(plan: Plan) -> dict:  # type: ignore[type-arg]
    return plan.document()


def test_comment_shape(plans: dict[str, Plan], synth: Synth) -> None:
    head = synth(
        "prod", database={"instance_class": "db.r7g.xlarge"}, network={"cidr": "10.9.0.0/16"}
    )
    body = build_comment(
        "prod",
        diff_plans(plans["prod"], head),
        check(_doc(head), "prod"),
        head_sha="0123456789abcdef",
    )
    lines = body.splitlines()
    assert lines[0] == marker("prod") == "<!-- dex-review:prod -->"
    assert lines[1] == "## ✅ DEX review: `prod` at `0123456789ab`"
    summary = body.index("to replace")
    assert summary < body.index("### Policy check") < body.index("### Plan diff")
    assert summary < body.index("<details>")
    assert "replacement(s)" in body  # the VPC replacement is called out before the details


def test_comment_flags_violations(plans: dict[str, Plan]) -> None:
    insecure = {
        "version": 3,
        "deployment": {
            "resources": [
                {
                    "urn": "urn:pulumi:prod::dex::aws:s3/bucket:Bucket::b",
                    "type": "aws:s3/bucket:Bucket",
                    "custom": True,
                    "id": "b",
                    "inputs": {"bucket": "b", "acl": "public-read"},
                    "outputs": {},
                }
            ]
        },
    }
    head = parse_plan(insecure)
    body = build_comment("prod", diff_plans(plans["prod"], head), check(insecure, "prod"))
    assert "## ❌ DEX review" in body
    assert "AWS-S3-007" in body


@pytest.mark.parametrize(
    ("limit", "trimmed"),
    # a first deploy of prod (the whole platform) no longer fits GitHub's limit
    [(10_000_000, False), (COMMENT_LIMIT, True), (20_000, True), (4_000, True)],
)
def test_comment_stays_under_the_limit(plans: dict[str, Plan], limit: int, trimmed: bool) -> None:
    empty = parse_plan({"version": 3, "deployment": {"resources": []}})
    body = build_comment(
        "prod", diff_plans(empty, plans["prod"]), check(_doc(plans["prod"]), "prod"), limit=limit
    )
    assert len(body) <= limit
    assert ("Trimmed" in body) is trimmed  # when it does not fit, the comment says so
    assert body.startswith(marker("prod"))
    if not trimmed:
        assert body.count("<details><summary>🟢 add") == len(plans["prod"])


def test_cli_review(tmp_path, plans: dict[str, Plan]) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"version": 3, "deployment": {"resources": []}}))
    head = tmp_path / "head.json"
    head.write_text(dump_plan(_doc(plans["dev"])))
    result = CliRunner().invoke(app, ["review", "dev", str(base), str(head), "--sha", "abc"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("<!-- dex-review:dev -->")
    assert "policy (dev)" in result.output  # environment read from the plan
