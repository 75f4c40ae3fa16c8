"""The drift job: PSI per feature between the prediction log and the training reference."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import numpy as np
import pytest

from apps.api.drift import main, measure, psi, recent_inputs
from apps.shared.lake import open_lake
from apps.training.train import reference_distribution

pytestmark = pytest.mark.unit


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference_values = rng.normal(10, 3, 5000)
    import pandas as pd

    ref = reference_distribution(
        pd.DataFrame(
            {"temp_max_c": reference_values, **dict.fromkeys(("temp_min_c",), reference_values)}
        )
    )
    same = psi(ref["temp_max_c"], list(rng.normal(10, 3, 2000)))
    shifted = psi(ref["temp_max_c"], list(rng.normal(16, 3, 2000)))
    assert same is not None
    assert same < 0.05
    assert shifted is not None
    assert shifted > 0.25
    assert psi(ref["temp_max_c"], [None, float("nan")]) is None


def test_job_reads_the_prediction_log_and_writes_metrics(tmp_path: Path) -> None:
    lake = open_lake(f"file://{tmp_path}/lake")
    rng = random.Random(1)
    today = dt.datetime.now(dt.UTC).date()
    rows = [
        {"inputs": {"temp_max_c": rng.gauss(25, 2), "humidity_mean_pct": rng.gauss(60, 5)}}
        for _ in range(500)
    ]
    lake.write_bytes(
        "".join(json.dumps(r) + "\n" for r in rows).encode(),
        "raw",
        "predictions",
        f"date={today.isoformat()}",
        "a.jsonl",
    )
    assert len(recent_inputs(lake, 7)) == 500
    reference = {
        "temp_max_c": {"edges": [0, 5, 10, 15, 20, 30], "share": [0.2] * 5},
        "humidity_mean_pct": {"edges": [0, 55.8, 58.7, 61.3, 64.2, 100], "share": [0.2] * 5},
    }
    result = measure(reference, recent_inputs(lake, 7))
    assert result["drifted"] == ["temp_max_c"]  # everything fell into the warmest bins
    ref_file = tmp_path / "reference.json"
    ref_file.write_text(json.dumps(reference))
    assert (
        main(
            [
                "--lake",
                f"file://{tmp_path}/lake",
                "--reference",
                str(ref_file),
                "--model-version",
                "7",
            ]
        )
        == 0
    )
    prom = (tmp_path / "lake" / "_metrics" / "drift.prom").read_text()
    assert 'dex_model_feature_psi{feature="temp_max_c",model_version="7"}' in prom
    assert (
        main(["--lake", f"file://{tmp_path}/lake", "--reference", str(tmp_path / "nope.json")]) == 2
    )
