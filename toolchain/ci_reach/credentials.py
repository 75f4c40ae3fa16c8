"""How a job authenticates to its stack's cloud, checked per operation: the stack's own role
(read from the repository variables `AWS_{DEPLOY|READONLY}_ROLE_ARN_<STACK>`, or
`GCP_WORKLOAD_IDENTITY_PROVIDER_<STACK>` + `GCP_{DEPLOY|READONLY}_SERVICE_ACCOUNT_<STACK>`),
a session that outlasts the job, and the kubeconfig's exec plugin installed before it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from toolchain.ci_reach.expressions import UNKNOWN, VarRef, as_text
from toolchain.ci_reach.steps import Op, Step
from toolchain.ci_reach.targets import (
    DEFAULT_AWS_SESSION_SECONDS,
    FIRST_DEPLOY_SECONDS,
    Stack,
    stack_key,
)

if TYPE_CHECKING:
    from toolchain.ci_reach.job import Job

_AWS_ROLE = re.compile(r"AWS_(DEPLOY|READONLY)_ROLE_ARN_([A-Z0-9_]+)")
_GCP_PROVIDER = re.compile(r"GCP_WORKLOAD_IDENTITY_PROVIDER_([A-Z0-9_]+)")
_GCP_ACCOUNT = re.compile(r"GCP_(DEPLOY|READONLY)_SERVICE_ACCOUNT_([A-Z0-9_]+)")
_AWS_CLI_INSTALL = re.compile(r"awscli|aws/install|pip[^\n]*\sawscli")
_GKE_PLUGIN_INSTALL = re.compile(r"install[^\n]*gke-gcloud-auth-plugin")


def _seconds(value: Any, default: int) -> int | None:
    text = as_text(value) if value is not None else None
    if text is None or text == "":
        return default
    if text is UNKNOWN:
        return None
    match = re.fullmatch(r"(\d+)s?", text.strip())
    return int(match.group(1)) if match else None


# -- AWS --------------------------------------------------------------------------------------


def _aws_role(step: Step, stack: Stack, what: str, want: str) -> list[str]:
    out: list[str] = []
    role = step.with_.get("role-to-assume")
    match = _AWS_ROLE.fullmatch(role.name) if isinstance(role, VarRef) else None
    if not match:
        out.append(
            f"{what}: role-to-assume is not the stack's own role variable "
            f"(vars.AWS_{want or 'DEPLOY'}_ROLE_ARN_{stack_key(stack.name)})"
        )
    else:
        kind, key = match.groups()
        if key != stack_key(stack.name):
            out.append(
                f"{what} assumes {match.group(0)}, the role of another stack: use "
                f"AWS_{want or kind}_ROLE_ARN_{stack_key(stack.name)}"
            )
        if want and kind != want:
            out.append(f"{what} assumes the {kind.lower()} role: it needs the {want.lower()} one")
    return out


def _aws_session(step: Step, op: Op, timeout_s: int | None, what: str) -> list[str]:
    out: list[str] = []
    duration = _seconds(step.with_.get("role-duration-seconds"), DEFAULT_AWS_SESSION_SECONDS)
    if duration is None:
        out.append(f"{what}: role-duration-seconds is not a number of seconds")
        return out
    if timeout_s is None or duration < timeout_s:
        shown = "unknown" if timeout_s is None else f"{timeout_s // 60} min"
        out.append(
            f"{what}: the AWS session ({duration} s) ends before the job's timeout "
            f"({shown}); the credentials would expire mid-run"
        )
    if op.command == "up" and duration < FIRST_DEPLOY_SECONDS:
        out.append(
            f"{what}: the AWS session ({duration} s) is shorter than a first deploy "
            f"({FIRST_DEPLOY_SECONDS} s): set role-duration-seconds (and the role's "
            f"MaxSessionDuration) to at least that"
        )
    return out


def check_aws(job: Job, op: Op, stack: Stack, what: str, want: str) -> list[str]:
    """The AWS credentials step before `op` assumes the stack's own role (`want`: DEPLOY,
    READONLY or either) for long enough, and the AWS CLI the EKS kubeconfig runs is there."""
    creds = job.before(op.index, "aws")
    if not creds:
        return [f"{what}: no AWS credentials (aws-actions/configure-aws-credentials) before it"]
    step = creds[-1]
    out = [*_aws_role(step, stack, what, want), *_aws_session(step, op, job.timeout_s, what)]
    talks_to_cluster = op.command != "images"  # a push talks to the registry alone
    if talks_to_cluster and not any(
        _AWS_CLI_INSTALL.search(s.script) for s in job.before(op.index, "run")
    ):
        out.append(
            f"{what}: the AWS CLI is not installed before it (the EKS kubeconfig runs "
            f"`aws eks get-token`; the ARC runner image has no AWS CLI)"
        )
    return out


# -- Google Cloud -----------------------------------------------------------------------------


def _gcp_identity(step: Step, key: str, what: str, want: str) -> list[str]:
    out: list[str] = []
    provider = step.with_.get("workload_identity_provider")
    account = step.with_.get("service_account")
    p = _GCP_PROVIDER.fullmatch(provider.name) if isinstance(provider, VarRef) else None
    a = _GCP_ACCOUNT.fullmatch(account.name) if isinstance(account, VarRef) else None
    if not p or not a:
        out.append(
            f"{what}: workload_identity_provider / service_account are not the stack's own "
            f"variables (vars.GCP_WORKLOAD_IDENTITY_PROVIDER_{key}, "
            f"vars.GCP_{want or 'DEPLOY'}_SERVICE_ACCOUNT_{key})"
        )
        return out
    for found in (p.group(1), a.group(2)):
        if found != key:
            out.append(
                f"{what} authenticates with {found}'s identity, another stack's: use "
                f"the *_{key} variables"
            )
            break
    if want and a.group(1) != want:
        out.append(
            f"{what} uses the {a.group(1).lower()} service account: it needs the {want.lower()} one"
        )
    return out


def _gcp_token(step: Step, op: Op, timeout_s: int | None, what: str) -> list[str]:
    """A static access token (`token_format: access_token`) must outlast the job; the
    default credentials file re-exchanges a fresh GitHub token by itself."""
    if as_text(step.with_.get("token_format")) != "access_token":
        return []
    lifetime = _seconds(step.with_.get("access_token_lifetime"), 3600)
    need = max(timeout_s or 0, FIRST_DEPLOY_SECONDS if op.command == "up" else 0)
    if lifetime is None or lifetime < need:
        return [
            f"{what}: the access token ({lifetime} s) expires before the job may end "
            f"({need} s): raise access_token_lifetime (needs the org policy "
            f"constraints/iam.allowServiceAccountCredentialLifetimeExtension)"
        ]
    return []


def check_gcp(job: Job, op: Op, stack: Stack, what: str, want: str) -> list[str]:
    """The Google auth step before `op` uses the stack's own provider and service account
    (`want`: DEPLOY, READONLY or either), its token outlasts the job, and the
    gke-gcloud-auth-plugin the GKE kubeconfig runs is installed."""
    auth = job.before(op.index, "gcp")
    key = stack_key(stack.name)
    if not auth:
        return [f"{what}: no Google Cloud credentials (google-github-actions/auth) before it"]
    step = auth[-1]
    out = [*_gcp_identity(step, key, what, want), *_gcp_token(step, op, job.timeout_s, what)]
    plugin = any(
        "gke-gcloud-auth-plugin" in str(s.with_.get("install_components", ""))
        for s in job.before(op.index, "gcloud")
    ) or any(_GKE_PLUGIN_INSTALL.search(s.script) for s in job.before(op.index, "run"))
    if not plugin and op.command != "images":  # a push talks to the registry alone
        out.append(
            f"{what}: gke-gcloud-auth-plugin is not installed before it (the GKE kubeconfig "
            f"runs it): google-github-actions/setup-gcloud with install_components"
        )
    return out
