"""The compiled forest gives scikit-learn's predictions on both of its paths (every (row,
tree) pair descending at once, and scikit-learn's own traversal without its overhead),
missing values and infinities included; the served model's fast path gives its pipeline's."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from apps.api import forest
from apps.api.batch import Rows
from apps.api.forest import CompiledForest
from apps.api.model_store import LoadedModel
from apps.shared.schema import FEATURE_COLUMNS

pytestmark = pytest.mark.unit


@functools.cache
def _fitted(seed: int, features: int = 6, iterations: int = 80) -> HistGradientBoostingRegressor:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 5, (1000, features))
    y = 2 * x[:, 0] - np.abs(x[:, 1]) + np.sin(x[:, 2]) + rng.normal(0, 0.1, 1000)
    y += np.where(np.isnan(x[:, 3]), 0, x[:, 3])
    x[rng.random(x.shape) < 0.05] = np.nan  # training with NaNs sets missing_go_to_left
    return HistGradientBoostingRegressor(max_iter=iterations, random_state=seed).fit(x, y)


def _probe(seed: int, rows: int, features: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 8, (rows, features))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[rng.random(x.shape) < 0.02] = np.inf
    x[rng.random(x.shape) < 0.02] = -np.inf
    return x


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.allclose(a, b, rtol=1e-9, atol=1e-9))


def test_compiled_forest_matches_scikit_learn() -> None:
    gbm = _fitted(3)
    compiled = CompiledForest(gbm)
    probe = _probe(3, 500, 6)
    assert _close(compiled.predict(probe), gbm.predict(probe))
    assert compiled.matches(gbm, probe)


@pytest.mark.parametrize("offset", [None, -1, 0, 1, 500])
def test_both_paths_match_on_each_side_of_the_switch(offset: int | None) -> None:
    gbm = _fitted(3)
    compiled = CompiledForest(gbm)
    rows = 0 if offset is None else compiled.descend_rows + offset
    probe = _probe(rows, rows, 6)
    expected = gbm.predict(probe) if rows else np.empty(0)
    assert _close(compiled.predict(probe), expected)
    assert _close(compiled.descend(probe), expected)
    assert _close(compiled.traverse(probe), expected)


def test_without_scikit_learns_traversal_large_batches_descend_in_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gbm = _fitted(3)
    compiled = CompiledForest(gbm)
    monkeypatch.setattr(forest, "_traverse", None)
    probe = _probe(5, 3 * compiled.descend_rows + 7, 6)
    assert _close(compiled.predict(probe), gbm.predict(probe))
    assert compiled.matches(gbm, probe)


class _Clock:
    """A perf_counter that moves only when a fake path says it took time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("descend_per_row", "expected"),
    [(6.0, 250.0), (3.0, 1000.0), (2.0, np.inf), (1.0, np.inf)],
)
def test_calibration_switches_where_the_two_paths_cost_the_same(
    monkeypatch: pytest.MonkeyPatch, descend_per_row: float, expected: float
) -> None:
    """The traversal costs 1000 + 2 a row, the descent `descend_per_row` a row: they cross at
    1000 / (d - 2) rows, and never when the descent is as cheap a row."""
    compiled = CompiledForest(_fitted(3))
    clock = _Clock()
    monkeypatch.setattr(forest.time, "perf_counter", clock)

    def traverse(x: np.ndarray) -> np.ndarray:
        clock.now += 1000 + 2 * len(x)
        return np.zeros(len(x))

    def descend_chunks(x: np.ndarray) -> np.ndarray:
        clock.now += descend_per_row * len(x)
        return np.zeros(len(x))

    monkeypatch.setattr(compiled, "traverse", traverse)
    monkeypatch.setattr(compiled, "descend_chunks", descend_chunks)
    compiled.calibrate()
    assert compiled.traverse_from == pytest.approx(expected)


@pytest.mark.parametrize(("rows", "path"), [(1, "descend"), (9, "descend"), (10, "traverse")])
def test_predict_takes_the_traversal_from_the_switch_on(
    monkeypatch: pytest.MonkeyPatch, rows: int, path: str
) -> None:
    gbm = _fitted(3)
    compiled = CompiledForest(gbm)
    compiled.traverse_from = 10
    taken: list[str] = []
    for name, method in (("descend", compiled.descend), ("traverse", compiled.traverse)):
        monkeypatch.setattr(compiled, name, lambda x, n=name, m=method: taken.append(n) or m(x))
    probe = _probe(8, rows, 6)
    assert _close(compiled.predict(probe), gbm.predict(probe))
    assert taken == [path]


def test_a_forest_of_shallow_trees_always_descends() -> None:
    """Measured, not assumed: 300 trees of depth 3 descend in well under half the
    traversal's time a row (3.5 against 8.4 µs here), so the traversal never takes over."""
    gbm = HistGradientBoostingRegressor(max_iter=300, max_depth=3, random_state=0)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 5, (2000, 6))
    compiled = CompiledForest(gbm.fit(x, x[:, 0] - x[:, 1] ** 2))
    assert compiled.traverse_from == np.inf


def test_the_calibration_rows_fall_on_both_sides_of_every_split() -> None:
    compiled = CompiledForest(_fitted(3))
    x = compiled.sample(256)
    for j, splits in enumerate(compiled._splits):
        column = x[:, j][~np.isnan(x[:, j])]
        for threshold in splits[np.isfinite(splits)][:20]:
            assert (column <= threshold).any()
            assert (column > threshold).any()


def test_a_split_on_missing_values_alone_is_followed() -> None:
    """Where only missingness separates the targets, scikit-learn splits with an infinite
    threshold: every value left, NaN right."""
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, (1000, 2))
    x[rng.random(1000) < 0.3, 0] = np.nan
    y = np.where(np.isnan(x[:, 0]), 10.0, 0.0) + 0.01 * x[:, 1]
    gbm = HistGradientBoostingRegressor(max_iter=20).fit(x, y)
    thresholds = np.concatenate([p[0].nodes["num_threshold"] for p in gbm._predictors])
    assert np.isinf(thresholds).any()
    probe = np.array([[np.nan, 0.0], [np.inf, 0.0], [-np.inf, 0.0], [1e308, 0.0], [0.0, 0.0]])
    compiled = CompiledForest(gbm)
    assert _close(compiled.descend(probe), gbm.predict(probe))
    assert _close(compiled.traverse(probe), gbm.predict(probe))


def test_trees_that_are_single_leaves() -> None:
    x = np.random.default_rng(7).normal(size=(100, 3))
    gbm = HistGradientBoostingRegressor(max_iter=5).fit(x, np.full(100, 2.5))
    compiled = CompiledForest(gbm)
    assert compiled.active == []
    assert _close(compiled.predict(x[:3]), gbm.predict(x[:3]))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    features=st.integers(4, 9),
    iterations=st.integers(1, 30),
    rows=st.integers(1, 400),
)
def test_any_forest_any_batch(seed: int, features: int, iterations: int, rows: int) -> None:
    gbm = _fitted(seed, features, iterations)
    probe = _probe(seed, rows, features)
    compiled = CompiledForest(gbm)
    assert _close(compiled.predict(probe), gbm.predict(probe))
    assert compiled.matches(gbm, probe)


def test_categorical_forests_are_refused() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(0, 4, 300), rng.normal(size=300)])
    y = np.where(x[:, 0] == 2, 5.0, 0.0) + 0.1 * x[:, 1]  # the category matters: it gets split on
    gbm = HistGradientBoostingRegressor(max_iter=10, categorical_features=[0]).fit(x, y)
    with pytest.raises(ValueError, match="categorical"):
        CompiledForest(gbm)


# -- the served model --------------------------------------------------------------------------
LOCATIONS = ["berlin", "oslo", "paris"]


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(10, 8, (rows, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    frame[frame.columns[7:12]] = frame[frame.columns[7:12]].mask(rng.random((rows, 5)) < 0.2)
    frame.insert(0, "location", rng.choice(LOCATIONS, rows))
    return frame


@functools.cache
def _pipeline(location_first: bool = True) -> Pipeline:
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    one_hot = ("location", encoder, ["location"])
    passthrough = ("features", "passthrough", FEATURE_COLUMNS)
    steps = [one_hot, passthrough] if location_first else [passthrough, one_hot]
    frame = _frame(800, 0)
    y = frame["temp_max_c"] + frame["location"].map({"berlin": 0, "oslo": -5, "paris": 3})
    return Pipeline(
        [
            ("encode", ColumnTransformer(steps)),
            ("gbm", HistGradientBoostingRegressor(max_iter=40, random_state=0)),
        ]
    ).fit(frame, y)


def _wrap(model: Any) -> LoadedModel:
    meta = {"name": "m", "version": "1", "alias": "a", "run_id": "r", "metrics": {}}
    return LoadedModel.wrap(model, loaded_at="now", **meta)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]


@pytest.mark.parametrize("rows", [1, 50, 300])
def test_the_served_model_predicts_what_its_pipeline_predicts(rows: int) -> None:
    pipeline = _pipeline()
    loaded = _wrap(pipeline)
    assert isinstance(loaded._gbm, CompiledForest)  # the fast path is on
    frame = _frame(rows, rows)
    frame.loc[frame.index[0], "location"] = "atlantis"  # unknown: no location, as one-hot
    expected = pipeline.predict(frame)
    records = _records(frame)
    assert _close(np.array(loaded.predict(records)), expected)
    batch = Rows.from_records(records, FEATURE_COLUMNS)
    assert _close(np.array(loaded.predict(batch)), expected)
    sparse = [{k: v for k, v in r.items() if v is not None} for r in records]  # absent = None
    assert _close(np.array(loaded.predict(sparse)), expected)


def test_a_pipeline_with_other_columns_is_served_by_scikit_learn() -> None:
    """The fast path puts the one-hot locations first: a pipeline that puts them last gets
    no fast path, and its own predictions."""
    pipeline = _pipeline(location_first=False)
    loaded = _wrap(pipeline)
    assert loaded._gbm is None
    frame = _frame(20, 1)
    assert _close(np.array(loaded.predict(_records(frame))), pipeline.predict(frame))
