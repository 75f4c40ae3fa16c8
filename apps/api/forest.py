"""A compiled view of a fitted HistGradientBoostingRegressor: predictions for a batch at the
cost of a few numpy calls, not a Python loop over rows or trees.

scikit-learn predicts tree by tree in a Python loop (about 3-6 µs a tree before any work: 1-2 ms
for 300 trees, even for one row). Two paths here, both with scikit-learn's arithmetic
(`x <= threshold`; a missing value follows the node's `missing_go_to_left`):

- the descent: every (row, tree) pair descends at once, one vectorized step per level, in
  chunks of `DESCEND_PAIRS` pairs. All trees' nodes sit in flat tables; a pair's state is its
  node. A leaf points to itself, so finished pairs just stay put. Trees are sorted deepest
  first, so a level touches only the leading trees that still have nodes that deep. Missing
  values cost no extra step: each row is stored twice, as given (NaN `<=` anything is false:
  right) and with NaN as -inf (true: left); a node reads the copy of its own missing direction.
- the traversal: scikit-learn's own compiled code, tree by tree over all rows, without its
  input checks and on one thread (a server shares its cores: with two OpenMP threads on a busy
  2-core machine, 1,000 rows took seconds instead of milliseconds).

Which is faster depends on the trees: the descent costs the same per row at any batch size and
takes every pair as deep as its tree's deepest leaf; the traversal pays ~3 µs a tree whatever
the batch, then only each pair's own path. For shallow trees the descent wins at every size
(300 trees of depth 4: 1,000 rows in 3.9 ms against 5.1), for deep ones only on small batches
(depth 26: up to ~150 rows). `calibrate` measures both on this forest, at compile time, and
sets the batch size at which the traversal takes over.

`matches` proves both paths equal to scikit-learn on real rows before the server relies on it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

try:  # scikit-learn's compiled per-tree traversal (private: checked by `matches`, and optional)
    from sklearn.ensemble._hist_gradient_boosting._predictor import (
        _predict_from_raw_data as _traverse,
    )
except ImportError:  # pragma: no cover - another scikit-learn layout: numpy for every size
    _traverse = None

DESCEND_PAIRS = 40_000
"""(row, tree) pairs one descent step takes at most (~130 rows for 300 trees): larger batches
descend in chunks, so memory stays bounded and the arrays stay in cache."""

CALIBRATION_ROWS = 256
"""Rows `calibrate` times each path on."""


class CompiledForest:
    def __init__(self, gbm: Any) -> None:
        predictors = [iteration[0] for iteration in gbm._predictors]
        if any(len(iteration) != 1 for iteration in gbm._predictors):
            raise ValueError("only single-output regression forests are compiled")
        if any(bool(np.any(p.nodes["is_categorical"])) for p in predictors):
            raise ValueError("categorical splits are not compiled")
        self.n_features = int(gbm.n_features_in_)
        self.baseline = float(np.ravel(gbm._baseline_prediction)[0])
        # -- the traversal's inputs: each tree's own node array
        self._trees = [p.nodes for p in predictors]
        self._bitsets = [p.raw_left_cat_bitsets for p in predictors]
        self._no_categories = np.zeros((0, 8), dtype=np.uint32)
        self._feature_map = np.zeros(self.n_features, dtype=np.uint32)
        # -- the descent's flat tables, trees deepest first
        depths = np.array([int(n["depth"].max()) for n in self._trees])
        order = np.argsort(-depths, kind="stable")
        trees = [self._trees[i] for i in order]
        sizes = np.array([len(n) for n in trees])
        self.roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        nodes = np.concatenate(trees)
        first = np.repeat(self.roots, sizes)  # each node's tree's first node
        ids = np.arange(len(nodes), dtype=np.intp)
        leaf = nodes["is_leaf"].astype(bool)
        f = self.n_features
        missing_left = nodes["missing_go_to_left"].astype(bool)
        self.column = np.where(leaf, 0, nodes["feature_idx"].astype(np.intp) + f * missing_left)
        """The column a node reads in a doubled row: its feature, in the copy of its missing
        direction (NaN kept: goes right; NaN as -inf: goes left)."""
        self.threshold = np.where(leaf, np.inf, nodes["num_threshold"])
        self.child = np.empty(2 * len(nodes), dtype=np.intp)
        """`child[2 * node + (x <= threshold)]`: the right child, then the left; a leaf twice
        itself."""
        self.child[0::2] = np.where(leaf, ids, nodes["right"].astype(np.intp) + first)
        self.child[1::2] = np.where(leaf, ids, nodes["left"].astype(np.intp) + first)
        self.value = nodes["value"].astype(np.float64)
        self.active = [int(np.sum(depths > level)) for level in range(int(depths.max()))]
        """Per level, how many trees (the deepest, first) still descend."""
        self._splits = [
            np.unique(nodes["num_threshold"][~leaf & (nodes["feature_idx"] == j)]) for j in range(f)
        ]
        self.traverse_from: float = math.inf
        """The batch size from which the traversal is used (`calibrate`); the descent below."""
        if _traverse is not None:
            self.calibrate()

    @property
    def descend_rows(self) -> int:
        """The most rows one descent step takes (DESCEND_PAIRS over the number of trees)."""
        return max(1, DESCEND_PAIRS // len(self.roots))

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if _traverse is not None and len(x) >= self.traverse_from:
            return self.traverse(x)
        return self.descend_chunks(x)

    def descend_chunks(self, x: np.ndarray) -> np.ndarray:
        """The descent, `descend_rows` rows at a time."""
        rows = self.descend_rows
        if len(x) <= rows:
            return self.descend(x)
        return np.concatenate([self.descend(x[i : i + rows]) for i in range(0, len(x), rows)])

    def calibrate(self, rows: int = CALIBRATION_ROWS, repeat: int = 3) -> None:
        """Time both paths on `rows` rows spread over this forest's own splits and set
        `traverse_from`. The descent's cost grows with the rows from zero (d a row), the
        traversal's from a fixed cost t0 (a ~3 µs call per tree) by a a row; they cross at
        t0 / (d - a) rows, and never when d <= a. The best of `repeat` timings counts, so a
        busy moment does not decide; either path gives the same predictions (`matches`)."""
        x = self.sample(rows)

        def best(path: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> float:
            timings = []
            for _ in range(repeat):
                started = time.perf_counter()
                path(batch)
                timings.append(time.perf_counter() - started)
            return min(timings)

        one = best(self.traverse, x[:1])
        per_row_traverse = max(best(self.traverse, x) - one, 0.0) / (rows - 1)
        fixed = max(one - per_row_traverse, 0.0)
        per_row_descend = best(self.descend_chunks, x) / rows
        if per_row_descend <= per_row_traverse:
            self.traverse_from = math.inf
        else:
            self.traverse_from = max(1.0, fixed / (per_row_descend - per_row_traverse))

    def sample(self, rows: int, seed: int = 0) -> np.ndarray:
        """Rows whose values sit on both sides of this forest's splits (each feature drawn
        from its own thresholds, nudged either way, a tenth missing): paths as varied as the
        trees allow, the way real rows take them."""
        rng = np.random.default_rng(seed)
        x = np.zeros((rows, self.n_features))
        for j, splits in enumerate(self._splits):
            finite = splits[np.isfinite(splits)]
            if len(finite):
                x[:, j] = rng.choice(finite, rows) + rng.choice([-1e-6, 1e-6], rows)
        x[rng.random(x.shape) < 0.1] = np.nan
        return x

    def descend(self, x: np.ndarray) -> np.ndarray:
        """All (row, tree) pairs down together, one numpy step per level."""
        n, f = x.shape
        doubled = np.empty((n, 2 * f))
        doubled[:, :f] = x
        doubled[:, f:] = x
        np.copyto(doubled[:, f:], -np.inf, where=np.isnan(x))
        flat = doubled.ravel()
        offset = np.arange(n, dtype=np.intp) * (2 * f)
        state = np.repeat(self.roots[:, None], n, axis=1)  # (trees, rows): each pair's node
        for k in self.active:
            node = state[:k]
            index = self.column[node]
            index += offset
            went_left = flat[index] <= self.threshold[node]
            index = node * 2
            index += went_left
            state[:k] = self.child[index]
        out: np.ndarray = self.value[state].sum(axis=0)
        out += self.baseline
        return out

    def traverse(self, x: np.ndarray) -> np.ndarray:
        """scikit-learn's compiled traversal, tree by tree, on one thread."""
        assert _traverse is not None
        out = np.full(len(x), self.baseline)
        leaf = np.empty(len(x))
        for nodes, bitsets in zip(self._trees, self._bitsets, strict=True):
            _traverse(nodes, x, bitsets, self._no_categories, self._feature_map, 1, leaf)
            out += leaf
        return out

    def matches(self, gbm: Any, x: np.ndarray) -> bool:
        """Both paths give scikit-learn's predictions for these rows."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        expected = gbm.predict(x)
        paths = [self.descend(x)] + ([self.traverse(x)] if _traverse is not None else [])
        return all(np.allclose(p, expected, rtol=1e-9, atol=1e-9) for p in paths)
