"""The MLflow registry as the model operations use it: the `champion` and `challenger` aliases,
the champion history (a registered-model tag), and who is acting."""

from __future__ import annotations

import getpass
import json
import os
from typing import TYPE_CHECKING, Any

from apps.training.model_ops.common import log, now
from apps.training.settings import ModelOpsSettings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


HISTORY_TAG = "dex.champion_history"
"""Registered-model tag: the champion changes, oldest first, as a JSON list."""


TAG_VALUE_LIMIT = 5000
"""MLflow's longest tag value: the history drops its oldest entries to stay under it."""


def registry_client(settings: ModelOpsSettings) -> MlflowClient:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri)


ABSENT = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version `alias` points to, None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ABSENT:
            return None
        raise


def champion_history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """The registered model's champion changes, oldest first ([] when none are recorded)."""
    raw = client.get_registered_model(name).tags.get(HISTORY_TAG)
    try:
        history = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        log.warning("the %s tag of %s is not JSON: starting a new history", HISTORY_TAG, name)
        return []
    return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []


def bound_history(history: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The newest `limit` entries, fewer if their JSON would exceed MLflow's tag limit."""
    kept = history[-limit:]
    while len(kept) > 1 and len(compact(kept)) > TAG_VALUE_LIMIT:
        kept = kept[1:]
    return kept


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def record_champion_change(
    client: MlflowClient,
    name: str,
    *,
    version: str,
    previous: str | None,
    kind: str,
    by: str,
    reason: str,
    at: str | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """Append a champion change to the registered model's history and tag the new champion
    (`dex.champion_since`, and `dex.previous_champion` unless it is a rollback, which keeps
    the target's own previous champion so that rolling back again goes further back)."""
    entry = {
        "version": version,
        "previous": previous,
        "kind": kind,
        "at": at or now().isoformat(timespec="seconds"),
        "by": by,
        "reason": reason[:300],
    }
    history = bound_history([*champion_history(client, name), entry], limit)
    client.set_registered_model_tag(name, HISTORY_TAG, compact(history))
    client.set_model_version_tag(name, version, "dex.champion_since", entry["at"])
    if previous is not None and kind != "rollback":
        client.set_model_version_tag(name, version, "dex.previous_champion", previous)
    return entry


def actor() -> str:
    try:
        return os.environ.get("DEX_ACTOR") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (a container's numeric user)
        return f"uid-{os.getuid()}"
