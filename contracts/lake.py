"""The lake: its layers, how a process is told where each lives, and the paths the apps
share. The platform sets the variables (`components/k8s/platform.py`), `dex local up` sets
them locally, the apps read them (`apps/shared/lake.py`)."""

from __future__ import annotations

LAYERS = ("raw", "bronze", "silver", "gold")
"""The lake's layers; in the cloud each is its own bucket."""

LAKE_URL_ENV = "DEX_LAKE_URL"
"""The lake's root URL (a path, `s3://` or `gs://`), for layers without their own."""

S3_ENDPOINT_ENV = "DEX_S3_ENDPOINT_URL"
"""An S3-compatible endpoint (moto, MinIO) in place of AWS's."""


def layer_url_env(layer: str) -> str:
    """The variable that puts `layer` in its own bucket: `DEX_LAKE_<LAYER>_URL`."""
    if layer not in LAYERS:
        raise ValueError(f"unknown lake layer {layer!r}: expected one of {', '.join(LAYERS)}")
    return f"DEX_LAKE_{layer.upper()}_URL"


DATASET = "weather"
"""The one dataset the bundled pipeline writes, in every layer."""


def gold_features(location: str) -> tuple[str, ...]:
    """The model's features for one location, in gold: what training reads and the API looks
    a location's latest row up in."""
    return ("gold", DATASET, "features", f"location={location}", "part-0.parquet")
