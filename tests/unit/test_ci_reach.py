"""toolchain/ci_reach/: the real workflows reach every stack they touch (zero findings), and
each defect injected into a copy of them (a GitHub-hosted runner, another stack's role, no
GKE auth plugin, a 1 h session, a stack nobody deploys, ...) produces its finding."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, STACKS
from toolchain.ci_reach import (
    FIRST_DEPLOY_SECONDS,
    UNKNOWN,
    VarRef,
    check_workflows,
    condition,
    evaluate,
    matrix_entries,
    read_stacks,
    resolve,
    runner_label,
    stack_key,
)

pytestmark = pytest.mark.unit

WORKFLOWS = ROOT / ".github" / "workflows"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the stack files and the workflows, to break."""
    for path in ROOT.glob("Pulumi.*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    shutil.copytree(WORKFLOWS, tmp_path / ".github" / "workflows")
    return tmp_path


def edit(repo: Path, name: str, old: str, new: str, count: int = 1) -> None:
    """Replace `old` (which must be there) in one workflow of the copy."""
    path = repo / ".github" / "workflows" / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}: the test no longer injects its defect"
    path.write_text(text.replace(old, new, count))


def edit_yaml(repo: Path, name: str, change: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    path = repo / ".github" / "workflows" / name
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def findings_about(repo: Path, *needles: str) -> list[str]:
    found = check_workflows(repo)
    return [f for f in found if all(n in f for n in needles)]


# -- the shipped workflows --------------------------------------------------------------------


def test_the_real_workflows_reach_every_stack() -> None:
    assert check_workflows(ROOT) == []


def test_the_stacks_come_from_the_stack_files() -> None:
    stacks = read_stacks(ROOT)
    assert sorted(stacks) == sorted(STACKS)
    assert {s.name: (s.cloud, s.environment) for s in stacks.values()} == {
        "dev": ("aws", "dev"),
        "prod": ("aws", "prod"),
        "gcp-dev": ("gcp", "dev"),
        "gcp-prod": ("gcp", "prod"),
    }
    assert runner_label("gcp-prod") == "dex-gcp-prod"
    assert stack_key("gcp-prod") == "GCP_PROD"


def test_the_copy_is_clean_before_any_defect(repo: Path) -> None:
    assert check_workflows(repo) == []


# -- the injected defects the brief names -----------------------------------------------------


def test_a_deploy_job_on_a_github_hosted_runner(repo: Path) -> None:
    edit(repo, "deploy.yml", "runs-on: dex-prod", "runs-on: ubuntu-24.04")
    found = findings_about(repo, "deploy.yml", "job prod", "GitHub-hosted", "ubuntu-24.04")
    assert found, check_workflows(repo)
    assert "runs-on: dex-prod" in found[0]


def test_prod_deployed_with_the_dev_role(repo: Path) -> None:
    edit(
        repo,
        "deploy.yml",
        "vars.AWS_DEPLOY_ROLE_ARN_PROD",
        "vars.AWS_DEPLOY_ROLE_ARN_DEV",
        count=-1,
    )
    assert findings_about(repo, "job prod", "stack prod", "AWS_DEPLOY_ROLE_ARN_DEV", "another")


def test_a_gke_job_without_the_auth_plugin(repo: Path) -> None:
    edit(
        repo,
        "deploy.yml",
        "install_components: gke-gcloud-auth-plugin\n",
        "version: latest\n",
        count=-1,
    )
    found = findings_about(repo, "deploy.yml", "gke-gcloud-auth-plugin")
    assert [f for f in found if "job gcp-dev" in f], check_workflows(repo)


def test_a_one_hour_aws_session_for_a_first_deploy(repo: Path) -> None:
    edit(repo, "deploy.yml", "          role-duration-seconds: 10800\n", "", count=2)
    found = findings_about(repo, "deploy.yml", "shorter than a first deploy")
    assert {f.split(":")[1].strip() for f in found} == {"job dev", "job prod"}
    assert str(FIRST_DEPLOY_SECONDS) in found[0]
    # the 3 h job would also outlive its 1 h session
    assert findings_about(repo, "job prod", "ends before the job's timeout")


def test_a_stack_nobody_deploys(repo: Path) -> None:
    edit_yaml(repo, "deploy.yml", lambda doc: doc["jobs"].pop("gcp-prod"))
    assert check_workflows(repo) == ["no workflow deploys stack gcp-prod (`pulumi up`)"]


def test_a_new_stack_file_must_be_deployed_too(repo: Path) -> None:
    (repo / "Pulumi.staging.yaml").write_text("config:\n  dex:cloud: aws\n  dex:environment: dev\n")
    assert "no workflow deploys stack staging (`pulumi up`)" in check_workflows(repo)


# -- more ways to lose reach -----------------------------------------------------------------


def test_self_hosted_label_never_matches_a_scale_set(repo: Path) -> None:
    edit(repo, "deploy.yml", "runs-on: dex-dev", "runs-on: [self-hosted, dex-dev]")
    assert findings_about(repo, "job dev", "`self-hosted`", "never start")


def test_another_stacks_runner(repo: Path) -> None:
    edit(repo, "deploy.yml", "runs-on: dex-prod", "runs-on: dex-dev")
    assert findings_about(repo, "job prod", "not on the in-network runner dex-prod")


def test_a_matrix_job_on_a_hosted_runner(repo: Path) -> None:
    edit(repo, "drift.yml", "runs-on: dex-${{ matrix.stack }}", "runs-on: ubuntu-latest")
    found = findings_about(repo, "drift.yml", "job detect", "GitHub-hosted")
    assert len(found) == 4  # one per matrix entry


def test_a_matrix_entry_with_another_stacks_identity(repo: Path) -> None:
    edit(repo, "drift.yml", "{ stack: gcp-prod, key: GCP_PROD", "{ stack: gcp-prod, key: GCP_DEV")
    assert findings_about(repo, "drift.yml", "[gcp-prod]", "GCP_DEV's identity")


def test_a_pr_preview_with_the_deploy_role(repo: Path) -> None:
    edit(
        repo,
        "pr.yml",
        "vars[format('AWS_READONLY_ROLE_ARN_{0}', matrix.key)]",
        "vars[format('AWS_DEPLOY_ROLE_ARN_{0}', matrix.key)]",
    )
    assert findings_about(repo, "pr.yml", "[prod]", "deploy role", "needs the readonly one")


def test_a_pull_request_that_deploys(repo: Path) -> None:
    edit(repo, "pr.yml", "command: preview", "command: up")
    assert findings_about(repo, "pr.yml", "[prod]", "pull request must not change")


def test_a_preview_without_credentials(repo: Path) -> None:
    edit(repo, "drift.yml", "if: matrix.cloud == 'aws'\n        uses:", "if: false\n        uses:")
    assert findings_about(repo, "drift.yml", "[prod]", "no AWS credentials")


def test_an_eks_job_without_the_aws_cli(repo: Path) -> None:
    edit(repo, "pr.yml", "if: matrix.cloud == 'aws'\n        run: |", "if: false\n        run: |")
    assert findings_about(repo, "pr.yml", "[dev]", "AWS CLI is not installed")


def test_make_on_the_in_network_runner(repo: Path) -> None:
    edit(repo, "deploy.yml", "python -m venv .venv\n", "make setup\n")
    assert findings_about(repo, "job dev", "runs `make`")


def test_kubectl_and_pulumi_in_scripts_count(repo: Path) -> None:
    edit(
        repo,
        "drift.yml",
        "      - name: preview with refresh",
        '      - run: kubectl get pods -A && pulumi refresh --stack "$STACK" --yes\n'
        "      - name: preview with refresh",
    )
    assert check_workflows(repo) == []  # in-network, the stack's role: fine
    edit(repo, "drift.yml", "runs-on: dex-${{ matrix.stack }}", "runs-on: ubuntu-24.04")
    found = check_workflows(repo)
    assert any("`kubectl` on stack gcp-dev" in f for f in found)
    assert any("`refresh` on stack prod" in f for f in found)


def test_prod_before_dev_and_without_approval(repo: Path) -> None:
    def change(doc: dict) -> None:  # type: ignore[type-arg]
        del doc["jobs"]["prod"]["needs"]
        del doc["jobs"]["gcp-prod"]["environment"]

    edit_yaml(repo, "deploy.yml", change)
    found = check_workflows(repo)
    assert "deploy.yml: job prod deploys prod without first deploying dev (`needs`)" in found
    assert any("job gcp-prod deploys gcp-prod with no `environment`" in f for f in found)


def test_a_static_gcp_token_must_outlive_the_deploy(repo: Path) -> None:
    edit(
        repo,
        "deploy.yml",
        "service_account: ${{ vars.GCP_DEPLOY_SERVICE_ACCOUNT_GCP_PROD }}\n",
        "service_account: ${{ vars.GCP_DEPLOY_SERVICE_ACCOUNT_GCP_PROD }}\n"
        "          token_format: access_token\n",
        count=-1,
    )
    assert findings_about(repo, "job gcp-prod", "access_token_lifetime")
    edit(
        repo,
        "deploy.yml",
        "token_format: access_token\n",
        "token_format: access_token\n          access_token_lifetime: 10800s\n",
        count=-1,
    )
    assert check_workflows(repo) == []


# -- the expression evaluator -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "matrix", "value"),
    [
        ("matrix.cloud == 'aws'", {"cloud": "aws"}, True),
        ("matrix.cloud == 'AWS'", {"cloud": "aws"}, True),  # GitHub compares case-insensitively
        ("!startsWith(matrix.stack, 'gcp-')", {"stack": "gcp-dev"}, False),
        ("endsWith(matrix.stack, 'prod') && 'prod' || 'dev'", {"stack": "prod"}, "prod"),
        ("endsWith(matrix.stack, 'prod') && 'prod' || 'dev'", {"stack": "dev"}, "dev"),
        ("format('A_{0}_B', matrix.key)", {"key": "X"}, "A_X_B"),
        ("vars.AWS_ROLE", {}, VarRef("AWS_ROLE")),
        ("vars[format('R_{0}', matrix.key)]", {"key": "PROD"}, VarRef("R_PROD")),
        ("vars.FLAG == 'true'", {}, UNKNOWN),
        ("github.event_name == 'push'", {}, UNKNOWN),
        ('contains(fromJSON(\'["a","b"]\'), matrix.s)', {"s": "b"}, True),
    ],
)
def test_expressions(expr: str, matrix: dict, value: object) -> None:  # type: ignore[type-arg]
    assert evaluate(expr, matrix) == value


def test_interpolation_and_conditions() -> None:
    assert resolve("dex-${{ matrix.stack }}", {"stack": "prod"}) == "dex-prod"
    assert resolve("${{ vars.X || 'y' }}", {}) is UNKNOWN
    assert resolve("${{ secrets.T }}-x", {}) is UNKNOWN
    assert condition(None, {}) is True
    assert condition("${{ matrix.cloud == 'gcp' }}", {"cloud": "aws"}) is False
    assert condition("vars.DEX_IN_NETWORK_RUNNERS == 'true'", {}) is UNKNOWN


def test_matrix_entries() -> None:
    assert matrix_entries({}) == [{}]
    assert matrix_entries({"strategy": {"matrix": {"stack": ["a", "b"]}}}) == [
        {"stack": "a"},
        {"stack": "b"},
    ]
    include_only = {"strategy": {"matrix": {"include": [{"stack": "a", "k": 1}, {"stack": "b"}]}}}
    assert matrix_entries(include_only) == [{"stack": "a", "k": 1}, {"stack": "b"}]
    mixed = {
        "strategy": {
            "matrix": {
                "stack": ["a", "b"],
                "include": [{"stack": "a", "k": 1}, {"stack": "c"}],
                "exclude": [{"stack": "b"}],
            }
        }
    }
    assert matrix_entries(mixed) == [{"stack": "a", "k": 1}, {"stack": "c"}]
    assert matrix_entries({"strategy": {"matrix": "${{ fromJSON(needs.a.outputs.m) }}"}}) is None


def test_an_in_network_deploy_that_would_build_images(repo: Path) -> None:
    """The in-network runners have no Docker daemon: `pulumi up` there must deploy images
    pushed before it, never build them."""
    edit(
        repo,
        "deploy.yml",
        "run: pulumi config set --path 'dex:platform.image_source' registry --stack gcp-dev",
        "run: echo building in place",
    )
    found = findings_about(repo, "job gcp-dev", "no Docker")
    assert len(found) == 1
    assert "dex images push --stack gcp-dev" in found[0]


def test_images_pushed_from_the_in_network_runner(repo: Path) -> None:
    edit(repo, "deploy.yml", "runs-on: ubuntu-24.04\n", "runs-on: dex-prod\n", count=2)
    found = findings_about(repo, "job images-prod", "needs Docker")
    assert len(found) == 1


def test_a_prebuilt_deploy_that_does_not_wait_for_its_push(repo: Path) -> None:
    edit(repo, "deploy.yml", "needs: [dev, images-prod]", "needs: dev")
    found = findings_about(repo, "job prod deploys prebuilt images of prod", "needs")
    assert len(found) == 1


def test_a_drift_check_that_would_build_images_in_place(repo: Path) -> None:
    """Deployed images are looked up by digest; a drift check in build mode would report the
    docker-build resources as changes every night."""
    edit(
        repo,
        "drift.yml",
        "run: pulumi config set --path 'dex:platform.image_source' registry --stack \"$STACK\"",
        "run: echo no image mode",
    )
    found = findings_about(repo, "drift.yml", "built in place")
    assert len(found) == 4  # one per stack
