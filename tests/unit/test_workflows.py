"""The CI workflows, checked offline: actionlint (with shellcheck for `run:` scripts, the
in-network runner labels and the repository variables the workflows may read), the GitHub
workflow JSON schema, what each workflow must do, every action pinned by commit SHA, and the
PR workflow's vulnerability audit of requirements.lock. The checkers are proven on deliberately
broken workflows too. Whether each job can reach and authenticate to the stack it touches is
toolchain/ci_reach/'s check (tests/unit/test_ci_reach.py)."""

from __future__ import annotations

import os
import re
import shlex
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
        # the comment and the SARIF show the pack and Checkov, Checkov from its pinned venv
        "make setup checkov",
        "--with-checkov",
        "--with checkov --format sarif",
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


_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>\s+#.*)?$")
_SHA = re.compile(r"[0-9a-f]{40}")
_VERSION_COMMENT = re.compile(r"#\s*v?\d+(?:\.\d+){0,2}$")
"""The comment Dependabot rewrites along with the SHA: one that ends with the version."""


def unpinned_actions(text: str) -> list[str]:
    """The `uses:` lines of a workflow that are not a third-party action pinned by a full
    commit SHA with its version in a trailing comment (local `./` actions excepted)."""
    bad = []
    for line in text.splitlines():
        m = _USES.match(line)
        if not m or m["ref"].startswith("./"):
            continue
        _action, _, ref = m["ref"].partition("@")
        comment = (m["comment"] or "").strip()
        if not _SHA.fullmatch(ref) or not _VERSION_COMMENT.search(comment):
            bad.append(line.strip())
    return bad


def test_every_action_is_pinned_by_commit_sha_with_its_version() -> None:
    """A tag can be moved to other code; a commit cannot. The version comment is for readers
    and for Dependabot, which rewrites it with the SHA (.github/dependabot.yml)."""
    uses = [line for w in WORKFLOWS for line in w.read_text().splitlines() if _USES.match(line)]
    assert len(uses) > 20
    for workflow in WORKFLOWS:
        assert not unpinned_actions(workflow.read_text()), workflow.name
    # one action, one commit and one version everywhere
    seen: dict[str, set[str]] = {}
    for line in uses:
        m = _USES.match(line)
        assert m
        action, _, ref = m["ref"].partition("@")
        seen.setdefault(action, set()).add(f"{ref} {(m['comment'] or '').strip()}")
    assert all(len(pins) == 1 for pins in seen.values()), seen


def test_the_pin_check_catches_tags_branches_and_missing_versions() -> None:
    sha = "fbc6f3992d24b796d5a048ff273f7fcc4a7b6c09"
    broken = (
        "steps:\n"
        "  - uses: actions/checkout@v5\n"
        "  - uses: actions/checkout@main\n"
        f"  - uses: actions/checkout@{sha}\n"
        f"  - uses: actions/checkout@{sha} # pinned, no version\n"
        f"  - uses: actions/checkout@{sha[:12]} # v5.1.0\n"
    )
    assert len(unpinned_actions(broken)) == 5
    fine = f"  - uses: ./.github/actions/local\n  - uses: actions/checkout@{sha} # v5.1.0\n"
    assert not unpinned_actions(fine)


def _audit_command(job: dict, lock: str = "requirements.lock") -> list[str]:  # type: ignore[type-arg]
    runs = [str(s.get("run", "")) for s in job["steps"]]
    (script,) = [r for r in runs if "pip-audit" in r and f"--requirement {lock} " in r]
    return shlex.split(script.replace("\\\n", " "))


def test_pr_workflow_audits_the_lock_and_fails_on_findings() -> None:
    """pip-audit over the PR's own requirements.lock, in the PR workflow (it needs PyPI's
    advisory data, so not in `make test`); a finding exits non-zero and nothing swallows it."""
    pr = _load("pr.yml")
    assert "pull_request" in pr["on"]
    job = pr["jobs"]["audit"]
    assert job["runs-on"].startswith("ubuntu-")
    assert not job.get("continue-on-error")
    assert "if" not in job
    assert not any(s.get("continue-on-error") for s in job["steps"])
    checkout = _uses(job, "actions/checkout@")
    assert checkout
    assert "ref" not in checkout[0].get("with", {})  # the PR's own (merge) commit
    argv = _audit_command(job)
    assert argv[0].endswith("pip-audit")
    assert argv[argv.index("--requirement") + 1] == "requirements.lock"
    # a `pip freeze` lock without hashes: its exact pins, no resolver; unauditable fails too
    assert {"--no-deps", "--disable-pip", "--strict"} <= set(argv)
    assert not {"--fix", "--dry-run", "-d", "--ignore-vuln"} & set(argv)
    script = _runs(job)
    for swallow in ("|| true", "set +e", "exit 0", "|| :"):
        assert swallow not in script, swallow
    # pip-audit itself at the lock's version
    assert "-c requirements.lock pip-audit" in script
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line
    )
    assert pins.get("pip_audit") or pins.get("pip-audit")


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-checkov.lock"])
def test_the_audit_command_accepts_the_lock_offline(lock: str) -> None:
    """The workflow's exact pip-audit arguments, with --dry-run (no advisory look-up): every
    line of the lock is an exact pin it can audit. An unpinned line fails the same command."""
    argv = _audit_command(_load("pr.yml")["jobs"]["audit"], lock)
    assert {"--no-deps", "--disable-pip", "--strict"} <= set(argv)
    cmd = [str(BIN / "pip-audit"), *argv[1:], "--dry-run"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    pins = sum("==" in line for line in (ROOT / lock).read_text().splitlines())
    assert f"would have audited {pins} packages" in out.stderr


def test_the_audit_command_refuses_an_unpinned_lock(tmp_path: Path) -> None:
    argv = _audit_command(_load("pr.yml")["jobs"]["audit"])
    lock = tmp_path / "requirements.lock"
    lock.write_text("requests>=2\n")
    cmd = [str(BIN / "pip-audit"), *argv[1:], "--dry-run"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "not pinned" in out.stderr


def test_deploys_gate_on_the_pack_and_checkov_and_both_locks_are_audited() -> None:
    deploy = _load("deploy.yml")
    gated = [name for name, job in deploy["jobs"].items() if "dex policy check" in _runs(job)]
    assert sorted(gated) == sorted(STACK_ORDER)
    for name in gated:
        runs = _runs(deploy["jobs"][name])
        assert "--with checkov" in runs, name
        assert "requirements-checkov.lock" in runs, name
    audit = _runs(_load("pr.yml")["jobs"]["audit"])
    for lock in ("--requirement requirements.lock", "--requirement requirements-checkov.lock"):
        assert lock in audit, lock
