"""CI reach: can every workflow job that touches a stack reach and authenticate to it?

The clusters' API endpoints are private by default, so a job that previews, deploys or
refreshes a stack (or runs `kubectl` / `dex ... --stack` against it) must run on the runner
scale set inside that stack's network (actions-runner-controller, scale set `dex-<stack>`,
components/k8s/runners.py) and authenticate with that stack's own role. `check_workflows(root)`
reads `.github/workflows/*.yml` and the stacks from `Pulumi.<stack>.yaml` and returns one plain
string per problem, naming the workflow, the job (and its matrix entry) and what is wrong:

- the job runs on `dex-<stack>`: not on a GitHub-hosted label (`ubuntu-*`, ...), which cannot
  reach a private endpoint, and not with `self-hosted` in its labels (a runner scale set is
  matched by its name alone and carries no `self-hosted` label: GitHub's "Using self-hosted
  runners in a workflow" and actions/actions-runner-controller#3330);
- it authenticates with the stack's own role, read from the repository variables
  `AWS_{DEPLOY|READONLY}_ROLE_ARN_<STACK>` or `GCP_WORKLOAD_IDENTITY_PROVIDER_<STACK>` +
  `GCP_{DEPLOY|READONLY}_SERVICE_ACCOUNT_<STACK>` (`<STACK>`: the stack name upper-cased, `-`
  as `_`): a `pulumi up` with the deploy role, a preview with the read-only one, never
  another stack's; a pull request never mutates (no `up`, `refresh` or `destroy`);
- the kubeconfig's exec plugin exists on the ARC runner image, which has neither: GKE jobs
  install `gke-gcloud-auth-plugin`, EKS jobs the AWS CLI (`aws eks get-token`); and no
  in-network job calls `make`, `sudo` or `apt-get` (not on the image, or needing privilege
  the hardened runner pod does not have);
- the AWS session (`role-duration-seconds`, default 1 h) lasts as long as the job may run, and
  at least `FIRST_DEPLOY_SECONDS` for a `pulumi up`; a GCP job that passes a static access
  token (`token_format: access_token`) has an `access_token_lifetime` as long (the default
  credentials file re-exchanges a fresh GitHub token by itself and needs none);
- every stack is deployed by some workflow, a prod stack only after the dev stack of the same
  cloud (`needs`) and behind an `environment` (whose reviewers approve it).

Expressions are evaluated as far as the workflow determines them: matrix values, literals,
`vars.NAME` / `vars[...]` (as the variable's name), `format`, `startsWith`, `endsWith`,
`contains`, comparisons and `&&` / `||` / `!`. A step whose `if:` is known to be false for a
matrix entry is skipped; anything else unknown counts as "may run".

The modules: `targets` (the stacks, their runners and limits), `expressions` and `matrix`
(what the workflow determines), `steps` (what a job runs), `job` and `credentials` (the
checks of one job), `workflows` (`check_workflows`, and the checks across jobs).
"""

from __future__ import annotations

from toolchain.ci_reach.expressions import UNKNOWN, VarRef, condition, evaluate, resolve
from toolchain.ci_reach.matrix import matrix_entries
from toolchain.ci_reach.targets import (
    DEFAULT_AWS_SESSION_SECONDS,
    DEFAULT_JOB_TIMEOUT_MINUTES,
    FIRST_DEPLOY_SECONDS,
    HOSTED_PREFIXES,
    MUTATING,
    PR_EVENTS,
    PULUMI_COMMANDS,
    RUNNER_PREFIX,
    Stack,
    read_stacks,
    runner_label,
    stack_key,
)
from toolchain.ci_reach.workflows import check_workflows

__all__ = [
    "DEFAULT_AWS_SESSION_SECONDS",
    "DEFAULT_JOB_TIMEOUT_MINUTES",
    "FIRST_DEPLOY_SECONDS",
    "HOSTED_PREFIXES",
    "MUTATING",
    "PR_EVENTS",
    "PULUMI_COMMANDS",
    "RUNNER_PREFIX",
    "UNKNOWN",
    "Stack",
    "VarRef",
    "check_workflows",
    "condition",
    "evaluate",
    "matrix_entries",
    "read_stacks",
    "resolve",
    "runner_label",
    "stack_key",
]
