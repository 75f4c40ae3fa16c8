"""`dex local`: the whole platform loop (pipeline, MLflow, training, serving API) here."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from contracts.model import MODEL_NAME
from dex.commands.common import fail, out

if TYPE_CHECKING:
    from dex.local import LocalRun

T = TypeVar("T")

local_app = typer.Typer(help="The whole platform loop on this machine.", no_args_is_help=True)
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
        report, trained = _start_everything(run)
        _print_local_summary(run, report, trained)
        if once:
            prediction = run.predict_once()
            out.print_json(json.dumps(prediction))
            return
        out.print("[bold]running[/]: Ctrl-C stops everything")
        while all(p.poll() is None for p in run.processes.values()):
            time.sleep(1)
        fail("a service stopped unexpectedly; see the logs in " + str(data_dir), code=1)
    except LocalError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        out.print("stopping")
    finally:
        run.stop()


def _start_everything(run: LocalRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each step of `dex local up` under a spinner: (the pipeline's report, the training's)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    options = run.options
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out
    ) as progress:

        def step(label: str, fn: Callable[[], T]) -> T:
            task = progress.add_task(label, total=1)
            value = fn()
            progress.update(task, completed=1, description=f"[green]✓[/] {label}")
            return value

        sample = step("sample data (synthetic, 4 locations, 2 years hourly)", run.sample)
        step("object store bucket", run.prepare_s3)
        report = step(
            "weather pipeline: raw -> bronze -> silver -> gold"
            + (" (Airflow)" if options.with_airflow else ""),
            lambda: run.pipeline(sample),
        )
        step(f"MLflow on 127.0.0.1:{options.mlflow_port}", run.start_mlflow)
        trained = step("train, register, promote", run.train)
        if options.canary is not None:
            step(f"challenger for a {options.canary:.0%} canary", run.train_challenger)
        step(f"serving API on 127.0.0.1:{options.api_port}", run.start_api)
        if options.canary is not None:
            ops = step("model operations: feedback, decision, batch scoring", run.model_ops)
            for name, outcome in ops.items():
                if isinstance(outcome, dict) and "ok" in outcome:
                    mark = "[green]ok[/]" if outcome["ok"] else f"[red]{outcome['error']}[/]"
                    out.print(f"  model ops {name}: {mark}")
    return report, trained


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
