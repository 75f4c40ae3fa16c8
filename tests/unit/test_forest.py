"""The compiled forest gives scikit-learn's predictions, missing values included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from apps.api.forest import CompiledForest

pytestmark = pytest.mark.unit


def test_compiled_forest_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 5, (2000, 6))
    y = 2 * x[:, 0] - np.abs(x[:, 1]) + np.sin(x[:, 2]) + rng.normal(0, 0.1, 2000)
    x[rng.random(x.shape) < 0.05] = np.nan  # training with NaNs sets missing_go_to_left
    gbm = HistGradientBoostingRegressor(max_iter=120, random_state=0).fit(x, y)
    probe = rng.normal(0, 8, (500, 6))
    probe[rng.random(probe.shape) < 0.2] = np.nan
    compiled = CompiledForest(gbm)
    assert np.allclose(compiled.predict(probe), gbm.predict(probe), rtol=1e-9, atol=1e-9)
    assert compiled.matches(gbm, probe)


def test_categorical_forests_are_refused() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(0, 4, 300), rng.normal(size=300)])
    y = np.where(x[:, 0] == 2, 5.0, 0.0) + 0.1 * x[:, 1]  # the category matters: it gets split on
    gbm = HistGradientBoostingRegressor(max_iter=10, categorical_features=[0]).fit(x, y)
    with pytest.raises(ValueError, match="categorical"):
        CompiledForest(gbm)
