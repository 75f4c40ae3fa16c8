"""`drift`: PSI of the recently logged inputs against the champion's training reference; above
the threshold the model is retrained (see `apps.training.ops`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from apps.shared.metrics import push
from apps.training.model_ops.common import CHAMPION, OpsError, now, ops_lake
from apps.training.model_ops.models import load_alias, model_cache
from apps.training.settings import ModelOpsSettings


def drift(settings: ModelOpsSettings, today: dt.date | None = None) -> dict[str, Any]:
    """PSI of recent inputs against the champion's reference; retrain above the threshold."""
    from apps.api.drift import measure, recent_inputs, render

    lake = ops_lake(settings)
    with model_cache(settings) as cache:
        champion = load_alias(settings, CHAMPION, cache)
    if champion is None:
        raise OpsError(f"{settings.model_name} has no champion to compare inputs with")
    if not champion.reference:
        raise OpsError(
            f"{settings.model_name} v{champion.version} has no reference.json: drift cannot be "
            "measured (retrain it with the current training code)"
        )
    result = measure(champion.reference, recent_inputs(lake, settings.drift_days, today))
    body = render(result, champion.version)
    lake.write_bytes(body, "_metrics", "drift.prom")
    report: dict[str, Any] = {
        "model_version": champion.version,
        "days": settings.drift_days,
        "threshold": settings.drift_threshold,
        **result,
        "retrained": False,
        "metrics_push": push(body, "dex-model-drift") or "ok",
    }
    if result["rows"] < settings.drift_min_rows:
        report["status"] = f"too few inputs ({result['rows']} < {settings.drift_min_rows})"
    elif result["max_psi"] <= settings.drift_threshold:
        report["status"] = "no drift"
    else:
        report["status"] = "drift: retraining"
        report["training"] = _retrain(settings)
        report["retrained"] = not report["training"]["skipped"]
        if not report["retrained"]:
            report["status"] = "drift, but gold is unchanged since the latest version: kept it"
    lake.write_json(report, "_runs", "model-drift", f"{now():%Y%m%dT%H%M%S%fZ}.json")
    return report


def _retrain(settings: ModelOpsSettings) -> dict[str, Any]:
    from apps.training.settings import TrainingSettings
    from apps.training.train import train

    assert settings.lake_url is not None
    result = train(
        TrainingSettings(
            lake_url=settings.lake_url,
            MLFLOW_TRACKING_URI=settings.tracking_uri,
            model_name=settings.model_name,
        ),
        skip_if_unchanged=not settings.retrain_when_unchanged,
    )
    return {
        "run_id": result.run_id,
        "version": result.version,
        "alias": result.alias,
        "skipped": result.skipped,
        "mae": result.metrics.get("mae"),
    }
