"""`score`: the next day for every location from its latest gold features, with the champion
and the challenger, written to gold and to the prediction log (see `apps.training.ops`)."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from apps.shared.lake import Lake
from apps.shared.schema import FEATURE_COLUMNS
from apps.training.model_ops.common import CHALLENGER, CHAMPION, OpsError, now, ops_lake
from apps.training.model_ops.models import load_alias, model_cache
from apps.training.settings import ModelOpsSettings

if TYPE_CHECKING:
    from apps.api.model_store import LoadedModel


BATCH_CLIENT = "dex-batch"
"""The prediction log's `client` of the batch scorer."""


PREDICTIONS = pa.schema(
    [
        ("location", pa.string()),
        ("for_date", pa.date32()),
        ("based_on", pa.date32()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("role", pa.string()),
        ("temp_max_c", pa.float64()),
    ]
)
"""A batch prediction: the day predicted, the features' day, the model and its role."""


def latest_features(lake: Lake) -> list[dict[str, Any]]:
    """Per location, its newest gold features row, as the API's forecast route reads it
    (location, date and the model's inputs)."""
    rels = lake.glob("gold/weather/features/location=*/part-0.parquet")
    rows = []
    for table in lake.read_parquet_many(rels):
        if not table.num_rows:
            continue
        dates = table["date"].to_pylist()
        newest = max(range(len(dates)), key=lambda i: dates[i])
        row = table.slice(newest, 1).to_pylist()[0]
        rows.append({k: row[k] for k in ("location", "date", *FEATURE_COLUMNS)})
    return sorted(rows, key=lambda r: str(r["location"]))


def score(settings: ModelOpsSettings, today: dt.date | None = None) -> dict[str, Any]:
    """Predict the next day for every location with the champion (and the challenger);
    write the predictions to gold and to the prediction log."""
    lake = ops_lake(settings)
    today = today or now().date()
    rows = latest_features(lake)
    if not rows:
        raise OpsError(f"no gold features under {lake.uri('gold', 'weather', 'features')}")
    models = _models(settings)
    champion = models[0][0]
    by_day: dict[dt.date, list[dict[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(row["date"] + dt.timedelta(days=1), []).append(row)
    predictions, logged = _predict(models, by_day)
    _write_predictions(lake, predictions)
    for day, new in sorted(logged.items()):
        _write_batch_log(lake, today, day, new)
    return {
        "champion": champion.version,
        "challenger": models[1][0].version if len(models) > 1 else None,
        "locations": [r["location"] for r in rows],
        "for_dates": [str(d) for d in sorted(predictions)],
        "predictions": [
            {**p, "for_date": str(p["for_date"]), "based_on": str(p["based_on"])}
            for day in sorted(predictions)
            for p in predictions[day]
        ],
    }


def _models(settings: ModelOpsSettings) -> list[tuple[LoadedModel, str, bool]]:
    """The models to score with, each with its role and whether its score is served: the
    champion, and the challenger unless there is none or it is the champion."""
    with model_cache(settings) as cache:
        champion = load_alias(settings, CHAMPION, cache)
        if champion is None:
            raise OpsError(f"{settings.model_name} has no champion to score with")
        challenger = load_alias(settings, CHALLENGER, cache)
    models: list[tuple[LoadedModel, str, bool]] = [(champion, CHAMPION, True)]
    if challenger is not None and challenger.version != champion.version:
        models.append((challenger, CHALLENGER, False))  # a shadow score: nobody receives it
    return models


Rows = dict[dt.date, list[dict[str, Any]]]
"""Rows by the day they predict."""


def _predict(models: list[tuple[LoadedModel, str, bool]], by_day: Rows) -> tuple[Rows, Rows]:
    """Each model's predictions of each day's rows, and the prediction-log records of them,
    by predicted day."""
    from apps.api.predlog import records

    predictions: Rows = {}
    logged: Rows = {}
    for model, role, served in models:
        for day, group in by_day.items():
            # one row per call, as the forecast route predicts: the compiled forest's sums
            # run in another order for a batch, which can change the last bit
            values = [model.predict([row])[0] for row in group]
            for row, value in zip(group, values, strict=True):
                predictions.setdefault(day, []).append(
                    {
                        "location": row["location"],
                        "for_date": day,
                        "based_on": row["date"],
                        "model_name": model.name,
                        "model_version": model.version,
                        "role": role,
                        "temp_max_c": value,
                    }
                )
            logged.setdefault(day, []).extend(
                records(
                    request_id=f"batch-{day}",
                    client=BATCH_CLIENT,
                    route="batch",
                    model_name=model.name,
                    model_version=model.version,
                    role=role,
                    served=served,
                    inputs=group,
                    outputs=values,
                )
            )
    return predictions, logged


def _write_predictions(lake: Lake, predictions: Rows) -> None:
    """One partition per predicted day; a model's rows for a location replace its earlier
    ones, other models' rows are kept."""
    writes = []
    for day, fresh in sorted(predictions.items()):
        rel = ("gold", "weather", "predictions", f"for_date={day}", "part-0.parquet")
        scored = {(r["model_name"], r["location"]) for r in fresh}
        old = lake.read_parquet(*rel).to_pylist() if lake.exists(*rel) else []
        merged = [r for r in old if (r["model_name"], r["location"]) not in scored] + fresh
        merged.sort(key=lambda r: (r["model_name"], r["location"], r["role"]))
        writes.append((pa.Table.from_pylist(merged, schema=PREDICTIONS), rel))
    lake.write_parquet_many(writes)


def _write_batch_log(lake: Lake, today: dt.date, day: dt.date, new: list[dict[str, Any]]) -> None:
    """The batch's records for one predicted day, in one log object per day written: a
    re-run the same day replaces its own records (by model, location, version and role)."""
    parts = ("raw", "predictions", f"date={today}", f"batch-{day}.jsonl")

    def key(r: dict[str, Any]) -> tuple[str, ...]:
        where = str(r["inputs"].get("location"))
        return (str(r["model_name"]), where, str(r["model_version"]), str(r["role"]))

    old = []
    if lake.exists(*parts):
        old = [json.loads(x) for x in lake.read_bytes(*parts).decode().splitlines() if x.strip()]
    replaced = {key(r) for r in new}
    merged = [r for r in old if key(r) not in replaced] + new
    body = "".join(json.dumps(r, default=str, sort_keys=True) + "\n" for r in merged)
    lake.write_bytes(body.encode(), *parts)
