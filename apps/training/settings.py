"""Training and model-operations settings, from the environment (DEX_*) or arguments."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.model import MODEL_NAME


class TrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEX_", extra="ignore")

    lake_url: str = Field(description="The lake holding gold/weather/features.")
    tracking_uri: str = Field(
        "sqlite:///mlflow.db",
        alias="MLFLOW_TRACKING_URI",
        description="Where MLflow tracks runs and registers models.",
    )
    experiment: str = MODEL_NAME
    model_name: str = MODEL_NAME
    holdout_days: int = Field(60, ge=7, description="The most recent days held out for evaluation.")
    promotion_margin: float = Field(
        0.02, ge=0, lt=1, description="Required relative MAE improvement over the champion."
    )
    random_seed: int = 42
    register_as: Literal["auto", "challenger"] = Field(
        "auto",
        description="`auto` (default): the new version becomes `champion` when its holdout MAE "
        "beats the champion's by the margin, else `challenger`. `challenger`: it becomes the "
        "challenger whatever its holdout MAE (to try a model online); needs a champion.",
    )
    max_iter: int | None = Field(
        None,
        ge=1,
        description="Boosting iterations; defaults to the tuned value (300). A small value "
        "gives a deliberately weak model (canary drills, tests).",
    )
    learning_rate: float | None = Field(
        None, gt=0, le=1, description="Boosting learning rate; defaults to the tuned value (0.05)."
    )


class ModelOpsSettings(BaseSettings):
    """The daily model operations (`python -m apps.training.ops`): feedback, decision, batch
    scoring, drift. Every field reads `DEX_<FIELD>` (the tracking URI `MLFLOW_TRACKING_URI`)."""

    model_config = SettingsConfigDict(env_prefix="DEX_", extra="ignore", populate_by_name=True)

    lake_url: str | None = Field(
        None,
        description="The lake: gold features, the prediction log (raw/predictions), and where "
        "feedback, predictions, decisions and metrics are written. Every step but `rollback` "
        "needs it.",
    )
    tracking_uri: str = Field(
        "sqlite:///mlflow.db",
        alias="MLFLOW_TRACKING_URI",
        description="The MLflow registry holding the model and its aliases.",
    )
    model_name: str = Field(MODEL_NAME, description="The registered model.")
    decision_window_days: int = Field(
        14,
        ge=1,
        description="Days of feedback (by the predicted day) the online MAE and the decision "
        "look at, ending at `as_of`.",
    )
    as_of: dt.date | None = Field(
        None,
        description="The last predicted day the window covers. Defaults to the newest day whose "
        "actual has arrived in the feedback, so live data and a replay of old data behave alike.",
    )
    decision_min_pairs: int = Field(
        30,
        ge=6,
        description="Paired samples (the same request and location scored by both models, in "
        "shadow or batch) needed for the Wilcoxon signed-rank test; with fewer, the "
        "Mann-Whitney U test on the two samples is used.",
    )
    decision_min_samples: int = Field(
        30,
        ge=3,
        description="Samples per model needed for the Mann-Whitney U test; with fewer the "
        "decision waits.",
    )
    decision_alpha: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="One-sided significance level: the challenger is promoted when its errors "
        "are smaller at this level, retired when they are larger.",
    )
    log_lookback_days: int = Field(
        35,
        ge=1,
        description="Days of prediction log (by the day it was written) the feedback step "
        "re-reads each run; older feedback rows are kept as they are.",
    )
    drift_days: int = Field(7, ge=1, description="Days of prediction log the drift step reads.")
    drift_threshold: float = Field(
        0.25,
        gt=0,
        description="Largest feature PSI above which the drift step retrains the model.",
    )
    drift_min_rows: int = Field(
        50, ge=1, description="Logged inputs needed before drift is judged (PSI is noisy below)."
    )
    retrain_when_unchanged: bool = Field(
        False,
        description="Retrain on drift even when gold has not changed since the latest version "
        "(which, with the same seed, gives the same model); off by default.",
    )
    history_limit: int = Field(
        20, ge=2, le=50, description="Champion changes kept in the registered model's history tag."
    )
    model_cache_dir: str | None = Field(
        None,
        description="Where models are downloaded for scoring and drift; defaults to a temporary "
        "folder removed after the run.",
    )
