"""`dex local up --once --with-airflow`: the pipeline as the `weather` DAG under real Airflow
(a file of its own, so the parallel test workers schedule this long run apart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_local import local_up, prediction

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_local_up_with_airflow(tmp_path: Path, airflow_python: Path) -> None:
    """`airflow_python` makes sure Airflow's own virtualenv exists (`dex local` uses it)."""
    result = local_up(tmp_path / "local", "--with-airflow")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "(Airflow)" in result.stdout
    assert prediction(result.stdout)["location"] == "berlin"
    assert list((tmp_path / "local" / "airflow").glob("airflow.db"))
