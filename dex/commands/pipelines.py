"""`dex pipelines`: run the bundled data pipelines here, or trigger and watch them in Airflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dex.commands.common import fail, out, write_atomically

pipelines_app = typer.Typer(help="The bundled data pipelines.", no_args_is_help=True)
_AIRFLOW_HELP = "Airflow's base URL (default: DEX_AIRFLOW_URL, else the stack's airflow_url)."


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
        fail(f"unknown pipeline {pipeline!r}; available: weather")
    try:
        first = dt.date.fromisoformat(start) if start else None
        last = dt.date.fromisoformat(end) if end else None
    except ValueError as exc:
        fail(f"--start/--end: {exc} (expected YYYY-MM-DD)")
    try:
        result = pipelines.run(source, lake, first, last, locations, lineage)
    except (
        pipelines.SourceError,
        pipelines.ReconciliationError,
        pipelines.QualityGateError,
        pipelines.UnitError,
    ) as exc:
        fail(f"the run failed: {exc}", code=1)
    except (pipelines.LakeError, ValueError) as exc:
        fail(str(exc))
    if report is not None:
        write_atomically(report, json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    _print_pipeline_summary(result)


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
        fail(f"unknown pipeline {pipeline!r}; available: weather")
    try:
        run_conf = json.loads(conf) if conf else {}
    except json.JSONDecodeError as exc:
        fail(f"--conf is not JSON: {exc}")
    if not isinstance(run_conf, dict):
        fail("--conf must be a JSON object")
    try:
        with Airflow(resolve(stack, airflow_url, username)) as airflow:
            result = airflow.trigger(pipeline, run_conf, unpause=unpause)
    except AirflowError as exc:
        fail(str(exc), code=1)
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
        fail(str(exc), code=1)
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
