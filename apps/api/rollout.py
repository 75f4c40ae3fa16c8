"""Champion and challenger online: which model answers a caller, and the shadow scorer.

The registry holds two aliases: `champion` (what everyone gets) and, after a training run that
did not beat it, `challenger`. With `DEX_API_ROLLOUT`:

- `off`: the champion answers every request;
- `shadow`: the champion answers; the challenger scores the same rows (all, or a sampled
  `shadow_share`) on a background thread, off the response path, and both predictions are
  logged with their versions and roles (the challenger's as `served: false`);
- `canary`: a `canary_share` of callers is answered by the challenger. The split is by the
  token's subject, hashed: a caller keeps the model it got (sticky), and the share is of
  callers, so about that share of traffic when callers are alike.

Every model call is counted, timed and its predictions' distribution recorded per version
and role (`dex_api_model_*`), the figures the champion-vs-challenger dashboard compares.
The challenger is only ever the registry's: when the alias is deleted (retired, or promoted
to champion) it stops answering within one refresh.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from apps.api.model_store import LoadedModel, ModelStore
from apps.api.observability import Metrics, observe_many
from apps.api.predlog import PredictionLog, entry

log = logging.getLogger("dex.api.rollout")

SHADOW_QUEUE = 256
"""Shadow batches waiting for the challenger; beyond it a batch is dropped and counted, so a
slow challenger never grows memory or slows the champion's answers."""


def bucket(subject: str) -> float:
    """A caller's fixed place in [0, 1): the first 8 bytes of SHA-256 of its subject."""
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class ChallengerStore(ModelStore):
    """The challenger alias's model, only while the registry confirms it: a deleted alias
    (retired or promoted) drops it, and a copy cached from an earlier run is never served
    as the challenger."""

    def load(self) -> LoadedModel | None:
        loaded = super().load()
        if self.absent or (loaded is not None and loaded.alias != self.alias):
            self.current = None
            return None
        return loaded

    def refresh(self) -> bool:
        swapped = super().refresh()
        if self.absent and self.current is not None:
            log.info("the %s alias is gone: the challenger no longer answers", self.alias)
            self.current = None
            return True
        return swapped


_Shadowed = tuple[LoadedModel, Sequence[dict[str, Any]], dict[str, Any]]
"""A shadow batch: the challenger, the rows already answered, the log fields."""


@dataclass(frozen=True)
class Choice:
    model: LoadedModel
    role: str
    shadow: LoadedModel | None = None


class Rollout:
    def __init__(
        self,
        mode: str,
        champion: ModelStore,
        challenger: ModelStore | None,
        metrics: Metrics,
        predlog: PredictionLog,
        canary_share: float = 0.0,
        shadow_share: float = 1.0,
    ) -> None:
        self.mode = mode
        self.champion = champion
        self.challenger = challenger if mode != "off" else None
        self.metrics = metrics
        self.predlog = predlog
        self.canary_share = canary_share
        self.shadow_share = shadow_share
        self._queue: queue.Queue[
            tuple[LoadedModel, Sequence[dict[str, Any]], dict[str, Any]] | None
        ]
        self._queue = queue.Queue(maxsize=SHADOW_QUEUE)
        self._thread: threading.Thread | None = None
        self._random = random.Random()  # noqa: S311 - sampling, not security

    # -- choosing --------------------------------------------------------------------------------
    def pick(self, subject: str, champion: LoadedModel) -> Choice:
        """Who answers this caller, and who shadows it."""
        challenger = self.challenger.current if self.challenger is not None else None
        if challenger is None or challenger.version == champion.version:
            return Choice(champion, "champion")
        if self.mode == "canary" and bucket(subject) < self.canary_share:
            return Choice(challenger, "challenger")
        if self.mode == "shadow" and self._random.random() < self.shadow_share:
            return Choice(champion, "champion", shadow=challenger)
        return Choice(champion, "champion")

    # -- scoring ---------------------------------------------------------------------------------
    def score(self, model: LoadedModel, role: str, rows: Sequence[dict[str, Any]]) -> list[float]:
        """The model's predictions for these rows, counted, timed and recorded per version
        and role."""
        started = time.perf_counter()
        try:
            values = model.predict(rows)
        except Exception:
            self.metrics.model_requests.labels(model.version, role, "error").inc()
            raise
        self.metrics.model_latency.labels(model.version, role).observe(
            time.perf_counter() - started
        )
        self.metrics.model_requests.labels(model.version, role, "ok").inc()
        observe_many(self.metrics.prediction_value.labels(model.version, role), values)
        return values

    # -- after the answer ------------------------------------------------------------------------
    def answered(
        self,
        choice: Choice,
        rows: Sequence[dict[str, Any]],
        values: Sequence[float],
        **caller: str,
    ) -> None:
        """The bookkeeping of a request `choice.model` answered: its predictions counted, the
        call logged, and the same rows queued for the shadow, if one was chosen. `caller`: the
        log fields `request_id`, `client` and `route`."""
        self.metrics.predictions.labels(choice.model.version).inc(len(values))
        self.log(choice.model, choice.role, rows, values, served=True, **caller)
        if choice.shadow is not None:
            self.shadow(choice.shadow, rows, **caller)

    def log(
        self,
        model: LoadedModel,
        role: str,
        rows: Sequence[dict[str, Any]],
        values: Sequence[float],
        *,
        served: bool,
        **caller: Any,
    ) -> None:
        """The prediction log's line of one model call, answered or shadow: the one place a
        line is made (no lake: none is, not even built)."""
        if self.predlog.enabled:
            self.predlog.add(
                entry(
                    **caller,
                    model_name=model.name,
                    model_version=model.version,
                    role=role,
                    served=served,
                    inputs=rows,
                    outputs=values,
                )
            )

    def shadow(self, model: LoadedModel, rows: Sequence[dict[str, Any]], **log_fields: Any) -> None:
        """Queue the challenger's scoring of rows already answered; never blocks."""
        try:
            self._queue.put_nowait((model, rows, log_fields))
        except queue.Full:
            self.metrics.shadow_dropped.inc()

    def _shadow_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            model, rows, fields = item
            try:
                values = self.score(model, "challenger", rows)
            except Exception:
                log.exception("the challenger %s failed to score a shadow batch", model.version)
                continue
            self.log(model, "challenger", rows, values, served=False, **fields)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.challenger is None:
            return
        self.challenger.start()
        self._thread = threading.Thread(target=self._shadow_loop, name="dex-shadow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Score what is queued (so every shadow score of an answered request is logged),
        then stop."""
        if self.challenger is not None:
            self.challenger.stop()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)

    def describe(self) -> dict[str, Any]:
        challenger = self.challenger.current if self.challenger is not None else None
        return {
            "mode": self.mode,
            "canary_share": self.canary_share if self.mode == "canary" else None,
            "shadow_share": self.shadow_share if self.mode == "shadow" else None,
            "challenger": challenger.describe() if challenger is not None else None,
        }
