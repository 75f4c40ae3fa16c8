"""`dex diff`: property-level changes, replacements, renames, secrets, and the PR comment."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from contracts.deployment import Plan, dump_plan, load_plan, parse_plan
from dex.cli import app
from tests.conftest import ROOT, Synth
from toolchain.diff import COMMENT_LIMIT, diff_plans, flatten, render_markdown, render_text, to_json

pytestmark = pytest.mark.unit
runner = CliRunner()


def _doc(resources: list[dict[str, object]]) -> dict[str, object]:
    return {"version": 3, "deployment": {"resources": resources}}


def _res(name: str, type_: str = "aws:s3/bucket:Bucket", **inputs: object) -> dict[str, object]:
    return {
        "urn": f"urn:pulumi:t::dex::{type_}::{name}",
        "type": type_,
        "custom": True,
        "id": name,
        "inputs": inputs,
        "outputs": {},
    }


def test_identical_plans_have_no_changes(plans: dict[str, Plan]) -> None:
    result = diff_plans(plans["dev"], plans["dev"])
    assert result.empty
    assert "No changes." in render_text(result)


def test_config_change_shows_as_update_and_replacement(
    plans: dict[str, Plan], synth: Synth
) -> None:
    after = synth(
        "prod", database={"instance_class": "db.r7g.xlarge"}, network={"cidr": "10.1.0.0/16"}
    )
    result = diff_plans(plans["prod"], after)
    kinds = {(c.type, c.kind) for c in result.resources}
    assert ("aws:rds/instance:Instance", "update") in kinds  # class changes in place
    assert ("aws:ec2/vpc:Vpc", "replace") in kinds  # a new CIDR needs a new VPC
    rds = next(c for c in result.resources if c.type == "aws:rds/instance:Instance")
    change = next(p for p in rds.changes if p.path == "instanceClass")
    assert (change.old, change.new, change.replaces) == ("db.r7g.large", "db.r7g.xlarge", False)
    vpc = next(c for c in result.resources if c.type == "aws:ec2/vpc:Vpc")
    assert any(p.path == "cidrBlock" and p.replaces for p in vpc.changes)
    text = render_text(result)
    assert 'instanceClass: "db.r7g.large" => "db.r7g.xlarge"' in text
    assert "[forces replacement]" in text


def test_environment_change_adds_and_deletes(plans: dict[str, Plan]) -> None:
    result = diff_plans(plans["dev"], plans["prod"])  # different stacks: every URN differs
    counts = result.counts()
    assert counts["add"] == len(plans["prod"])
    assert counts["delete"] == len(plans["dev"])


def test_export_files_diff_with_secrets_and_removals() -> None:
    before = load_plan(ROOT / "tests/fixtures/export-small.json")
    after = load_plan(ROOT / "tests/fixtures/export-small-after.json")
    result = diff_plans(before, after)
    by_name = {c.name: c for c in result.resources}
    assert by_name["dex-dev-legacy"].kind == "delete"
    assert by_name["dex-dev-archive"].kind == "add"
    rds = by_name["dex-dev-database-postgres"]
    assert rds.kind == "update"
    assert {p.path for p in rds.changes} == {"instanceClass", "multiAz"}  # not the password
    assert [p.path for p in result.output_changes] == ["cluster_name"]
    assert "[secret]" not in render_text(result)  # unchanged secret: not shown at all


def test_secret_change_is_never_printed_in_plaintext() -> None:
    secret = {
        "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
        "ciphertext": "v1:abc",
    }
    old = parse_plan(_doc([_res("b", password="hunter2")]))
    new = parse_plan(_doc([_res("b", password=secret)]))
    text = render_text(diff_plans(old, new))
    assert "[secret]" in text


def test_rename_through_alias_is_an_update_not_delete_and_add() -> None:
    old = parse_plan(_doc([_res("old-name", bucket="x")]))
    renamed = _res("new-name", bucket="x")
    renamed["aliases"] = ["urn:pulumi:t::dex::aws:s3/bucket:Bucket::old-name"]
    result = diff_plans(old, parse_plan(_doc([renamed])))
    assert [(c.kind, c.renamed_from) for c in result.resources] == [
        ("update", "urn:pulumi:t::dex::aws:s3/bucket:Bucket::old-name")
    ]


def test_kubernetes_name_change_forces_replacement() -> None:
    type_ = "kubernetes:core/v1:ConfigMap"
    old = parse_plan(_doc([_res("cm", type_, metadata={"name": "a"}, data={"k": "1"})]))
    new = parse_plan(_doc([_res("cm", type_, metadata={"name": "b"}, data={"k": "2"})]))
    (change,) = diff_plans(old, new).resources
    assert change.kind == "replace"
    assert {(p.path, p.replaces) for p in change.changes} == {
        ("metadata.name", True),
        ("data.k", False),
    }


def test_flatten_paths() -> None:
    assert flatten({"a": {"b": [1, {"c": 2}]}, "__defaults": ["x"], "e": {}}) == {
        "a.b[0]": 1,
        "a.b[1].c": 2,
        "e": {},
    }


def test_markdown_is_a_pr_comment_and_stays_under_the_limit(plans: dict[str, Plan]) -> None:
    result = diff_plans(plans["dev"], plans["prod"])
    md = render_markdown(result, "Stack `prod`")
    assert md.startswith("### Stack `prod`")
    assert md.index("| change | count |") < md.index("<details>")
    assert len(md) <= COMMENT_LIMIT
    assert "Trimmed:" in md  # 300+ resources do not fit: the note says so
    small = render_markdown(result, limit=3000)
    assert len(small) <= 3000
    assert "Trimmed:" in small


def test_markdown_without_trimming_when_it_fits(plans: dict[str, Plan], synth: Synth) -> None:
    after = synth("dev", registry={"keep_images": 5})
    md = render_markdown(diff_plans(plans["dev"], after))
    assert "Trimmed" not in md
    assert "0 to add, 3 to update, 0 to replace, 0 to delete" in md
    assert md.count("<details>") == 3


def test_json_format(plans: dict[str, Plan], synth: Synth) -> None:
    after = synth("dev", registry={"keep_images": 5})
    doc = to_json(diff_plans(plans["dev"], after))
    assert doc["summary"] == {"add": 0, "update": 3, "replace": 0, "delete": 0}
    json.dumps(doc)  # serializable


def test_cli_diff_formats_and_errors(tmp_path, plans: dict[str, Plan]) -> None:  # type: ignore[no-untyped-def]
    a = ROOT / "tests/fixtures/export-small.json"
    b = ROOT / "tests/fixtures/export-small-after.json"
    res = runner.invoke(app, ["diff", str(a), str(b), "--format", "markdown"])
    assert res.exit_code == 0, res.output
    assert "🔴 delete" in res.output
    res = runner.invoke(app, ["diff", str(a), str(b), "--format", "json"])
    assert json.loads(res.output)["summary"]["delete"] == 1

    missing = runner.invoke(app, ["diff", str(tmp_path / "nope.json"), str(b)])
    assert missing.exit_code == 2
    assert "no such file" in missing.output
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    bad = runner.invoke(app, ["diff", str(garbage), str(b)])
    assert bad.exit_code == 2
    assert "not JSON (line 1" in bad.output
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"version": 2, "resources": []}))
    res = runner.invoke(app, ["diff", str(wrong), str(b)])
    assert res.exit_code == 2
    assert "version 3" in res.output
    noresources = tmp_path / "shape.json"
    noresources.write_text(json.dumps({"version": 3, "deployment": {"resources": [{"type": 1}]}}))
    res = runner.invoke(app, ["diff", str(noresources), str(b)])
    assert res.exit_code == 2
    assert "resources[0] has no string `urn`" in res.output
    folder = runner.invoke(app, ["diff", str(tmp_path), str(b)])
    assert folder.exit_code == 2
    assert "is a directory" in folder.output


def test_cli_plan_writes_the_plan_and_prints_a_tree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sub" / "dev.json"
    res = runner.invoke(app, ["plan", "dev", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "dex:aws:Network dex-dev-network" in res.output
    assert "aws:ec2/subnet:Subnet x9" in res.output
    assert load_plan(out).stack == "dev"
    assert out.read_text() == dump_plan(json.loads(out.read_text()))
    js = runner.invoke(app, ["plan", "gcp-dev", "--format", "json"])
    assert json.loads(js.output)["version"] == 3
    md = runner.invoke(app, ["plan", "dev", "--format", "markdown"])
    assert md.output.startswith("### Plan for `dev`")


def test_cli_plan_unknown_stack_lists_the_known_ones() -> None:
    res = runner.invoke(app, ["plan", "staging"])
    assert res.exit_code == 2
    assert "unknown stack 'staging'" in res.output
    assert "gcp-prod" in res.output
