"""The rollout's pieces without servers: the caller split, and the batch histogram update."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from apps.api.observability import observe_many
from apps.api.rollout import bucket

pytestmark = pytest.mark.unit


def test_the_caller_split_is_fixed_and_even() -> None:
    subjects = [f"client-{i}" for i in range(20_000)]
    places = np.array([bucket(s) for s in subjects])
    assert [bucket(s) for s in subjects[:100]] == list(places[:100])  # sticky
    assert places.min() >= 0
    assert places.max() < 1
    # a 20% canary takes 20% of callers: binomial sd 0.28 points; 5 sd either side
    assert abs(float((places < 0.2).mean()) - 0.2) < 0.015
    counts, _ = np.histogram(places, bins=10, range=(0, 1))
    assert counts.min() > 1800
    assert counts.max() < 2200


def _exposition(values: list[float], batch: bool) -> bytes:
    registry = CollectorRegistry()
    h = Histogram("v", "v", ["k"], registry=registry, buckets=(-10.0, 0.0, 2.5, 10.0))
    child = h.labels("a")
    if batch:
        observe_many(child, values)
    else:
        for v in values:
            child.observe(v)
    return generate_latest(registry).replace(b"\n", b" ").split(b"v_created")[0]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([-10.0, 0.0, 2.5, 10.0, 10.000001, -10.000001]),
            st.floats(-1e6, 1e6, allow_nan=False),
        ),
        max_size=50,
    )
)
def test_a_batch_lands_in_the_buckets_one_by_one_would(values: list[float]) -> None:
    batch = _exposition(values, batch=True)
    single = _exposition(values, batch=False)
    if values and abs(sum(values)) > 1e-9:
        # the sums are added in another order: equal to rounding
        assert batch.split(b"v_sum")[0] == single.split(b"v_sum")[0]
    else:
        assert batch == single
