"""The served model: read from the registry alias, kept on local disk, swapped in the
background when the alias moves.

At start the store asks MLflow which version the alias points to, downloads it into the cache
directory (once per version) and loads it. If MLflow cannot be reached, the last version the
cache holds is served instead, so a restart still serves. A refresher thread re-reads the
alias every `refresh_seconds` and swaps a new version in with one reference assignment:
a request holds the model it started with, so no request fails during a swap.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from apps.api.forest import CompiledForest
from apps.pipelines.schema import FEATURE_COLUMNS

log = logging.getLogger("dex.api.model")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    alias: str
    run_id: str
    metrics: dict[str, float]
    loaded_at: str
    model: Any
    reference: dict[str, Any] = field(default_factory=dict)
    _categories: list[str] = field(default_factory=list)
    _gbm: Any = None

    @classmethod
    def wrap(cls, model: Any, **kw: Any) -> LoadedModel:
        """Find the fitted one-hot categories and the booster for a numpy fast path, and
        compile the booster when the compiled form provably gives the same predictions."""
        categories: list[str] = []
        gbm = None
        try:
            encoder = model.named_steps["encode"].named_transformers_["location"]
            categories = [str(c) for c in encoder.categories_[0]]
            booster = model.named_steps["gbm"]
            gbm = booster
            compiled = CompiledForest(booster)
            probe = np.random.default_rng(0).normal(0, 20, (256, booster.n_features_in_))
            probe[:, : len(categories)] = probe[:, : len(categories)] > 0
            probe[np.random.default_rng(1).random(probe.shape) < 0.1] = np.nan
            if compiled.matches(booster, probe):
                gbm = compiled
            else:
                log.warning("compiled forest disagrees with scikit-learn: using scikit-learn")
        except (AttributeError, KeyError, IndexError, ValueError):
            pass
        return cls(model=model, _categories=categories, _gbm=gbm, **kw)

    def predict(self, rows: list[dict[str, Any]]) -> list[float]:
        if self._gbm is not None:
            n_loc = len(self._categories)
            x = np.zeros((len(rows), n_loc + len(FEATURE_COLUMNS)), dtype=float)
            index = {c: i for i, c in enumerate(self._categories)}
            for r, row in enumerate(rows):
                j = index.get(str(row["location"]))
                if j is not None:
                    x[r, j] = 1.0
                for k, col in enumerate(FEATURE_COLUMNS):
                    v = row.get(col)
                    x[r, n_loc + k] = np.nan if v is None else v
            return [float(v) for v in self._gbm.predict(x)]
        frame = pd.DataFrame(rows, columns=["location", *FEATURE_COLUMNS])
        return [float(v) for v in self.model.predict(frame)]

    @property
    def locations(self) -> tuple[str, ...]:
        """The locations the model was trained on (empty when it does not say)."""
        return tuple(self._categories)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "metrics": self.metrics,
            "loaded_at": self.loaded_at,
        }


_NOT_REGISTERED = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
"""MLflow's error codes for a registered model, or an alias, that does not exist."""


def _not_registered(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) in _NOT_REGISTERED


class ModelStore:
    def __init__(
        self,
        tracking_uri: str,
        name: str,
        alias: str,
        cache_dir: str,
        refresh_seconds: float = 30.0,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.name = name
        self.alias = alias
        self.cache = Path(cache_dir) / name
        self.refresh_seconds = refresh_seconds
        self.current: LoadedModel | None = None
        self.registry_ok = False
        self.last_error: str | None = None
        self.absent = False
        """The registry answered that the model or its alias does not exist (yet): day 0,
        before the first training."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swaps = 0
        # MLflow's client retries a dead server for minutes by default; a server that must
        # start from its cache, and a refresher that must notice an outage, cannot wait that.
        for key, value in (
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"),
            ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
            ("MLFLOW_HTTP_REQUEST_TIMEOUT", "5"),
        ):
            os.environ.setdefault(key, value)

    # -- loading ---------------------------------------------------------------------------------
    def _client(self) -> Any:
        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(self.tracking_uri)
        return MlflowClient(tracking_uri=self.tracking_uri)

    def resolve(self) -> tuple[str, str]:
        """(version, run id) the alias points to now; raises when the registry is unreachable."""
        mv = self._client().get_model_version_by_alias(self.name, self.alias)
        return str(mv.version), str(mv.run_id)

    def _download(self, version: str, run_id: str) -> Path:
        import mlflow

        target = self.cache / version
        if (target / "dex-meta.json").exists():
            return target
        staging = self.cache / f".{version}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{self.name}/{version}", dst_path=str(staging / "model")
        )
        client = self._client()
        metrics = dict(client.get_run(run_id).data.metrics)
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"runs:/{run_id}/reference.json", dst_path=str(staging)
            )
        except Exception:
            log.warning(
                "model %s v%s has no reference.json: drift cannot be measured", self.name, version
            )
        (staging / "dex-meta.json").write_text(
            json.dumps({"version": version, "run_id": run_id, "metrics": metrics})
        )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # a half-downloaded version is never mistaken for a whole one
        return target

    def _load_dir(self, path: Path, alias: str) -> LoadedModel:
        import mlflow.sklearn

        meta = json.loads((path / "dex-meta.json").read_text())
        model = mlflow.sklearn.load_model(str(path / "model"))
        ref_file = path / "reference.json"
        reference = json.loads(ref_file.read_text()) if ref_file.exists() else {}
        return LoadedModel.wrap(
            model,
            name=self.name,
            version=str(meta["version"]),
            alias=alias,
            run_id=meta["run_id"],
            metrics=meta["metrics"],
            loaded_at=dt.datetime.now(dt.UTC).isoformat(),
            reference=reference,
        )

    @property
    def serving(self) -> bool:
        """Serving what the registry says is current: a model, or (day 0) knowingly none."""
        return self.current is not None or (self.registry_ok and self.absent)

    def _registry_failed(self, exc: Exception) -> None:
        if _not_registered(exc):
            self.registry_ok, self.absent, self.last_error = True, True, None
            log.info("no %s@%s in the registry yet: predictions answer 503", self.name, self.alias)
        else:
            self.registry_ok, self.last_error = False, f"{type(exc).__name__}: {exc}"[:300]

    def load(self) -> LoadedModel | None:
        """At start: the registry's version, else the cached one, else nothing."""
        loaded: LoadedModel | None
        try:
            version, run_id = self.resolve()
            loaded = self._load_dir(self._download(version, run_id), self.alias)
            self.registry_ok, self.absent, self.last_error = True, False, None
            (self.cache / "current.json").write_text(json.dumps({"version": version}))
        except Exception as exc:
            self._registry_failed(exc)
            if not self.absent:
                log.warning("registry unavailable (%s); trying the local cache", self.last_error)
            loaded = self._load_cached()
        if loaded is not None:
            self.current = loaded
        return loaded

    def _load_cached(self) -> LoadedModel | None:
        pointer = self.cache / "current.json"
        if not pointer.exists():
            return None
        version = json.loads(pointer.read_text())["version"]
        path = self.cache / str(version)
        if not (path / "dex-meta.json").exists():
            return None
        return self._load_dir(path, f"{self.alias} (cached)")

    def refresh(self) -> bool:
        """Swap in the alias's version if it moved; True when a swap happened."""
        try:
            version, run_id = self.resolve()
            self.registry_ok, self.absent, self.last_error = True, False, None
        except Exception as exc:
            self._registry_failed(exc)
            return False
        if self.current is not None and self.current.version == version:
            if self.current.alias != self.alias:
                # served from the local cache while the registry was away: the registry
                # confirms it now, so it is the alias's version again, not "(cached)"
                self.current = dataclasses.replace(self.current, alias=self.alias)
            return False
        loaded = self._load_dir(self._download(version, run_id), self.alias)
        self.current = loaded  # one assignment: in-flight requests keep the model they hold
        (self.cache / "current.json").write_text(json.dumps({"version": version}))
        self.swaps += 1
        log.info("serving %s v%s (alias %s)", self.name, version, self.alias)
        return True

    # -- background ------------------------------------------------------------------------------
    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.refresh_seconds):
                try:
                    self.refresh()
                except Exception:
                    log.exception("model refresh failed; still serving the current model")

        self._thread = threading.Thread(target=loop, name="dex-model-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
