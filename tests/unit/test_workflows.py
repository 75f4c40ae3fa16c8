"""The CI workflows, checked offline: actionlint (with shellcheck for `run:` scripts, the
in-network runner labels and the repository variables the workflows may read), the GitHub
workflow JSON schema, and what each workflow must do. The checkers are proven on deliberately
broken workflows too. Whether each job can reach and authenticate to the stack it touches is
toolchain/ci_reach/'s check (tests/unit/test_ci_reach.py)."""

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
ACTIONLINT_CONFIG = BROKEN / "actionlint.yaml"
"""The runner labels (`dex-*`, the in-network scale sets) and the repository variables."""
STACK_ORDER = ["dev", "prod", "gcp-dev", "gcp-prod"]


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [
            str(BIN / "actionlint"),
            "-config-file",
            str(ACTIONLINT_CONFIG),
            "-oneline",
            *map(str, files),
        ],
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


def test_actionlint_catches_an_unknown_runner_label_and_variable(tmp_path: Path) -> None:
    broken = tmp_path / "labels.yml"
    broken.write_text(
        "name: broken\non: push\njobs:\n  up:\n    runs-on: dex_prod\n    steps:\n"
        '      - run: echo "$ROLE"\n        env:\n          ROLE: ${{ vars.AWS_ROLE_ARN }}\n'
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert 'label "dex_prod" is unknown' in result.stdout
    assert 'undefined configuration variable "aws_role_arn"' in result.stdout


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


def _uses(job: dict, prefix: str) -> list[dict]:  # type: ignore[type-arg]
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(prefix)]


def _stacks(job: dict) -> list[str]:  # type: ignore[type-arg]
    return [e["stack"] for e in job["strategy"]["matrix"]["include"]]


def test_pr_workflow_reviews_every_stack_in_one_comment() -> None:
    pr = _load("pr.yml")
    assert "pull_request" in pr["on"]
    assert "make test" in _runs(pr["jobs"]["checks"])
    review = pr["jobs"]["review"]
    assert review["strategy"]["matrix"]["stack"] == STACK_ORDER
    steps = _runs(review)
    for needle in (
        "dex.cli",
        "plan",
        "dex review",
        "dex policy check",
        "--format sarif",
        "dex-review:",
        "updateComment",
    ):
        assert needle in steps, needle
    assert _uses(review, "github/codeql-action/upload-sarif@")
    # the offline review needs no network reach and no cloud identity
    assert review["runs-on"] == "ubuntu-24.04"
    assert "id-token" not in review["permissions"]
    assert not _uses(review, "pulumi/actions@")
    assert review["permissions"]["pull-requests"] == "write"
    assert pr["permissions"] == {"contents": "read"}  # least privilege by default


def test_pr_previews_each_stack_from_inside_its_network_read_only() -> None:
    pr = _load("pr.yml")
    preview = pr["jobs"]["preview"]
    assert _stacks(preview) == STACK_ORDER
    assert preview["runs-on"] == "dex-${{ matrix.stack }}"
    # never for forks (their code must not run inside the network), only once runners exist
    assert "github.event.pull_request.head.repo.full_name == github.repository" in preview["if"]
    assert "vars.DEX_IN_NETWORK_RUNNERS == 'true'" in preview["if"]
    install, up = _uses(preview, "pulumi/actions@")
    assert "with" not in install  # installs the CLI for the step below
    assert up["with"]["command"] == "preview"
    runs = [s.get("run", "") for s in preview["steps"]]
    assert any("dex:platform.image_source' registry" in r for r in runs)
    assert up["with"]["refresh"] is True  # a preview's refresh is not saved to the state
    assert up["with"]["policyPacks"] == "policies"
    roles = [s["with"] for s in _uses(preview, "aws-actions/configure-aws-credentials@")]
    accounts = [s["with"] for s in _uses(preview, "google-github-actions/auth@")]
    assert "AWS_READONLY_ROLE_ARN_" in roles[0]["role-to-assume"]
    assert "GCP_READONLY_SERVICE_ACCOUNT_" in accounts[0]["service_account"]
    assert "DEPLOY" not in str(preview)


def test_deploy_covers_every_stack_dev_first_prod_approved() -> None:
    deploy = _load("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    jobs = deploy["jobs"]
    assert list(jobs) == [f"images-{s}" for s in STACK_ORDER] + STACK_ORDER
    assert jobs["prod"]["needs"] == ["dev", "images-prod"]
    assert jobs["gcp-prod"]["needs"] == ["gcp-dev", "images-gcp-prod"]
    for job in STACK_ORDER:
        assert jobs[job]["runs-on"] == f"dex-{job}"
        assert jobs[job]["environment"] == ("production" if "prod" in job else "development")
        install, up = _uses(jobs[job], "pulumi/actions@")
        assert "command" not in (install.get("with") or {})
        assert up["with"]["command"] == "up"
        assert up["with"]["stack-name"] == job
        # the in-network runner has no Docker: it deploys what images-<stack> pushed
        assert f"images-{job}" in jobs[job]["needs"]
        runs = [s["run"] for s in jobs[job]["steps"] if "run" in s]
        assert any("dex:platform.image_source' registry" in r for r in runs)
        images = jobs[f"images-{job}"]
        assert images["runs-on"].startswith("ubuntu-")
        assert any(f"dex images push --stack {job}" in s.get("run", "") for s in images["steps"])
    for job in ("dev", "prod"):
        (creds,) = _uses(jobs[job], "aws-actions/configure-aws-credentials@")
        assert (
            creds["with"]["role-to-assume"] == f"${{{{ vars.AWS_DEPLOY_ROLE_ARN_{job.upper()} }}}}"
        )
        assert creds["with"]["role-duration-seconds"] >= jobs[job]["timeout-minutes"] * 60
    for job in ("gcp-dev", "gcp-prod"):
        (gcloud,) = _uses(jobs[job], "google-github-actions/setup-gcloud@")
        assert gcloud["with"]["install_components"] == "gke-gcloud-auth-plugin"


def test_drift_runs_nightly_and_files_an_issue() -> None:
    drift = _load("drift.yml")
    assert drift["on"]["schedule"][0]["cron"]
    job = drift["jobs"]["detect"]
    assert _stacks(job) == STACK_ORDER
    assert job["runs-on"] == "dex-${{ matrix.stack }}"
    preview = next(
        s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@") and "with" in s
    )
    assert preview["with"]["refresh"] is True
    # compares with what deploy.yml deployed: the images by digest, not built in place
    runs = [s.get("run", "") for s in job["steps"]]
    assert any("dex:platform.image_source' registry" in r for r in runs)
    assert preview["with"]["expect-no-changes"] is True
    assert "issues.create" in _runs(job)
    assert "READONLY" in str(_uses(job, "aws-actions/configure-aws-credentials@"))
    assert "READONLY" in str(_uses(job, "google-github-actions/auth@"))
