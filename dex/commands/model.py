"""`dex train` and `dex model`: train, register and promote the model, then operate it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from contracts.model import MODEL_NAME
from dex.commands.common import fail, out


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
        fail(str(exc))
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
        fail(str(exc))
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
