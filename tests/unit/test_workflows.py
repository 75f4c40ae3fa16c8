"""The CI workflows, checked offline: actionlint (with shellcheck for `run:` scripts), the
GitHub workflow JSON schema, and what each workflow must do. The checkers are proven on
deliberately broken workflows too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

BIN = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BROKEN = ROOT / "tests" / "fixtures" / "workflows"


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "actionlint"), "-oneline", *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def schema_check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_workflows_exist() -> None:
    assert {w.name for w in WORKFLOWS} == {"pr.yml", "deploy.yml", "drift.yml"}


def test_actionlint_finds_nothing() -> None:
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_script_injection() -> None:
    result = actionlint(BROKEN / "injection.yml")
    assert result.returncode == 1
    assert "potentially untrusted" in result.stdout


def test_workflows_match_the_github_schema() -> None:
    result = schema_check(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_catches_a_misspelled_key() -> None:
    result = schema_check(BROKEN / "schema.yml")
    assert result.returncode != 0
    assert "runs_on" in result.stdout + result.stderr or "runs-on" in result.stdout


def _load(name: str) -> dict:  # type: ignore[type-arg]
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc  # type: ignore[no-any-return]


def _runs(job: dict) -> str:  # type: ignore[type-arg]
    return "\n".join(str(s.get("run", "")) + str(s.get("with", {})) for s in job["steps"])


def test_pr_workflow_reviews_every_stack_in_one_comment() -> None:
    pr = _load("pr.yml")
    assert "pull_request" in pr["on"]
    assert "make test" in _runs(pr["jobs"]["checks"])
    review = pr["jobs"]["review"]
    assert review["strategy"]["matrix"]["stack"] == ["dev", "prod", "gcp-dev", "gcp-prod"]
    steps = _runs(review)
    for needle in (
        "dex.cli",
        "plan",
        "dex review",
        "dex policy check",
        "--format sarif",
        "dex-review:",
        "updateComment",
        "policyPacks",
    ):
        assert needle in steps, needle
    uses = [s.get("uses", "") for s in review["steps"]]
    assert any(u.startswith("github/codeql-action/upload-sarif@") for u in uses)
    assert any(u.startswith("pulumi/actions@") for u in uses)
    assert review["permissions"]["pull-requests"] == "write"
    assert pr["permissions"] == {"contents": "read"}  # least privilege by default


def test_deploy_gates_prod_behind_an_approved_environment() -> None:
    deploy = _load("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert deploy["jobs"]["prod"]["needs"] == "dev"
    assert deploy["jobs"]["prod"]["environment"] == "production"
    for job in ("dev", "prod"):
        up = next(
            s
            for s in deploy["jobs"][job]["steps"]
            if s.get("uses", "").startswith("pulumi/actions@")
        )
        assert up["with"]["command"] == "up"
        assert up["with"]["stack-name"] == job


def test_drift_runs_nightly_and_files_an_issue() -> None:
    drift = _load("drift.yml")
    assert drift["on"]["schedule"][0]["cron"]
    job = drift["jobs"]["detect"]
    preview = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert preview["with"]["refresh"] is True
    assert preview["with"]["expect-no-changes"] is True
    assert "issues.create" in _runs(job)
