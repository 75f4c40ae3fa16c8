"""The served model: read from the registry alias, kept on local disk, swapped in the
background when the alias moves.

At start the store asks MLflow which version the alias points to, downloads it into the cache
directory (once per version) and loads it. If MLflow cannot be reached, the last version the
cache holds is served instead, so a restart still serves. A refresher thread re-reads the
alias every `refresh_seconds` and swaps a new version in with one reference assignment:
a request holds the model it started with, so no request fails during a swap.

A circuit breaker (pybreaker) stands in front of the registry: every MLflow call times out
(MLFLOW_HTTP_REQUEST_TIMEOUT), and after `REGISTRY_FAILURES` failed calls in a row the breaker
opens: for `breaker_seconds` the refresher makes no registry call at all and the current model
keeps serving (/readyz says `registry` false). Then one refresh tries again (half-open); a
success closes the breaker, and a moved alias is swapped in as usual. The outage is logged when
the breaker opens (again after each failed retry, so once per interval) and when it closes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pybreaker

from apps.api.batch import Rows
from apps.api.forest import CompiledForest
from apps.shared.schema import FEATURE_COLUMNS

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
        compile the booster when the compiled form provably gives the same predictions. The
        fast path is kept only if it gives the whole pipeline's predictions on a probe."""
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
        loaded = cls(model=model, _categories=categories, _gbm=gbm, **kw)
        if gbm is not None and not loaded._fast_path_matches():
            log.warning("the model's columns are not the ones expected: using scikit-learn")
            loaded = dataclasses.replace(loaded, _gbm=None)
        return loaded

    def _fast_path_matches(self) -> bool:
        """The fast path's matrix (one-hot locations, then FEATURE_COLUMNS) is what the
        pipeline builds: same predictions on a probe of every location, NaNs included."""
        rng = np.random.default_rng(2)
        locations = [*self._categories, "not-a-location"] * 4
        matrix = rng.normal(0, 20, (len(locations), len(FEATURE_COLUMNS)))
        matrix[rng.random(matrix.shape) < 0.1] = np.nan
        try:
            expected = self.model.predict(self._frame(locations, matrix))
        except Exception:  # a pipeline that refuses the probe: no fast path to trust
            return False
        got = self.predict_columns(locations, matrix)
        return bool(np.allclose(got, expected, rtol=1e-9, atol=1e-9))

    def predict(self, rows: Sequence[dict[str, Any]]) -> list[float]:
        """Predictions for feature rows (dicts with `location` and FEATURE_COLUMNS; a missing
        or None feature is missing). A validated batch (`apps.api.batch.Rows`) is read from
        its columns, without touching a dict."""
        if isinstance(rows, Rows):
            locations = rows.columns["location"]
            matrix = rows.matrix(FEATURE_COLUMNS)
        else:
            locations = [str(row["location"]) for row in rows]
            matrix = np.array(
                [[row.get(c) for c in FEATURE_COLUMNS] for row in rows], dtype=np.float64
            ).reshape(len(rows), len(FEATURE_COLUMNS))  # None -> NaN
        return self.predict_columns(locations, matrix).tolist()  # type: ignore[no-any-return]

    def predict_columns(self, locations: Sequence[str], matrix: np.ndarray) -> np.ndarray:
        """Predictions for rows given as columns: each row's location, and its FEATURE_COLUMNS
        values as a (rows, features) matrix with NaN where a value is missing."""
        if self._gbm is None:
            return np.asarray(self.model.predict(self._frame(locations, matrix)), dtype=float)
        n_loc = len(self._categories)
        x = np.zeros((len(matrix), n_loc + matrix.shape[1]), dtype=np.float64)
        index = self._index
        codes = np.fromiter(
            (index.get(loc, -1) for loc in locations), dtype=np.intp, count=len(matrix)
        )
        known = np.flatnonzero(codes >= 0)  # an unknown location is no location, as one-hot
        x[known, codes[known]] = 1.0
        x[:, n_loc:] = matrix
        return np.asarray(self._gbm.predict(x), dtype=float)

    @staticmethod
    def _frame(locations: Sequence[str], matrix: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(matrix, columns=FEATURE_COLUMNS)
        frame.insert(0, "location", list(locations))
        return frame

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        """Location -> its one-hot column."""
        return {c: i for i, c in enumerate(self._categories)}

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


REGISTRY_FAILURES = 3
"""Failed registry calls in a row that open the breaker."""


class _RegistryAnnouncer(pybreaker.CircuitBreakerListener):
    """One log line per change of the breaker's state, with the failure that caused it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.cause = ""

    def failure(self, cb: Any, exc: BaseException) -> None:
        self.cause = f"{type(exc).__name__}: {exc}"[:300]

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        if new_state.name == pybreaker.STATE_OPEN:
            log.warning(
                "registry %s (%s): serving the current model without asking MLflow for %.0f s",
                "still failing" if old_state.name == pybreaker.STATE_HALF_OPEN else "failing",
                self.cause,
                self.seconds,
            )
        elif new_state.name == pybreaker.STATE_CLOSED and old_state.name != pybreaker.STATE_CLOSED:
            log.info("registry answers again: the alias is followed once more")


class ModelStore:
    def __init__(
        self,
        tracking_uri: str,
        name: str,
        alias: str,
        cache_dir: str,
        refresh_seconds: float = 30.0,
        breaker_seconds: float = 60.0,
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
        # "no such model or alias" is an answer, not a failure: it never opens the breaker
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=REGISTRY_FAILURES,
            reset_timeout=breaker_seconds,
            exclude=[_not_registered],
            listeners=[_RegistryAnnouncer(breaker_seconds)],
            name="mlflow",
            throw_new_error_on_trip=False,
        )
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
            version, run_id = self.breaker.call(self.resolve)
            path = self.breaker.call(self._download, version, run_id)
            loaded = self._load_dir(path, self.alias)
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
        """Swap in the alias's version if it moved; True when a swap happened. While the
        breaker is open, no registry call is made and nothing changes."""
        try:
            version, run_id = self.breaker.call(self.resolve)
            self.registry_ok, self.absent, self.last_error = True, False, None
        except pybreaker.CircuitBreakerError:
            self.registry_ok = False  # open: MLflow not asked; `last_error` says why
            return False
        except Exception as exc:
            self._registry_failed(exc)
            return False
        if self.current is not None and self.current.version == version:
            if self.current.alias != self.alias:
                # served from the local cache while the registry was away: the registry
                # confirms it now, so it is the alias's version again, not "(cached)"
                self.current = dataclasses.replace(self.current, alias=self.alias)
            return False
        try:
            path = self.breaker.call(self._download, version, run_id)
        except pybreaker.CircuitBreakerError:
            self.registry_ok = False
            return False
        except Exception as exc:
            self._registry_failed(exc)
            return False
        loaded = self._load_dir(path, self.alias)
        self.current = loaded  # one assignment: in-flight requests keep the model they hold
        (self.cache / "current.json").write_text(json.dumps({"version": version}))
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
