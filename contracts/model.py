"""The registered model the training job writes and the API and model-ops job serve."""

from __future__ import annotations

MODEL_NAME = "weather-next-day-tmax"
"""The model's name in the MLflow registry (and the training experiment's)."""
