"""The pack config's `trustedAccounts` (AWS-IAM-006): accounts a stack may grant to besides its
own, through the runner, the CLI's --config and the CrossGuard config schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dex.cli import app
from policies import all_rules
from policies.crossguard import CONFIG_SCHEMA, PackConfigError, pack_config, pack_config_file
from policies.runner import check
from tests.unit.policy_cases.aws import FOREIGN, KEY, OWN_ROLE, ROOT, allow, doc
from tests.unit.test_policies import build_doc

pytestmark = pytest.mark.unit

RULE = next(r for r in all_rules() if r.id == "AWS-IAM-006")
SHARED = build_doc(
    [OWN_ROLE, (KEY, {"policy": doc(ROOT, allow({"AWS": f"arn:aws:iam::{FOREIGN}:root"}))})]
)


def test_a_foreign_account_is_flagged_unless_trusted() -> None:
    flagged = check(SHARED, "prod", rules=[RULE])
    assert [v.message for v in flagged.violations] == [
        f"statement S grants to foreign account {FOREIGN}"
    ]
    trusted = check(SHARED, "prod", pack_config({"trustedAccounts": [FOREIGN]}), rules=[RULE])
    assert trusted.violations == ()
    other = check(SHARED, "prod", pack_config({"trustedAccounts": ["222222222222"]}), rules=[RULE])
    assert len(other.violations) == 1


@pytest.mark.parametrize("bad", ["12345", "abcdefghijkl", "1234567890123"])
def test_trusted_accounts_must_be_account_ids(bad: str) -> None:
    with pytest.raises(PackConfigError, match=f"trustedAccounts: {bad} is not a 12-digit"):
        pack_config({"trustedAccounts": [bad]})


def test_cli_config_file_carries_trusted_accounts(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(SHARED))
    config = tmp_path / "prod.json"
    entry = {"enforcementLevel": "mandatory", "trustedAccounts": [FOREIGN]}
    config.write_text(json.dumps({RULE.name: entry}))
    runner = CliRunner()
    base = ["policy", "check", str(plan), "--env", "prod", "-f", "json"]
    without = json.loads(runner.invoke(app, base).output)
    assert "AWS-IAM-006" in {v["policy_id"] for v in without["violations"]}
    with_ = json.loads(runner.invoke(app, [*base, "--config", str(config)]).output)
    assert "AWS-IAM-006" not in {v["policy_id"] for v in with_["violations"]}
    config.write_text(json.dumps({RULE.name: {**entry, "trustedAccounts": ["nope"]}}))
    res = runner.invoke(app, [*base, "--config", str(config)])
    assert res.exit_code == 2
    assert "trustedAccounts: nope" in res.output


def test_crossguard_schema_and_config_files_offer_it() -> None:
    assert CONFIG_SCHEMA.properties["trustedAccounts"]["items"]["pattern"] == "^[0-9]{12}$"
    assert pack_config_file("prod")[RULE.name]["trustedAccounts"] == []
