"""What the model operations share: their errors, the two roles, the clock, the lake and the
dates in partition paths."""

from __future__ import annotations

import datetime as dt
import logging

from apps.shared.lake import Lake, open_lake
from apps.training.settings import ModelOpsSettings

log = logging.getLogger("dex.training.ops")


CHAMPION, CHALLENGER = "champion", "challenger"


class OpsError(Exception):
    """A step that cannot do its work (no champion, no features, registry unreachable)."""


class RollbackError(OpsError):
    """A rollback refused: nothing to roll back to, or a version that does not exist."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ops_lake(settings: ModelOpsSettings) -> Lake:
    if not settings.lake_url:
        raise OpsError("the lake is not set: pass --lake or set DEX_LAKE_URL")
    return open_lake(settings.lake_url)


def day_of(rel: str, key: str) -> dt.date | None:
    """The date of a `key=YYYY-MM-DD` path segment."""
    for part in rel.split("/"):
        if part.startswith(f"{key}="):
            try:
                return dt.date.fromisoformat(part.removeprefix(f"{key}="))
            except ValueError:
                return None
    return None
