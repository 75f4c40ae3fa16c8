"""Training settings, from the environment (DEX_*) or arguments."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEX_", extra="ignore")

    lake_url: str = Field(description="The lake holding gold/weather/features.")
    tracking_uri: str = Field(
        "sqlite:///mlflow.db",
        alias="MLFLOW_TRACKING_URI",
        description="Where MLflow tracks runs and registers models.",
    )
    experiment: str = "weather-next-day-tmax"
    model_name: str = "weather-next-day-tmax"
    holdout_days: int = Field(60, ge=7, description="The most recent days held out for evaluation.")
    promotion_margin: float = Field(
        0.02, ge=0, lt=1, description="Required relative MAE improvement over the champion."
    )
    random_seed: int = 42
