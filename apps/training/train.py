"""Train, evaluate, track, register and (maybe) promote the next-day max temperature model.

The model is a gradient-boosted tree ensemble over the gold features (plus the location,
one-hot). It is judged on a time-based holdout against a persistence baseline (tomorrow's
max = today's max) and against the current `champion` on the same holdout: it takes the
`champion` alias only if its MAE beats the champion's by the configured margin, else it
becomes `challenger` (`register_as="challenger"` makes it the challenger whatever its MAE, to
try a model online; `max_iter` / `learning_rate` override the tuned hyper-parameters). A new
champion is recorded in the registered model's champion history, which `dex model rollback`
reads. Everything (params, metrics, input dataset with digest and source,
signature and input example, git commit, data version, decision, model card, the reference
distribution the API's drift job compares against) is logged to MLflow.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from apps.shared.schema import FEATURE_COLUMNS
from apps.training.data import Dataset, load_features, time_split, xy
from apps.training.settings import TrainingSettings

PARAMS = {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 31, "l2_regularization": 0.1}
REFERENCE_BINS = 10
TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


class RegistrationError(ValueError):
    """The new version cannot take the alias asked for (a challenger with no champion)."""


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_name: str
    version: str
    alias: str
    metrics: dict[str, float]
    champion_mae: float | None
    data_version: str
    skipped: bool = False


def hyper_parameters(settings: TrainingSettings) -> dict[str, Any]:
    """The tuned parameters, with the settings' overrides."""
    overrides = {"max_iter": settings.max_iter, "learning_rate": settings.learning_rate}
    return {**PARAMS, **{k: v for k, v in overrides.items() if v is not None}}


def build_model(seed: int, params: dict[str, Any] | None = None) -> Pipeline:
    encode = ColumnTransformer(
        [("location", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["location"])],
        remainder="passthrough",
    )
    return Pipeline(
        [
            ("encode", encode),
            ("gbm", HistGradientBoostingRegressor(random_state=seed, **(params or PARAMS))),
        ]
    )


def scores(y: pd.Series, pred: np.ndarray) -> dict[str, float]:
    err = np.asarray(pred, dtype=float) - y.to_numpy(dtype=float)
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}


def reference_distribution(frame: pd.DataFrame) -> dict[str, Any]:
    """Per feature: quantile bin edges and the training share in each bin (PSI reference)."""
    out: dict[str, Any] = {}
    for col in FEATURE_COLUMNS:
        if col not in frame:
            continue
        values = frame[col].dropna().to_numpy(dtype=float)
        if len(values) < REFERENCE_BINS:
            continue
        edges = np.unique(np.quantile(values, np.linspace(0, 1, REFERENCE_BINS + 1)))
        counts, _ = np.histogram(values, bins=edges)
        out[col] = {"edges": edges.tolist(), "share": (counts / counts.sum()).tolist()}
    return out


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as a developer runs it
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("DEX_GIT_COMMIT", "unknown")


def _requirements() -> list[str]:
    pins = [f"{pkg}=={metadata.version(pkg)}" for pkg in ("scikit-learn", "pandas", "numpy")]
    return [*pins, f"mlflow=={metadata.version('mlflow')}"]


def model_card(result: dict[str, Any]) -> str:
    m = result["metrics"]
    return f"""# Model card: {result["model_name"]} v{result["version"]}

**Predicts** the next day's maximum temperature (°C) per location from the gold weather
features (lags, rolling windows, season), trained on data version `{result["data_version"]}`
from `{result["source"]}`.

| holdout ({result["holdout_rows"]} rows from {result["cutoff"]}) | model | persistence |
| --- | ---: | ---: |
| MAE (°C) | {m["mae"]:.3f} | {m["baseline_mae"]:.3f} |
| RMSE (°C) | {m["rmse"]:.3f} | {m["baseline_rmse"]:.3f} |

**Promotion:** {result["decision"]}. Champion MAE on the same holdout:
{"none (first model)" if result["champion_mae"] is None else f"{result['champion_mae']:.3f}"};
required improvement {result["margin"]:.0%}.

**Training data:** {result["train_rows"]} rows before {result["cutoff"]}, locations
{", ".join(result["locations"])}. **Code:** commit `{result["git_commit"]}`.

**Limits:** synthetic or station data only for the locations seen in training; an unknown
location is encoded as none of them. Watch the API's drift metrics (PSI per feature).
"""


@dataclass(frozen=True)
class Fitted:
    """A model fitted on the training rows and judged on the holdout."""

    model: Pipeline
    params: dict[str, Any]
    metrics: dict[str, float]
    """Holdout MAE and RMSE, the persistence baseline's and the ratio of the two MAEs."""
    train_df: pd.DataFrame
    holdout_df: pd.DataFrame
    x_hold: pd.DataFrame
    y_hold: pd.Series
    cutoff: dt.date


@dataclass(frozen=True)
class Promotion:
    """Which alias the new version takes, and why."""

    alias: str
    required: float | None
    """The MAE the new version had to reach to become champion (None: no champion to beat)."""
    champion_version: str | None
    champion_mae: float | None


def train(settings: TrainingSettings, skip_if_unchanged: bool = False) -> TrainResult:
    dataset = load_features(settings.lake_url)
    train_df, holdout_df, cutoff = time_split(dataset.frame, settings.holdout_days)
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient()
    if skip_if_unchanged:
        unchanged = _unchanged(client, settings.model_name, dataset.digest)
        if unchanged is not None:
            return unchanged
    if settings.register_as == "challenger":
        _require_champion(client, settings.model_name)
    _ensure_experiment(client, settings)
    fitted = _fit(settings, train_df, holdout_df, cutoff)
    champion_version, champion_mae = _champion(
        client, settings.model_name, fitted.x_hold, fitted.y_hold
    )
    with mlflow.start_run(run_name=f"train-{dataset.digest}") as run:
        _log_training(settings, dataset, fitted)
        version = _log_model(settings, fitted)
        promotion = _promotion(settings, fitted.metrics, champion_version, champion_mae)
        _log_promotion(settings, dataset, fitted, version, promotion)
        _register(client, settings, dataset, fitted.metrics, version, promotion)
        run_id = run.info.run_id
    return TrainResult(
        run_id,
        settings.model_name,
        version,
        promotion.alias,
        fitted.metrics,
        champion_mae,
        dataset.digest,
    )


def _unchanged(client: MlflowClient, name: str, digest: str) -> TrainResult | None:
    """The latest version, as a skipped result, when it was trained on this data version."""
    latest = _latest_version(client, name)
    if latest is None or latest.tags.get("data_version") != digest:
        return None
    full = client.get_model_version(name, str(latest.version))
    alias = next(iter(full.aliases), "")
    run = client.get_run(latest.run_id)
    return TrainResult(
        latest.run_id,
        name,
        str(latest.version),
        alias,
        dict(run.data.metrics),
        None,
        digest,
        skipped=True,
    )


def _fit(
    settings: TrainingSettings, train_df: pd.DataFrame, holdout_df: pd.DataFrame, cutoff: dt.date
) -> Fitted:
    """Fit on the training rows; score on the holdout, against the persistence baseline."""
    x_train, y_train = xy(train_df)
    x_hold, y_hold = xy(holdout_df)
    params = hyper_parameters(settings)
    model = build_model(settings.random_seed, params).fit(x_train, y_train)
    metrics = scores(y_hold, model.predict(x_hold))
    baseline = scores(y_hold, holdout_df["temp_max_c"].to_numpy())
    metrics |= {
        "baseline_mae": baseline["mae"],
        "baseline_rmse": baseline["rmse"],
        "mae_vs_baseline": metrics["mae"] / baseline["mae"],
    }
    return Fitted(model, params, metrics, train_df, holdout_df, x_hold, y_hold, cutoff)


def _log_training(settings: TrainingSettings, dataset: Dataset, fitted: Fitted) -> None:
    """The run's params, metrics, tags and input dataset."""
    mlflow.log_params(
        {
            **fitted.params,
            "holdout_days": settings.holdout_days,
            "cutoff": fitted.cutoff.isoformat(),
            "train_rows": len(fitted.train_df),
            "holdout_rows": len(fitted.holdout_df),
            "seed": settings.random_seed,
            "promotion_margin": settings.promotion_margin,
            "register_as": settings.register_as,
        }
    )
    mlflow.log_metrics(fitted.metrics)
    mlflow.set_tags(
        {
            "data_version": dataset.digest,
            "mlflow.source.git.commit": git_commit(),
            "git_commit": git_commit(),
            "features_source": dataset.source,
        }
    )
    mlflow.log_input(
        mlflow.data.from_pandas(  # type: ignore[attr-defined]
            dataset.frame,
            source=dataset.source,
            name="weather-gold-features",
            digest=dataset.digest,
        ),
        context="training",
    )


def _log_model(settings: TrainingSettings, fitted: Fitted) -> str:
    """Log the model (signature, input example, requirements) and register it; its version."""
    x_hold, model = fitted.x_hold, fitted.model
    signature = infer_signature(x_hold.head(50), model.predict(x_hold.head(50)))
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=x_hold.head(3),
        pip_requirements=_requirements(),
        registered_model_name=settings.model_name,
        # we built this model ourselves: its tree nodes are trusted by construction
        skops_trusted_types=TRUSTED_TYPES,
    )
    return str(info.registered_model_version)


def _promotion(
    settings: TrainingSettings,
    metrics: dict[str, float],
    champion_version: str | None,
    champion_mae: float | None,
) -> Promotion:
    """Champion when it beats the champion's holdout MAE by the margin (and `register_as` is
    auto), else challenger."""
    required = None if champion_mae is None else champion_mae * (1 - settings.promotion_margin)
    wins = required is None or metrics["mae"] <= required
    alias = "champion" if wins and settings.register_as == "auto" else "challenger"
    return Promotion(alias, required, champion_version, champion_mae)


def _log_promotion(
    settings: TrainingSettings,
    dataset: Dataset,
    fitted: Fitted,
    version: str,
    promotion: Promotion,
) -> None:
    """The decision (`promotion.json`), the drift reference (`reference.json`) and the model
    card (`model_card.md`)."""
    comparison = {
        "decision": promotion.alias,
        "register_as": settings.register_as,
        "new_version": version,
        "new_mae": fitted.metrics["mae"],
        "champion_version": promotion.champion_version,
        "champion_mae": promotion.champion_mae,
        "margin": settings.promotion_margin,
        "required_mae": promotion.required,
    }
    if promotion.champion_mae is not None:
        mlflow.log_metric("champion_holdout_mae", promotion.champion_mae)
    mlflow.set_tag("promotion_decision", promotion.alias)
    mlflow.log_dict(comparison, "promotion.json")
    mlflow.log_dict(reference_distribution(fitted.train_df), "reference.json")
    card = {
        "model_name": settings.model_name,
        "version": version,
        "metrics": fitted.metrics,
        "data_version": dataset.digest,
        "source": dataset.source,
        "cutoff": fitted.cutoff,
        "holdout_rows": len(fitted.holdout_df),
        "train_rows": len(fitted.train_df),
        "decision": promotion.alias,
        "champion_mae": promotion.champion_mae,
        "margin": settings.promotion_margin,
        "locations": sorted(fitted.train_df["location"].unique()),
        "git_commit": git_commit(),
    }
    mlflow.log_text(model_card(card), "model_card.md")


def _register(
    client: MlflowClient,
    settings: TrainingSettings,
    dataset: Dataset,
    metrics: dict[str, float],
    version: str,
    promotion: Promotion,
) -> None:
    """Point the alias at the new version (a new champion goes into the champion history)
    and tag the version with its data version, commit and holdout MAE."""
    alias, required = promotion.alias, promotion.required
    client.set_registered_model_alias(settings.model_name, alias, version)
    if alias == "champion":
        from apps.training.model_ops.registry import record_champion_change

        record_champion_change(
            client,
            settings.model_name,
            version=version,
            previous=promotion.champion_version,
            kind="training",
            by="training",
            reason=f"holdout MAE {metrics['mae']:.3f}"
            + ("" if required is None else f" <= required {required:.3f}"),
        )
    for key, value in (
        ("data_version", dataset.digest),
        ("git_commit", git_commit()),
        ("holdout_mae", f"{metrics['mae']:.4f}"),
    ):
        client.set_model_version_tag(settings.model_name, version, key, value)


def _ensure_experiment(client: MlflowClient, settings: TrainingSettings) -> None:
    """Use the experiment, creating it with artifacts beside an embedded SQLite store (instead
    of MLflow's default `./mlruns` in whatever directory the command ran from)."""
    if client.get_experiment_by_name(settings.experiment) is None:
        location = None
        if settings.tracking_uri.startswith("sqlite:///"):
            db = Path(settings.tracking_uri.removeprefix("sqlite:///")).resolve()
            location = (db.parent / "artifacts").as_uri()
        client.create_experiment(settings.experiment, artifact_location=location)
    mlflow.set_experiment(settings.experiment)


def _require_champion(client: MlflowClient, name: str) -> None:
    try:
        client.get_model_version_by_alias(name, "champion")
    except MlflowException as exc:
        raise RegistrationError(
            f"register_as='challenger' needs a champion to challenge, and {name} has none: "
            "train one first with register_as='auto'"
        ) from exc


def _champion(
    client: MlflowClient, name: str, x: pd.DataFrame, y: pd.Series
) -> tuple[str | None, float | None]:
    try:
        champ = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None, None
    model = mlflow.sklearn.load_model(f"models:/{name}@champion")
    return str(champ.version), scores(y, model.predict(x))["mae"]


def _latest_version(client: MlflowClient, name: str) -> Any:
    try:
        versions = client.search_model_versions(
            f"name = '{name}'", max_results=1, order_by=["version_number DESC"]
        )
    except MlflowException:
        return None
    return versions[0] if versions else None


def result_json(result: TrainResult) -> str:
    return json.dumps(asdict(result), indent=2, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from apps.training.data import NoDataError

    parser = argparse.ArgumentParser(prog="python -m apps.training")
    parser.add_argument("--lake", default=os.environ.get("DEX_LAKE_URL"))
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--skip-if-unchanged", action="store_true")
    parser.add_argument(
        "--register-as",
        choices=("auto", "challenger"),
        help="challenger: register as the challenger whatever the holdout MAE",
    )
    parser.add_argument("--max-iter", type=int, help="override the boosting iterations")
    parser.add_argument("--learning-rate", type=float, help="override the learning rate")
    opts = parser.parse_args(argv)
    if not opts.lake:
        parser.error("--lake (or DEX_LAKE_URL) is required")
    kwargs: dict[str, Any] = {"lake_url": opts.lake}
    if opts.tracking_uri:
        kwargs["MLFLOW_TRACKING_URI"] = opts.tracking_uri
    for key in ("register_as", "max_iter", "learning_rate"):
        if getattr(opts, key) is not None:
            kwargs[key] = getattr(opts, key)
    try:
        result = train(TrainingSettings(**kwargs), opts.skip_if_unchanged)
    except (NoDataError, RegistrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result_json(result))
    problem = push_metrics(result)
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def render_metrics(result: TrainResult) -> bytes:
    """The run's holdout figures as Prometheus gauges (the model dashboard's MAE panel)."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    figures = result.metrics
    gauges = {
        "dex_training_mae": ("Holdout MAE of the latest trained model", figures.get("mae")),
        "dex_training_rmse": ("Holdout RMSE of the latest trained model", figures.get("rmse")),
        "dex_training_baseline_mae": (
            "Holdout MAE of the persistence baseline",
            figures.get("baseline_mae"),
        ),
    }
    for name, (doc, value) in gauges.items():
        if value is not None:
            Gauge(name, doc, registry=registry).set(float(value))
    promoted = Gauge(
        "dex_training_promoted", "1 when the latest model became champion", registry=registry
    )
    promoted.set(1.0 if result.alias == "champion" else 0.0)
    return generate_latest(registry)


def push_metrics(result: TrainResult) -> str | None:
    from apps.shared.metrics import push

    return push(render_metrics(result), "dex-training")


if __name__ == "__main__":
    raise SystemExit(main())
