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
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FIRST_DEPLOY_SECONDS = 3 * 3600
"""How long a first `pulumi up` of a stack may take (cluster, node groups, databases, every
chart): the AWS session and the job's timeout must cover it."""
DEFAULT_AWS_SESSION_SECONDS = 3600
"""aws-actions/configure-aws-credentials' default `role-duration-seconds`."""
DEFAULT_JOB_TIMEOUT_MINUTES = 360
"""GitHub's default `timeout-minutes` of a job."""
HOSTED_PREFIXES = ("ubuntu-", "windows-", "macos-")
RUNNER_PREFIX = "dex-"
MUTATING = frozenset({"up", "destroy", "refresh"})
PULUMI_COMMANDS = ("preview", "up", "refresh", "destroy")
PR_EVENTS = frozenset({"pull_request", "pull_request_target"})


def runner_label(stack: str) -> str:
    """The runner scale set (and its only label) inside `stack`'s network."""
    return f"{RUNNER_PREFIX}{stack}"


def stack_key(stack: str) -> str:
    """The suffix of a stack's repository variables: `gcp-prod` -> `GCP_PROD`."""
    return stack.upper().replace("-", "_")


@dataclass(frozen=True)
class Stack:
    name: str
    cloud: str
    environment: str


def read_stacks(root: Path) -> dict[str, Stack]:
    """Every `Pulumi.<stack>.yaml` at the repository root: its cloud and environment."""
    out: dict[str, Stack] = {}
    for path in sorted(root.glob("Pulumi.*.yaml")):
        name = path.name[len("Pulumi.") : -len(".yaml")]
        config = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("config") or {}
        out[name] = Stack(
            name, str(config.get("dex:cloud", "aws")), str(config.get("dex:environment", "dev"))
        )
    return out


# -- expressions ------------------------------------------------------------------------------


class _Unknown:
    """A value only the run knows (a secret, a step output, a variable's content)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass(frozen=True)
class VarRef:
    """`vars.NAME`: a repository variable, known by name only."""

    name: str


class _Vars:
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,])"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_-]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"cannot read expression {text!r} at {pos}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _truthy(value: Any) -> Any:
    if value is UNKNOWN or isinstance(value, VarRef):
        return UNKNOWN
    return bool(value) and value != 0


def _text(value: Any) -> Any:
    if value is UNKNOWN or isinstance(value, VarRef):
        return UNKNOWN
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Parser:
    """A recursive-descent evaluator of GitHub Actions expressions (the subset above)."""

    def __init__(self, text: str, matrix: Mapping[str, Any]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.matrix = matrix

    def peek(self) -> str:
        return self.toks[self.i][1] if self.i < len(self.toks) else ""

    def take(self) -> tuple[str, str]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Any:
        value = self.or_()
        if self.i != len(self.toks):
            raise ValueError(f"unexpected {self.peek()!r}")
        return value

    def or_(self) -> Any:
        left = self.and_()
        while self.peek() == "||":
            self.take()
            right = self.and_()
            t = _truthy(left)
            left = left if t is True else right if t is False else UNKNOWN
        return left

    def and_(self) -> Any:
        left = self.cmp()
        while self.peek() == "&&":
            self.take()
            right = self.cmp()
            t = _truthy(left)
            left = right if t is True else left if t is False else UNKNOWN
        return left

    def cmp(self) -> Any:
        left = self.unary()
        if self.peek() in ("==", "!=", "<", ">", "<=", ">="):
            op = self.take()[1]
            right = self.unary()
            a, b = _text(left), _text(right)
            if a is UNKNOWN or b is UNKNOWN:
                return UNKNOWN
            if op in ("==", "!="):
                return (a.lower() == b.lower()) == (op == "==")
            return UNKNOWN
        return left

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            t = _truthy(self.unary())
            return UNKNOWN if t is UNKNOWN else not t
        return self.postfix()

    def postfix(self) -> Any:
        value = self.primary()
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                value = self.member(value, self.take()[1])
            else:
                key = self.or_()
                if self.take()[1] != "]":
                    raise ValueError("expected ]")
                value = self.member(value, _text(key))
        return value

    def member(self, value: Any, key: Any) -> Any:
        if key is UNKNOWN:
            return UNKNOWN
        if isinstance(value, _Vars):
            return VarRef(str(key))
        if isinstance(value, Mapping):
            for k, v in value.items():
                if str(k).lower() == str(key).lower():
                    return v
            return None if value is self.matrix else UNKNOWN
        return UNKNOWN

    def primary(self) -> Any:
        kind, tok = self.take()
        if kind == "str":
            return tok[1:-1].replace("''", "'")
        if kind == "num":
            return float(tok)
        if tok == "(":
            value = self.or_()
            self.take()
            return value
        if kind != "ident":
            raise ValueError(f"unexpected {tok!r}")
        if self.peek() == "(":
            self.take()
            args: list[Any] = []
            while self.peek() != ")":
                args.append(self.or_())
                if self.peek() == ",":
                    self.take()
            self.take()
            return _call(tok.lower(), args)
        low = tok.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "null":
            return None
        if low == "matrix":
            return self.matrix
        if low == "vars":
            return _Vars()
        return UNKNOWN


def _call(name: str, args: list[Any]) -> Any:
    texts = [_text(a) for a in args]
    if name in ("startswith", "endswith", "contains") and len(args) == 2:
        if isinstance(args[0], list):
            if UNKNOWN in [_text(a) for a in args[0]] or texts[1] is UNKNOWN:
                return UNKNOWN
            return texts[1].lower() in [str(_text(a)).lower() for a in args[0]]
        if UNKNOWN in texts:
            return UNKNOWN
        a, b = texts[0].lower(), texts[1].lower()
        return {"startswith": a.startswith(b), "endswith": a.endswith(b), "contains": b in a}[name]
    if name == "format" and args:
        if UNKNOWN in texts:
            return UNKNOWN
        return re.sub(r"\{(\d+)\}", lambda m: texts[int(m.group(1)) + 1], texts[0])
    if name == "fromjson" and len(args) == 1 and texts[0] is not UNKNOWN:
        try:
            return json.loads(texts[0])
        except ValueError:
            return UNKNOWN
    return UNKNOWN


def evaluate(expr: str, matrix: Mapping[str, Any]) -> Any:
    """The value of one expression (without `${{ }}`); UNKNOWN if the run decides it."""
    try:
        return _Parser(expr, matrix).parse()
    except (ValueError, IndexError):
        return UNKNOWN


_INTERPOLATION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def resolve(value: Any, matrix: Mapping[str, Any]) -> Any:
    """A workflow value with its `${{ }}` evaluated: one whole expression keeps its value
    (a VarRef, a bool), text with several becomes text, UNKNOWN if any part is unknown."""
    if not isinstance(value, str):
        return value
    whole = _INTERPOLATION.fullmatch(value.strip())
    if whole:
        return evaluate(whole.group(1), matrix)
    parts: list[str] = []
    pos = 0
    for match in _INTERPOLATION.finditer(value):
        part = _text(evaluate(match.group(1), matrix))
        if part is UNKNOWN:
            return UNKNOWN
        parts += [value[pos : match.start()], part]
        pos = match.end()
    return "".join([*parts, value[pos:]])


def _script(value: Any, matrix: Mapping[str, Any]) -> str:
    """A `run:` script with what the workflow determines substituted; the rest left as is."""

    def sub(match: re.Match[str]) -> str:
        part = _text(evaluate(match.group(1), matrix))
        return match.group(0) if part is UNKNOWN else str(part)

    return _INTERPOLATION.sub(sub, str(value or ""))


def condition(value: Any, matrix: Mapping[str, Any]) -> Any:
    """An `if:` (bare or wrapped in `${{ }}`): True, False or UNKNOWN."""
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    whole = _INTERPOLATION.fullmatch(text)
    return _truthy(evaluate(whole.group(1) if whole else text, matrix))


# -- matrices ---------------------------------------------------------------------------------


def matrix_entries(job: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Every matrix entry of a job (`[{}]` without a matrix); None if computed at run time."""
    matrix = (job.get("strategy") or {}).get("matrix")
    if matrix is None:
        return [{}]
    if not isinstance(matrix, Mapping):
        return None
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    if any(not isinstance(v, list) for v in axes.values()):
        return None
    entries: list[dict[str, Any]] = []
    if axes:
        entries = [dict(zip(axes, c, strict=True)) for c in itertools.product(*axes.values())]
    for exclude in matrix.get("exclude") or []:
        entries = [e for e in entries if any(e.get(k) != v for k, v in exclude.items())]
    for include in matrix.get("include") or []:
        matched = False
        for entry in entries if axes else []:  # without axes, each include is an entry
            if all(entry.get(k) == v for k, v in include.items() if k in axes):
                entry.update({k: v for k, v in include.items() if k not in axes})
                matched = True
        if not matched:
            entries.append(dict(include))
    return entries or [{}]


# -- jobs -------------------------------------------------------------------------------------


@dataclass
class _Step:
    index: int
    kind: str  # pulumi | aws | gcp | gcloud | run
    step: Mapping[str, Any]
    with_: dict[str, Any] = field(default_factory=dict)
    script: str = ""


@dataclass
class _Op:
    """One thing a job does against a stack: a pulumi command, `kubectl` or `dex --stack`."""

    index: int
    command: str
    stack: Any


_PULUMI_RUN = re.compile(r"\bpulumi\s+(" + "|".join(PULUMI_COMMANDS) + r")\b([^\n]*)")
_STACK_FLAG = re.compile(r"(?:--stack|-s)(?:=|\s+)(\S+)")
_DEX_STACK = re.compile(r"\bdex\s+[a-z][^\n]*?--stack(?:=|\s+)(\S+)")
_DEX_IMAGES = re.compile(r"\bdex\s+images\s+push\b")
_PREBUILT = re.compile(
    r"pulumi\s+config\s+set\s+--path\s+['\"]?dex:platform\.image_source['\"]?\s+registry\b"
)
"""How an in-network job tells the program to deploy the images pushed before it."""
_KUBECTL = re.compile(r"\bkubectl\b")
_MISSING_TOOLS = re.compile(r"(?:^|[\s;&|(])(make|sudo|apt-get|apt)\s")
_AWS_CLI_INSTALL = re.compile(r"awscli|aws/install|pip[^\n]*\sawscli")
_GKE_PLUGIN_INSTALL = re.compile(r"install[^\n]*gke-gcloud-auth-plugin")


def _shell_value(token: str, env: Mapping[str, Any]) -> Any:
    token = token.strip("\"'")
    var = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", token)
    if var:
        return env.get(var.group(1), UNKNOWN)
    return token if "$" not in token else UNKNOWN


def _classify(steps: list[Any], matrix: Mapping[str, Any]) -> list[_Step]:
    out: list[_Step] = []
    for index, step in enumerate(steps or []):
        if not isinstance(step, Mapping) or condition(step.get("if"), matrix) is False:
            continue
        uses = str(step.get("uses", ""))
        with_ = {k: resolve(v, matrix) for k, v in (step.get("with") or {}).items()}
        if uses.startswith("pulumi/actions@"):
            out.append(_Step(index, "pulumi", step, with_))
        elif uses.startswith("aws-actions/configure-aws-credentials@"):
            out.append(_Step(index, "aws", step, with_))
        elif uses.startswith("google-github-actions/auth@"):
            out.append(_Step(index, "gcp", step, with_))
        elif uses.startswith("google-github-actions/setup-gcloud@"):
            out.append(_Step(index, "gcloud", step, with_))
        elif "run" in step:
            out.append(_Step(index, "run", step, script=_script(step["run"], matrix)))
    return out


def _ops(steps: list[_Step], env: Mapping[str, Any]) -> list[_Op]:
    ops: list[_Op] = []
    for s in steps:
        if s.kind == "pulumi":
            command = _text(s.with_.get("command"))
            if command in PULUMI_COMMANDS:
                ops.append(_Op(s.index, command, _text(s.with_.get("stack-name"))))
        elif s.kind == "run":
            for match in _PULUMI_RUN.finditer(s.script):
                flag = _STACK_FLAG.search(match.group(2))
                stack = _shell_value(flag.group(1), env) if flag else env.get("STACK", UNKNOWN)
                ops.append(_Op(s.index, match.group(1), stack))
            for match in _DEX_STACK.finditer(s.script):
                line = s.script[s.script.rfind("\n", 0, match.start()) + 1 : match.end()]
                command = "images" if _DEX_IMAGES.search(line) else "dex"
                ops.append(_Op(s.index, command, _shell_value(match.group(1), env)))
            if _KUBECTL.search(s.script):
                ops.append(_Op(s.index, "kubectl", env.get("STACK", UNKNOWN)))
    return ops


def _labels(runs_on: Any, matrix: Mapping[str, Any]) -> list[Any]:
    if isinstance(runs_on, Mapping):
        runs_on = runs_on.get("labels") or []
    value = resolve(runs_on, matrix) if isinstance(runs_on, str) else runs_on
    items = value if isinstance(value, list) else [value]
    return [_text(resolve(item, matrix)) for item in items]


_AWS_ROLE = re.compile(r"AWS_(DEPLOY|READONLY)_ROLE_ARN_([A-Z0-9_]+)")
_GCP_PROVIDER = re.compile(r"GCP_WORKLOAD_IDENTITY_PROVIDER_([A-Z0-9_]+)")
_GCP_ACCOUNT = re.compile(r"GCP_(DEPLOY|READONLY)_SERVICE_ACCOUNT_([A-Z0-9_]+)")


def _seconds(value: Any, default: int) -> int | None:
    text = _text(value) if value is not None else None
    if text is None or text == "":
        return default
    if text is UNKNOWN:
        return None
    match = re.fullmatch(r"(\d+)s?", text.strip())
    return int(match.group(1)) if match else None


class _Job:
    def __init__(
        self,
        workflow: str,
        job_id: str,
        job: Mapping[str, Any],
        matrix: Mapping[str, Any],
        events: set[str],
        workflow_env: Mapping[str, Any],
    ) -> None:
        self.job_id = job_id
        self.job = job
        self.matrix = matrix
        self.events = events
        where = f"job {job_id}"
        if matrix.get("stack"):
            where += f" [{matrix['stack']}]"
        elif matrix:
            where += f" {json.dumps(matrix, sort_keys=True)}"
        self.where = f"{workflow}: {where}"
        self.env = {
            k: _text(resolve(v, matrix))
            for k, v in {**workflow_env, **(job.get("env") or {})}.items()
        }
        self.steps = _classify(job.get("steps") or [], matrix)
        self.ops = _ops(self.steps, self.env)
        self.labels = _labels(job.get("runs-on"), matrix)
        timeout = resolve(job.get("timeout-minutes", DEFAULT_JOB_TIMEOUT_MINUTES), matrix)
        self.timeout_s = int(timeout) * 60 if isinstance(timeout, int | float) else None

    def before(self, index: int, kind: str) -> list[_Step]:
        return [s for s in self.steps if s.kind == kind and s.index < index]

    def check(self, stacks: Mapping[str, Stack]) -> list[str]:
        findings: list[str] = []
        in_network = any(isinstance(x, str) and x.startswith(RUNNER_PREFIX) for x in self.labels)
        if in_network:
            for s in self.steps:
                for tool in sorted({m.group(1) for m in _MISSING_TOOLS.finditer(s.script)}):
                    findings.append(
                        f"{self.where}: step {s.index + 1} runs `{tool}`, which the in-network "
                        f"runner (the ARC runner image, unprivileged) does not have"
                    )
        for op in self.ops:
            findings += self.check_op(op, stacks)
        return findings

    def check_op(self, op: _Op, stacks: Mapping[str, Stack]) -> list[str]:
        what = f"{self.where}: `{op.command}`"
        if op.stack is UNKNOWN or not op.stack:
            return [f"{what}: cannot tell which stack it targets"]
        if op.stack not in stacks:
            return [f"{what} targets {op.stack!r}, which is no Pulumi.<stack>.yaml"]
        stack = stacks[op.stack]
        what = f"{self.where}: `{op.command}` on stack {stack.name}"
        out: list[str] = []
        label = runner_label(stack.name)
        hosted = [x for x in self.labels if isinstance(x, str) and x.startswith(HOSTED_PREFIXES)]
        if op.command == "images":
            # builds with Docker, which the in-network runners lack; the registries are public
            # endpoints, so a GitHub-hosted runner pushes with the stack's deploy role
            if not hosted:
                shown = ", ".join(str(x) for x in self.labels)
                out.append(
                    f"{what} runs on [{shown}]: `dex images push` needs Docker, which only a "
                    f"GitHub-hosted runner has (the in-network runners run no Docker daemon)"
                )
        elif hosted:
            out.append(
                f"{what} runs on the GitHub-hosted runner {hosted[0]}, which cannot reach the "
                f"private cluster endpoint: use `runs-on: {label}` (the stack's in-network runner)"
            )
        elif "self-hosted" in self.labels:
            out.append(
                f"{what} asks for `self-hosted`, a label runner scale sets do not carry (they "
                f"match on their name alone): the job would never start; use `runs-on: {label}`"
            )
        elif self.labels != [label]:
            shown = ", ".join(str(x) for x in self.labels)
            out.append(f"{what} runs on [{shown}], not on the in-network runner {label}")
        if op.command in MUTATING and self.events & PR_EVENTS:
            out.append(f"{what}: a pull request must not change the stack (preview only)")
        if (
            op.command in PULUMI_COMMANDS
            and not hosted
            and not any(_PREBUILT.search(s.script) for s in self.before(op.index, "run"))
        ):
            out.append(
                f"{what} runs the program with the apps' images built in place (the default), "
                f"unlike the deploy and with no Docker daemon in-network: set `pulumi config "
                f"set --path dex:platform.image_source registry` before it (a deploy after a "
                f"job that runs `dex images push --stack {stack.name}`)"
            )
        want = "DEPLOY" if op.command in ("up", "destroy", "images") else "READONLY"
        if op.command in ("refresh", "kubectl", "dex"):
            want = ""
        if stack.cloud == "gcp":
            out += self.check_gcp(op, stack, what, want)
        else:
            out += self.check_aws(op, stack, what, want)
        return out

    def check_aws(self, op: _Op, stack: Stack, what: str, want: str) -> list[str]:
        creds = self.before(op.index, "aws")
        if not creds:
            return [f"{what}: no AWS credentials (aws-actions/configure-aws-credentials) before it"]
        out: list[str] = []
        step = creds[-1]
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
                out.append(
                    f"{what} assumes the {kind.lower()} role: it needs the {want.lower()} one"
                )
        duration = _seconds(step.with_.get("role-duration-seconds"), DEFAULT_AWS_SESSION_SECONDS)
        if duration is None:
            out.append(f"{what}: role-duration-seconds is not a number of seconds")
        else:
            if self.timeout_s is None or duration < self.timeout_s:
                shown = "unknown" if self.timeout_s is None else f"{self.timeout_s // 60} min"
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
        talks_to_cluster = op.command != "images"  # a push talks to the registry alone
        if talks_to_cluster and not any(
            _AWS_CLI_INSTALL.search(s.script) for s in self.before(op.index, "run")
        ):
            out.append(
                f"{what}: the AWS CLI is not installed before it (the EKS kubeconfig runs "
                f"`aws eks get-token`; the ARC runner image has no AWS CLI)"
            )
        return out

    def check_gcp(self, op: _Op, stack: Stack, what: str, want: str) -> list[str]:
        auth = self.before(op.index, "gcp")
        key = stack_key(stack.name)
        if not auth:
            return [f"{what}: no Google Cloud credentials (google-github-actions/auth) before it"]
        out: list[str] = []
        step = auth[-1]
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
        else:
            for found in (p.group(1), a.group(2)):
                if found != key:
                    out.append(
                        f"{what} authenticates with {found}'s identity, another stack's: use "
                        f"the *_{key} variables"
                    )
                    break
            if want and a.group(1) != want:
                out.append(
                    f"{what} uses the {a.group(1).lower()} service account: it needs the "
                    f"{want.lower()} one"
                )
        if _text(step.with_.get("token_format")) == "access_token":
            lifetime = _seconds(step.with_.get("access_token_lifetime"), 3600)
            need = max(self.timeout_s or 0, FIRST_DEPLOY_SECONDS if op.command == "up" else 0)
            if lifetime is None or lifetime < need:
                out.append(
                    f"{what}: the access token ({lifetime} s) expires before the job may end "
                    f"({need} s): raise access_token_lifetime (needs the org policy "
                    f"constraints/iam.allowServiceAccountCredentialLifetimeExtension)"
                )
        plugin = any(
            "gke-gcloud-auth-plugin" in str(s.with_.get("install_components", ""))
            for s in self.before(op.index, "gcloud")
        ) or any(_GKE_PLUGIN_INSTALL.search(s.script) for s in self.before(op.index, "run"))
        if not plugin and op.command != "images":  # a push talks to the registry alone
            out.append(
                f"{what}: gke-gcloud-auth-plugin is not installed before it (the GKE kubeconfig "
                f"runs it): google-github-actions/setup-gcloud with install_components"
            )
        return out


def _workflows(root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    folder = root / ".github" / "workflows"
    for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
        yield path.name, doc


def _events(on: Any) -> set[str]:
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return {str(e) for e in on}
    if isinstance(on, Mapping):
        return {str(e) for e in on}
    return set()


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else [str(n) for n in needs]


def _upstream(jobs: Mapping[str, Any], job_id: str) -> set[str]:
    seen: set[str] = set()
    todo = _needs(jobs.get(job_id) or {})
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += _needs(jobs.get(name) or {})
    return seen


def check_workflows(root: Path) -> list[str]:
    """Every problem of CI's reach to the stacks, as plain strings (empty: none)."""
    stacks = read_stacks(root)
    findings: list[str] = []
    deployed: dict[str, list[tuple[str, str]]] = {}
    pushed: dict[tuple[str, str], set[str]] = {}
    prebuilt_ups: list[tuple[str, str, str]] = []
    workflows = dict(_workflows(root))
    for name, doc in workflows.items():
        events = _events(doc.get("on"))
        jobs = doc.get("jobs") or {}
        for job_id, job in jobs.items():
            entries = matrix_entries(job)
            if entries is None:
                findings.append(
                    f"{name}: job {job_id}: its matrix is computed at run time; list the stacks"
                )
                continue
            for matrix in entries:
                checked = _Job(name, job_id, job, matrix, events, doc.get("env") or {})
                findings += checked.check(stacks)
                for op in checked.ops:
                    if op.command == "up" and isinstance(op.stack, str):
                        deployed.setdefault(op.stack, []).append((name, job_id))
                        if any(_PREBUILT.search(s.script) for s in checked.before(op.index, "run")):
                            prebuilt_ups.append((name, job_id, op.stack))
                    if op.command == "images" and isinstance(op.stack, str):
                        pushed.setdefault((name, job_id), set()).add(op.stack)
    for name, job_id, stack_name in prebuilt_ups:
        jobs = workflows[name].get("jobs") or {}
        if not any(stack_name in pushed.get((name, j), set()) for j in _upstream(jobs, job_id)):
            findings.append(
                f"{name}: job {job_id} deploys prebuilt images of {stack_name}, but no job it "
                f"`needs` pushes them (`dex images push --stack {stack_name}`)"
            )
    for stack in stacks.values():
        if stack.name not in deployed:
            findings.append(f"no workflow deploys stack {stack.name} (`pulumi up`)")
            continue
        if stack.environment != "prod":
            continue
        devs = {
            s.name for s in stacks.values() if s.cloud == stack.cloud and s.environment == "dev"
        }
        for name, job_id in deployed[stack.name]:
            jobs = workflows[name].get("jobs") or {}
            if not jobs[job_id].get("environment"):
                findings.append(
                    f"{name}: job {job_id} deploys {stack.name} with no `environment` "
                    f"(its required reviewers approve a production deployment)"
                )
            before = _upstream(jobs, job_id)
            deploys_dev = {
                dev for dev in devs for wf, j in deployed.get(dev, []) if wf == name and j in before
            }
            if devs and not deploys_dev:
                findings.append(
                    f"{name}: job {job_id} deploys {stack.name} without first deploying "
                    f"{' or '.join(sorted(devs))} (`needs`)"
                )
    return list(dict.fromkeys(findings))
