"""`rollback`: `champion` back to the previous champion (or to a named version), recorded in
MLflow with who, when and why (see `apps.training.ops`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apps.training.model_ops.common import CHALLENGER, CHAMPION, RollbackError, now
from apps.training.model_ops.registry import (
    ABSENT,
    actor,
    alias_version,
    champion_history,
    compact,
    record_champion_change,
    registry_client,
)
from apps.training.settings import ModelOpsSettings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def previous_champion(client: MlflowClient, name: str, current: str) -> str | None:
    """The champion before `current`: its `dex.previous_champion` tag, else the history's
    newest entry that made it champion."""
    tags = client.get_model_version(name, current).tags
    if tags.get("dex.previous_champion"):
        return str(tags["dex.previous_champion"])
    for entry in reversed(champion_history(client, name)):
        if str(entry.get("version")) == current and entry.get("kind") != "rollback":
            previous = entry.get("previous")
            return None if previous is None else str(previous)
    return None


def _require_version(client: MlflowClient, name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    if not version.isdigit():
        raise RollbackError(f"--to must be a version number of {name}, got {version!r}")
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in ABSENT:
            raise RollbackError(f"{name} has no version {version}") from exc
        raise


def rollback(
    settings: ModelOpsSettings,
    *,
    to: str | None = None,
    reason: str = "",
    by: str | None = None,
) -> dict[str, Any]:
    """Point `champion` back at the previous champion (or at version `to`), and record who,
    when and why on both versions and in the champion history."""
    client = registry_client(settings)
    name = settings.model_name
    by = by or actor()
    reason = reason.strip() or "not given"
    current = alias_version(client, name, CHAMPION)
    target = _target(client, name, current, to)
    _require_version(client, name, target)
    if target == current:
        raise RollbackError(f"{name} v{target} is already the champion")
    at = now().isoformat(timespec="seconds")
    client.set_registered_model_alias(name, CHAMPION, target)
    challenger = alias_version(client, name, CHALLENGER)
    if challenger == target:
        client.delete_registered_model_alias(name, CHALLENGER)
    _tag_versions(
        client, name, current, target, explicit=to is not None, at=at, by=by, reason=reason
    )
    entry = record_champion_change(
        client,
        name,
        version=target,
        previous=current,
        kind="rollback",
        by=by,
        reason=reason,
        at=at,
        limit=settings.history_limit,
    )
    result = {"model_name": name, "from": current, "to": target, "at": at, "by": by}
    result["reason"] = entry["reason"]
    client.set_registered_model_tag(name, "dex.last_rollback", compact(result))
    return result


def _target(client: MlflowClient, name: str, current: str | None, to: str | None) -> str:
    """The version to make champion: `to`, else the current champion's previous one."""
    if to is not None:
        return str(to).strip()
    if current is None:
        raise RollbackError(f"{name} has no champion: there is nothing to roll back")
    target = previous_champion(client, name, current)
    if target is None:
        raise RollbackError(
            f"nothing to roll back to: {name} v{current} has no previous champion "
            "recorded; name a version with --to VERSION"
        )
    return target


def _tag_versions(
    client: MlflowClient,
    name: str,
    current: str | None,
    target: str,
    *,
    explicit: bool,
    at: str,
    by: str,
    reason: str,
) -> None:
    """The rollback on the new champion's version (and, for an explicit `--to`, the champion
    it replaced), and on the replaced champion's version as its decision."""
    for key, value in {
        "dex.rollback.from": current or "",
        "dex.rollback.at": at,
        "dex.rollback.by": by,
        "dex.rollback.reason": reason[:500],
    }.items():
        client.set_model_version_tag(name, target, key, value)
    if explicit and current is not None:
        # an explicit move is undone by the next plain rollback
        client.set_model_version_tag(name, target, "dex.previous_champion", current)
    if current is not None:
        for key, value in {
            "dex.decision": "rolled_back",
            "dex.decision.at": at,
            "dex.decision.by": by,
            "dex.decision.reason": reason[:500],
        }.items():
            client.set_model_version_tag(name, current, key, value)
