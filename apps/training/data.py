"""Reading the gold features and splitting them by time."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import pandas as pd

from apps.shared.lake import open_lake
from apps.shared.schema import FEATURE_COLUMNS, TARGET


class NoDataError(Exception):
    """The lake has no features to train on."""


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame
    """One row per location and day, with the target; rows without a target dropped."""
    source: str
    """Where it was read from (the features URL)."""
    digest: str
    """A digest of the feature files: the data version."""


def load_features(lake_url: str) -> Dataset:
    lake = open_lake(lake_url)
    files = lake.glob("gold/weather/features/*/part-0.parquet")
    if not files:
        raise NoDataError(
            f"no gold features under {lake.uri('gold', 'weather', 'features')}: "
            "run the pipeline first"
        )
    sha = hashlib.sha256()
    frames = []
    for rel in files:
        data = lake.read_bytes(rel)
        sha.update(rel.encode() + b"\0" + data)
        frames.append(lake.read_parquet(rel).to_pandas())
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[frame[TARGET].notna()].sort_values(["date", "location"]).reset_index(drop=True)
    return Dataset(frame, lake.uri("gold", "weather", "features"), sha.hexdigest()[:16])


def time_split(
    frame: pd.DataFrame, holdout_days: int
) -> tuple[pd.DataFrame, pd.DataFrame, dt.date]:
    """Train on days before the cutoff, evaluate on the last `holdout_days` days. The target of
    a training row is the next day's value, so the day before the cutoff is dropped too: its
    target lies in the holdout (no leakage)."""
    last = frame["date"].max()
    cutoff = last - dt.timedelta(days=holdout_days - 1)
    train = frame[frame["date"] < cutoff - dt.timedelta(days=1)]
    holdout = frame[frame["date"] >= cutoff]
    if len(train) < 30 or len(holdout) < 7:
        raise NoDataError(
            f"not enough history: {len(train)} training and {len(holdout)} holdout "
            f"rows (holdout of {holdout_days} days)"
        )
    return train, holdout, cutoff


def xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return frame[["location", *FEATURE_COLUMNS]], frame[TARGET]
