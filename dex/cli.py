"""`dex`: the front door. Thin commands over `stacks` (plan, diff); nothing imports this.

Exit codes: 0 success, 1 the command ran and found a problem it reports (reserved for
checks), 2 bad input (unknown stack, invalid config, unreadable or malformed file).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from contracts.model import MODEL_NAME

if TYPE_CHECKING:
    from contracts.deployment import Plan, Resource

app = typer.Typer(
    name="dex",
    help="DEX (DataEngineX): plan, diff and check the platform's Pulumi program offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


class PlanFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


class PolicyFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    sarif = "sarif"


class Env(StrEnum):
    dev = "dev"
    prod = "prod"


class DiffFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def plan(
    stack: Annotated[str, typer.Argument(help="Stack name: dev, prod, gcp-dev, gcp-prod, ...")],
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the plan (JSON) to this file.")
    ] = None,
    fmt: Annotated[PlanFormat, typer.Option("--format", "-f", help="What to print.")] = (
        PlanFormat.table
    ),
    waves: Annotated[
        bool,
        typer.Option(
            "--waves",
            help="Print the creation waves of a first deploy (what each waits for) and the "
            "first-deploy checks; exit 1 when a check fails.",
        ),
    ] = False,
) -> None:
    """Synthesize STACK offline under Pulumi's mock engine and record its resource plan."""
    from contracts.deployment import dump_plan, parse_plan
    from stacks.config import ConfigError, load_config
    from stacks.stackfiles import StackFileError, read_stack_file
    from toolchain.synth import synthesize

    try:
        stack_file = read_stack_file(stack)
        raw = {k[4:]: v for k, v in stack_file.config.items() if str(k).startswith("dex:")}
        load_config(raw, stack=stack)  # fail on bad config before the engine starts
        doc = synthesize(stack)
    except (StackFileError, ConfigError) as exc:
        _fail(str(exc))
    text = dump_plan(doc)
    if out_file is not None:
        _write_atomically(out_file, text)
    if waves:
        _print_waves(doc, stack, stack_file.config, as_json=fmt is PlanFormat.json)
        return
    if fmt is PlanFormat.json:
        if out_file is None:
            sys.stdout.write(text)
        return
    parsed = parse_plan(doc, stack)
    if fmt is PlanFormat.markdown:
        sys.stdout.write(_plan_markdown(parsed))
        return
    _print_plan_table(parsed)
    if out_file is not None:
        err.print(f"plan written to {out_file}")


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The base plan or `pulumi stack export` file.")],
    new: Annotated[Path, typer.Argument(help="The head plan or `pulumi stack export` file.")],
    fmt: Annotated[DiffFormat, typer.Option("--format", "-f")] = DiffFormat.text,
    title: Annotated[str | None, typer.Option(help="Heading of the markdown comment.")] = None,
) -> None:
    """Compare two plans: resources added, removed, updated or replaced, property by property."""
    from contracts.deployment import PlanError, load_plan
    from toolchain.diff import diff_plans, render_markdown, render_text, to_json

    try:
        before, after = load_plan(old), load_plan(new)
    except PlanError as exc:
        _fail(str(exc))
    result = diff_plans(before, after)
    if fmt is DiffFormat.json:
        sys.stdout.write(json.dumps(to_json(result), indent=2, sort_keys=True) + "\n")
    elif fmt is DiffFormat.markdown:
        sys.stdout.write(render_markdown(result, title))
    else:
        sys.stdout.write(render_text(result))


policy_app = typer.Typer(
    help="The policy pack: check plans, exports and stacks offline.", no_args_is_help=True
)
app.add_typer(policy_app, name="policy")


@policy_app.command("check")
def policy_check(
    target: Annotated[
        str, typer.Argument(help="A `dex plan` file, a `pulumi stack export` file, or a stack.")
    ],
    env: Annotated[
        Env | None,
        typer.Option("--env", help="Enforcement profile; default: the plan's own environment."),
    ] = None,
    fmt: Annotated[PolicyFormat, typer.Option("--format", "-f")] = PolicyFormat.text,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A pack config JSON (as for --policy-pack-config)."),
    ] = None,
    title: Annotated[str | None, typer.Option(help="Heading of the markdown report.")] = None,
) -> None:
    """Run every rule over TARGET. Exit 1 when a mandatory rule is violated, 2 on bad input."""
    from policies.runner import (
        InputError,
        check,
        infer_environment,
        render_json,
        render_markdown,
        render_sarif,
        render_text,
    )

    doc, artifact = _load_target(target)
    try:
        environment = env.value if env else infer_environment(doc)
    except InputError as exc:
        _fail(f"{target}: {exc}")
    if environment is None:
        _fail(f"{target}: cannot tell dev from prod; pass --env dev or --env prod")
    try:
        report = check(doc, environment, _pack_config(config), source=target)  # type: ignore[arg-type]
    except InputError as exc:
        _fail(f"{target}: {exc}")
    if fmt is PolicyFormat.json:
        sys.stdout.write(render_json(report))
    elif fmt is PolicyFormat.markdown:
        sys.stdout.write(render_markdown(report, title))
    elif fmt is PolicyFormat.sarif:
        sys.stdout.write(render_sarif(report, artifact))
    else:
        sys.stdout.write(render_text(report))
    raise typer.Exit(0 if report.passed else 1)


@policy_app.command("rules")
def policy_rules() -> None:
    """Print the table of rules (markdown), as in docs/policies.md."""
    from policies.runner import rules_markdown

    sys.stdout.write(rules_markdown())


def _load_target(target: str) -> tuple[dict[str, object], str]:
    """(deployment document, artifact path for SARIF) from a file or a stack name."""
    from stacks.stackfiles import StackFileError, list_stacks

    path = Path(target)
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"{target}: cannot be read ({exc})")
        except json.JSONDecodeError as exc:
            _fail(f"{target}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})")
        if not isinstance(doc, dict):
            _fail(f"{target}: expected a JSON object (a plan or a stack export)")
        return doc, target
    if target in list_stacks():
        from stacks.config import ConfigError
        from toolchain.synth import synthesize

        try:
            return synthesize(target), f"Pulumi.{target}.yaml"
        except (StackFileError, ConfigError) as exc:
            _fail(str(exc))
    _fail(
        f"{target}: no such file, and no stack of that name (known stacks: "
        f"{', '.join(list_stacks())})"
    )


def _pack_config(path: Path | None) -> object:
    from policies.crossguard import pack_config

    if path is None:
        return pack_config(None)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        _fail(f"{path}: not a readable JSON pack config ({exc})")
    settings: dict[str, object] = {}
    for entry in raw.values() if isinstance(raw, dict) else []:
        if isinstance(entry, dict):
            for key in ("requiredTags", "allowedInstanceClasses"):
                if key in entry:
                    settings[key] = entry[key]
    return pack_config(settings)


@app.command()
def review(
    stack: Annotated[str, typer.Argument(help="The stack the two plans belong to.")],
    base: Annotated[Path, typer.Argument(help="The base branch's plan (or export).")],
    head: Annotated[Path, typer.Argument(help="The pull request's plan.")],
    env: Annotated[Env | None, typer.Option("--env")] = None,
    sha: Annotated[str | None, typer.Option(help="The head commit, shown in the title.")] = None,
) -> None:
    """Print the PR comment for STACK: plan diff and policy results, one comment."""
    from contracts.deployment import PlanError, load_plan
    from dex.review import build_comment
    from policies.runner import InputError, check, infer_environment
    from toolchain.diff import diff_plans

    try:
        before, after = load_plan(base), load_plan(head)
    except PlanError as exc:
        _fail(str(exc))
    doc = after.document()
    try:
        environment = env.value if env else infer_environment(doc)
        if environment is None:
            _fail(f"{head}: cannot tell dev from prod; pass --env")
        report = check(doc, environment, source=str(head))
    except InputError as exc:
        _fail(f"{head}: {exc}")
    diff = diff_plans(before, after)
    sys.stdout.write(build_comment(stack, diff, report, head_sha=sha))


pipelines_app = typer.Typer(help="The bundled data pipelines.", no_args_is_help=True)
app.add_typer(pipelines_app, name="pipelines")


@pipelines_app.command("run")
def pipelines_run(
    pipeline: Annotated[str, typer.Argument(help="The pipeline: weather.")],
    source: Annotated[
        str,
        typer.Option(
            help="file://, s3://, gs:// folder of responses, or the "
            "Open-Meteo archive API's http(s) URL."
        ),
    ],
    lake: Annotated[str, typer.Option(help="The lake: file://, s3:// or gs:// URL.")],
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD.")] = None,
    locations: Annotated[str | None, typer.Option(help="berlin,oslo or name:lat:lon,...")] = None,
    lineage: Annotated[
        str | None, typer.Option(help="OpenLineage: file:///x.jsonl or http(s)://")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the run report (JSON) here.")] = None,
) -> None:
    """Run a pipeline through every layer and print a summary."""
    import datetime as dt

    from apps.pipelines import cli as pipelines

    if pipeline != "weather":
        _fail(f"unknown pipeline {pipeline!r}; available: weather")
    try:
        first = dt.date.fromisoformat(start) if start else None
        last = dt.date.fromisoformat(end) if end else None
    except ValueError as exc:
        _fail(f"--start/--end: {exc} (expected YYYY-MM-DD)")
    try:
        result = pipelines.run(source, lake, first, last, locations, lineage)
    except (
        pipelines.SourceError,
        pipelines.ReconciliationError,
        pipelines.QualityGateError,
        pipelines.UnitError,
    ) as exc:
        _fail(f"the run failed: {exc}", code=1)
    except (pipelines.LakeError, ValueError) as exc:
        _fail(str(exc))
    if report is not None:
        _write_atomically(report, json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    _print_pipeline_summary(result)


images_app = typer.Typer(help="The apps' images: push them for a prebuilt-image deploy.")
app.add_typer(images_app, name="images")


@images_app.command("push")
def images_push(
    stack: Annotated[
        str | None, typer.Option(help="The stack whose registry (output registry_urls) to use.")
    ] = None,
    registry_url: Annotated[
        list[str] | None,
        typer.Option(
            "--registry-url",
            help="APP=REPOSITORY_URL, for each app, instead of reading the stack's outputs.",
        ),
    ] = None,
) -> None:
    """Build and push the apps' images under their source tags, skipping tags the registry
    already holds; then `pulumi up` with `dex:platform.image_source=registry` deploys them."""
    from dex.images import ImageError, push
    from dex.outputs import StackOutputError, stack_outputs

    urls: dict[str, str] = {}
    for item in registry_url or []:
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            _fail(f"--registry-url takes APP=REPOSITORY_URL, got {item!r}")
        urls[name] = url
    if not urls:
        if stack is None:
            _fail("say where to push: --stack STACK, or --registry-url APP=URL for each app")
        try:
            found = stack_outputs(stack, "pass --registry-url APP=URL for each app")
        except StackOutputError as exc:
            _fail(str(exc), code=1)
        urls = dict(found.get("registry_urls") or {})
    try:
        results = push(urls)
    except ImageError as exc:
        _fail(str(exc), code=1)
    for result in results:
        verb = "pushed" if result.pushed else "already there"
        out.print(f"{result.app}: {result.ref} ({verb})", highlight=False)


_AIRFLOW_HELP = "Airflow's base URL (default: DEX_AIRFLOW_URL, else the stack's airflow_url)."


@pipelines_app.command("trigger")
def pipelines_trigger(
    pipeline: Annotated[str, typer.Argument(help="The pipeline (DAG id): weather.")],
    stack: Annotated[
        str | None, typer.Option(help="The deployed stack whose Airflow runs it.")
    ] = None,
    airflow_url: Annotated[str | None, typer.Option(help=_AIRFLOW_HELP)] = None,
    username: Annotated[
        str,
        typer.Option(
            help="Airflow user (password: DEX_AIRFLOW_PASSWORD, "
            "else the stack's airflow_admin_password)."
        ),
    ] = "admin",
    conf: Annotated[str | None, typer.Option(help="Run conf, a JSON object.")] = None,
    unpause: Annotated[bool, typer.Option(help="Unpause the DAG if it is paused.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Start a run of a pipeline in the deployed Airflow."""
    from dex.airflow import Airflow, AirflowError, resolve

    if pipeline != "weather":
        _fail(f"unknown pipeline {pipeline!r}; available: weather")
    try:
        run_conf = json.loads(conf) if conf else {}
    except json.JSONDecodeError as exc:
        _fail(f"--conf is not JSON: {exc}")
    if not isinstance(run_conf, dict):
        _fail("--conf must be a JSON object")
    try:
        with Airflow(resolve(stack, airflow_url, username)) as airflow:
            result = airflow.trigger(pipeline, run_conf, unpause=unpause)
    except AirflowError as exc:
        _fail(str(exc), code=1)
    if as_json:
        out.print_json(json.dumps(result))
        return
    out.print(f"triggered [bold]{pipeline}[/]: run {result['dag_run_id']} ({result['state']})")
    if result["paused"]:
        out.print("[yellow]the DAG is paused: the run waits until it is unpaused[/]")
    elif result["was_paused"]:
        out.print("the DAG was paused and has been unpaused")
    out.print(result["url"], soft_wrap=True)


@pipelines_app.command("status")
def pipelines_status(
    pipeline: Annotated[str, typer.Argument(help="The pipeline (DAG id).")] = "weather",
    stack: Annotated[
        str | None, typer.Option(help="The deployed stack whose Airflow runs it.")
    ] = None,
    airflow_url: Annotated[str | None, typer.Option(help=_AIRFLOW_HELP)] = None,
    username: Annotated[str, typer.Option(help="Airflow user.")] = "admin",
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many recent runs.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The latest runs of a pipeline in the deployed Airflow, and the newest run's tasks."""
    from dex.airflow import Airflow, AirflowError, resolve

    try:
        with Airflow(resolve(stack, airflow_url, username)) as airflow:
            result = airflow.status(pipeline, limit)
    except AirflowError as exc:
        _fail(str(exc), code=1)
    if as_json:
        out.print_json(json.dumps(result))
        return
    paused = " (paused)" if result["paused"] else ""
    runs = Table("run", "state", "type", "run after", "started", "ended",
                 title=f"{pipeline}{paused}: {result['total_runs']} runs")  # fmt: skip
    for r in result["runs"]:
        runs.add_row(
            r["dag_run_id"], r["state"] or "", r["run_type"] or "", r["run_after"] or "",
            r["start_date"] or "", r["end_date"] or "",
        )  # fmt: skip
    out.print(runs)
    if result["latest_tasks"]:
        tasks = Table("task", "state", "try", title="tasks of the newest run")
        for t in result["latest_tasks"]:
            tasks.add_row(t["task_id"], t["state"] or "(none)", str(t["try_number"]))
        out.print(tasks)


def _print_pipeline_summary(result: dict[str, object]) -> None:
    layers = result["layers"]
    assert isinstance(layers, dict)
    table = Table(
        "layer",
        "rows in",
        "rows out",
        "partitions written",
        title=f"weather run {result['run_id']}",
    )
    raw = layers.get("raw", {})
    table.add_row(
        "raw",
        "",
        f"{raw.get('files_landed', 0)} files landed",
        f"{raw.get('files_already_landed', 0)} already there",
    )
    for name in ("bronze", "silver"):
        d = layers.get(name, {})
        table.add_row(
            name,
            str(d.get("rows_in", 0)),
            str(d.get("rows", 0)),
            str(d.get("partitions_written", 0)),
        )
    gold = layers.get("gold", {})
    table.add_row(
        "gold",
        "",
        f"{gold.get('daily_rows', 0)} daily / {gold.get('feature_rows', 0)} feature rows",
        str(gold.get("partitions_written", 0)),
    )
    out.print(table)
    quarantine = result["quarantine"]
    assert isinstance(quarantine, dict)
    q = Table("quarantined", "rows", title=f"{quarantine['rows']} rows quarantined")
    for reason, n in quarantine["by_reason"].items():
        q.add_row(reason, str(n))
    out.print(q)
    refused = result.get("refused") or {}
    if isinstance(refused, dict) and refused.get("files"):
        r = Table("file", "why", title=f"{refused['files']} files refused whole")
        for item in list(refused.get("by_file") or []):
            r.add_row(str(item.get("file", "")), str(item.get("reason", "")))
        out.print(r)
    validation = result.get("validation") or {}
    assert isinstance(validation, dict)
    if validation:
        out.print(
            f"validation: {validation['rows_evaluated']} rows, "
            f"{validation['failed_rows']} failed an expectation (quarantined); "
            f"result at {validation['result']}"
        )


@app.command()
def train(
    lake: Annotated[str, typer.Option(help="The lake with gold features (file://, s3://, gs://).")],
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI.")] = "sqlite:///mlflow.db",
    margin: Annotated[
        float, typer.Option(help="Required MAE improvement to become champion.")
    ] = 0.02,
    skip_if_unchanged: Annotated[
        bool, typer.Option(help="Skip when gold has not changed.")
    ] = False,
) -> None:
    """Train, register and (maybe) promote the next-day max temperature model."""
    from apps.training.data import NoDataError
    from apps.training.settings import TrainingSettings
    from apps.training.train import train as run_training

    try:
        settings = TrainingSettings(
            lake_url=lake,
            MLFLOW_TRACKING_URI=tracking_uri,
            promotion_margin=margin,
        )
        result = run_training(settings, skip_if_unchanged)
    except NoDataError as exc:
        _fail(str(exc))
    table = Table("", "model", "persistence baseline", title=f"run {result.run_id}")
    m = result.metrics
    table.add_row("MAE (°C)", f"{m['mae']:.3f}", f"{m['baseline_mae']:.3f}")
    table.add_row("RMSE (°C)", f"{m['rmse']:.3f}", f"{m['baseline_rmse']:.3f}")
    out.print(table)
    if result.skipped:
        out.print(
            f"gold unchanged (data version {result.data_version}): kept "
            f"{result.model_name} v{result.version}"
        )
        return
    champion = "none" if result.champion_mae is None else f"{result.champion_mae:.3f}"
    out.print(
        f"registered {result.model_name} v{result.version} -> [bold]{result.alias}[/] "
        f"(champion MAE on the same holdout: {champion}, margin {margin:.0%})"
    )


model_app = typer.Typer(
    help="The registered model after training: rollback and the daily operations.",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")


class OpsStep(StrEnum):
    feedback = "feedback"
    decide = "decide"
    score = "score"
    drift = "drift"
    daily = "daily"


_TRACKING_HELP = "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."


@model_app.command("rollback")
def model_rollback(
    to: Annotated[
        str | None, typer.Option("--to", help="Make this version champion (default: the previous).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why: recorded in MLflow with who and when.")] = "",
    tracking_uri: Annotated[
        str, typer.Option(envvar="MLFLOW_TRACKING_URI", help=_TRACKING_HELP)
    ] = "sqlite:///mlflow.db",
    model_name: Annotated[str, typer.Option(help="The registered model.")] = MODEL_NAME,
    by: Annotated[str | None, typer.Option(help="Who (default: DEX_ACTOR or the user).")] = None,
) -> None:
    """Move `champion` back to the previous champion (or to --to VERSION), recorded in MLflow."""
    from apps.training.ops import RollbackError, rollback
    from apps.training.settings import ModelOpsSettings

    settings = ModelOpsSettings(tracking_uri=tracking_uri, model_name=model_name)
    try:
        result = rollback(settings, to=to, reason=reason, by=by)
    except RollbackError as exc:
        _fail(str(exc))
    out.print(
        f"{result['model_name']}: champion v{result['from']} -> [bold]v{result['to']}[/] "
        f"(by {result['by']} at {result['at']}: {result['reason']})"
    )


@model_app.command("ops")
def model_ops(
    step: Annotated[OpsStep, typer.Argument(help="feedback, decide, score, drift or daily.")],
    lake: Annotated[str | None, typer.Option(help="The lake URL (default: DEX_LAKE_URL).")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help=_TRACKING_HELP)] = None,
    model_name: Annotated[str | None, typer.Option(help="The registered model.")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Last predicted day of the window, YYYY-MM-DD.")
    ] = None,
) -> None:
    """Run one model operation (`python -m apps.training.ops STEP`); prints its JSON report.
    Exit 1 when the step failed."""
    from apps.training.ops import main as ops_main

    argv = [step.value]
    for flag, value in (
        ("--lake", lake),
        ("--tracking-uri", tracking_uri),
        ("--model-name", model_name),
        ("--as-of", as_of),
    ):
        if value:
            argv += [flag, value]
    code = ops_main(argv)
    if code:
        raise typer.Exit(code)


local_app = typer.Typer(help="The whole platform loop on this machine.", no_args_is_help=True)
app.add_typer(local_app, name="local")
DATA_DIR = Path(".dex") / "local"


@local_app.command("up")
def local_up(
    data_dir: Annotated[Path, typer.Option(help="Where everything is written.")] = DATA_DIR,
    api_port: Annotated[int, typer.Option()] = 8000,
    mlflow_port: Annotated[int, typer.Option()] = 5000,
    once: Annotated[bool, typer.Option(help="Run the flow, predict once, stop, exit.")] = False,
    postgres: Annotated[str | None, typer.Option(help="MLflow backend store URL.")] = None,
    redis: Annotated[str | None, typer.Option(help="Redis URL for cache and rate limits.")] = None,
    s3_endpoint: Annotated[str | None, typer.Option(help="S3-compatible endpoint URL.")] = None,
    with_airflow: Annotated[bool, typer.Option(help="Run the pipeline through Airflow.")] = False,
    canary: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=1.0,
            help="Train a challenger too and answer this share of callers with it (e.g. 0.2); "
            "then run the daily model operations once.",
        ),
    ] = None,
) -> None:
    """Sample data -> pipeline -> MLflow -> training -> serving API, on 127.0.0.1."""
    import signal

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from dex.local import LocalError, LocalOptions, LocalRun

    def _terminated(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops what was started, as Ctrl-C does

    signal.signal(signal.SIGTERM, _terminated)
    run = LocalRun(
        LocalOptions(
            data_dir, api_port, mlflow_port, postgres, redis, s3_endpoint, with_airflow, canary
        )
    )
    try:
        run.check()
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out
        ) as progress:

            def step(label: str, fn):  # type: ignore[no-untyped-def]
                task = progress.add_task(label, total=1)
                value = fn()
                progress.update(task, completed=1, description=f"[green]✓[/] {label}")
                return value

            sample = step("sample data (synthetic, 4 locations, 2 years hourly)", run.sample)
            step("object store bucket", run.prepare_s3)
            report = step(
                "weather pipeline: raw -> bronze -> silver -> gold"
                + (" (Airflow)" if with_airflow else ""),
                lambda: run.pipeline(sample),
            )
            step(f"MLflow on 127.0.0.1:{mlflow_port}", run.start_mlflow)
            trained = step("train, register, promote", run.train)
            if canary is not None:
                step(f"challenger for a {canary:.0%} canary", run.train_challenger)
            step(f"serving API on 127.0.0.1:{api_port}", run.start_api)
            if canary is not None:
                ops = step("model operations: feedback, decision, batch scoring", run.model_ops)
                for name, outcome in ops.items():
                    if isinstance(outcome, dict) and "ok" in outcome:
                        mark = "[green]ok[/]" if outcome["ok"] else f"[red]{outcome['error']}[/]"
                        out.print(f"  model ops {name}: {mark}")
        _print_local_summary(run, report, trained)
        if once:
            prediction = run.predict_once()
            out.print_json(json.dumps(prediction))
            return
        out.print("[bold]running[/]: Ctrl-C stops everything")
        while all(p.poll() is None for p in run.processes.values()):
            time.sleep(1)
        _fail("a service stopped unexpectedly; see the logs in " + str(data_dir), code=1)
    except LocalError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        out.print("stopping")
    finally:
        run.stop()


def _print_local_summary(
    run: object, report: dict[str, object], trained: dict[str, object]
) -> None:
    from dex.local import LocalRun

    assert isinstance(run, LocalRun)
    layers = report.get("layers", {}) if report else {}
    assert isinstance(layers, dict)
    table = Table("what", "value", title="DEX local platform")
    for layer in ("bronze", "silver"):
        d = layers.get(layer, {})
        table.add_row(f"{layer} rows (this run)", str(d.get("rows", 0)))
    gold = layers.get("gold", {})
    table.add_row(
        "gold daily / feature rows", f"{gold.get('daily_rows', 0)} / {gold.get('feature_rows', 0)}"
    )
    quarantine = report.get("quarantine", {}) if report else {}
    assert isinstance(quarantine, dict)
    table.add_row("quarantined rows (this run)", str(quarantine.get("rows", 0)))
    metrics = trained["metrics"]
    assert isinstance(metrics, dict)
    table.add_row(
        "model",
        f"{MODEL_NAME} v{trained['version']} ({trained['alias']})"
        + (" (gold unchanged: not retrained)" if trained["skipped"] else ""),
    )
    table.add_row(
        "holdout MAE vs persistence", f"{metrics['mae']:.2f} °C vs {metrics['baseline_mae']:.2f} °C"
    )
    api = f"http://127.0.0.1:{run.options.api_port}"
    table.add_row("API / docs", f"{api}  {api}/docs")
    table.add_row("MLflow UI", run.tracking_uri)
    table.add_row("lake", run.lake_url)
    out.print(table)
    out.print("try it:", style="bold")
    out.print(
        f"curl -s -H 'Authorization: Bearer {run.token()}' {api}/v1/forecast/berlin",
        soft_wrap=True,
        highlight=False,
    )


@local_app.command("status")
def local_status(data_dir: Annotated[Path, typer.Option()] = DATA_DIR) -> None:
    """What `dex local up` started, and whether it still runs."""
    from dex.local import status

    state = status(data_dir)
    if state is None:
        out.print(f"nothing running from {data_dir}")
        raise typer.Exit(0)
    table = Table("service", "pid", "running", "url")
    for name, pid in state["pids"].items():
        table.add_row(
            name, str(pid), "yes" if state["alive"][name] else "no", str(state.get(name, ""))
        )
    out.print(table)


@local_app.command("down")
def local_down(data_dir: Annotated[Path, typer.Option()] = DATA_DIR) -> None:
    """Stop what `dex local up` started."""
    from dex.local import down

    stopped = down(data_dir)
    out.print(f"stopped: {', '.join(stopped)}" if stopped else f"nothing running from {data_dir}")


@app.command("config-reference")
def config_reference(
    cloud: Annotated[str, typer.Argument(help="aws or gcp")],
) -> None:
    """Print the table of `dex:*` keys with their dev and prod defaults (as in docs/config.md)."""
    from stacks.config import reference_markdown

    if cloud not in ("aws", "gcp"):
        _fail(f"cloud must be 'aws' or 'gcp', got {cloud!r}")
    sys.stdout.write(reference_markdown(cloud))  # type: ignore[arg-type]


@app.command("stacks")
def list_stacks_cmd() -> None:
    """List the project's stacks and what each targets."""
    from stacks.stackfiles import list_stacks, read_stack_file

    table = Table("stack", "cloud", "environment", "region")
    for name in list_stacks():
        cfg = read_stack_file(name).config
        table.add_row(
            name,
            str(cfg.get("dex:cloud", "?")),
            str(cfg.get("dex:environment", "?")),
            str(cfg.get("dex:region", "?")),
        )
    out.print(table)


def _print_waves(doc: dict[str, object], stack: str, config: object, *, as_json: bool) -> None:
    """The first deploy of STACK, wave by wave, then what the first-deploy checks find."""
    from contracts.deployment import parse_plan
    from toolchain.first_deploy import check_plan, describe_waves

    parsed = parse_plan(doc, stack)
    meta = doc.get("dex") or {}
    invokes = [
        {"token": t, "provider": p}
        for t, p in (meta.get("invokes", []) if isinstance(meta, dict) else [])
    ]
    described = describe_waves(parsed)
    findings = check_plan(parsed, config, invokes=invokes)  # type: ignore[arg-type]
    if as_json:
        report = {
            "stack": stack,
            "waves": described,
            "findings": [{"check": f.check, "urn": f.urn, "message": f.message} for f in findings],
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        table = Table(title=f"first deploy of {stack}: {len(described)} waves")
        table.add_column("wave", justify="right")
        table.add_column("creates")
        table.add_column("waits for (from the wave before)")
        for wave in described:
            items = wave["resources"]
            names = [f"{r['name']} ({r['type'].split(':')[-1]})" for r in items]
            waits = sorted({w for r in items for w in r["waits_for"]})
            shown = names if len(names) <= 8 else [*names[:8], f"... {len(names) - 8} more"]
            waited = waits if len(waits) <= 6 else [*waits[:6], f"... {len(waits) - 6} more"]
            table.add_row(str(wave["wave"]), "\n".join(shown), "\n".join(waited))
        out.print(table)
        if findings:
            for finding in findings:
                err.print(f"[red]{finding}[/]", highlight=False, soft_wrap=True)
        else:
            out.print(
                "first-deploy checks: engine rules, plugin paths, creation order, "
                "reachability, TLS trust, cold start: no findings"
            )
    if findings:
        raise typer.Exit(1)


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary sibling and rename, so a reader never sees half a plan."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror or exc}")


def _print_plan_table(plan: Plan) -> None:
    from toolchain.diff import component_tree

    tree_of = component_tree(plan)
    roots = tree_of.get(None, [])
    for root in roots:
        tree = Tree(f"[bold]{root.type}[/] {root.name}")
        _add_children(tree, root.urn, tree_of)
        out.print(tree)
    counts = Table("resource type", "count", title=f"{len(plan)} resources in {plan.stack}")
    for type_, n in sorted(plan.type_counts().items()):
        counts.add_row(type_, str(n))
    out.print(counts)


def _add_children(tree: Tree, urn: str, tree_of: dict[str | None, list[Resource]]) -> None:
    children = tree_of.get(urn, [])
    leaves: Counter[str] = Counter()
    for child in children:
        if child.custom and child.urn not in tree_of:
            leaves[child.type] += 1
            continue
        branch = tree.add(f"[bold]{child.type}[/] {child.name}")
        _add_children(branch, child.urn, tree_of)
    for type_, n in sorted(leaves.items()):
        tree.add(f"{type_} x{n}" if n > 1 else type_)


def _plan_markdown(plan: Plan) -> str:
    lines = [
        f"### Plan for `{plan.stack}`: {len(plan)} resources",
        "",
        "| resource type | count |",
        "| --- | ---: |",
    ]
    lines += [f"| `{t}` | {n} |" for t, n in sorted(plan.type_counts().items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
