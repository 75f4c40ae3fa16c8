"""The `weather` DAG with real Airflow 3, installed in its own virtualenv by this test's setup
(Airflow pins many packages; it must not share the project's environment)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps.pipelines.locations import DEFAULT_LOCATIONS
from apps.pipelines.sample import generate
from tests.conftest import ROOT
from tests.integration.conftest import AIRFLOW_VENV, airflow_environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def airflow_env(tmp_path: Path, airflow_python: Path) -> dict[str, str]:
    return airflow_environment(
        tmp_path / "airflow",
        airflow_python,
        AIRFLOW__CORE__PARALLELISM="2",
        DEX_PIPELINES_PYTHON=sys.executable,
        DEX_PIPELINES_PYTHONPATH=str(ROOT),
    )


def test_dag_imports_without_errors(airflow_python: Path, airflow_env: dict[str, str]) -> None:
    script = (
        "import json; from airflow.dag_processing.dagbag import DagBag; "
        f"b = DagBag({str(ROOT / 'apps/pipelines/dags')!r}); "
        "d = b.get_dag('weather'); "
        "print(json.dumps({'errors': {k: str(v) for k, v in b.import_errors.items()}, "
        "'tasks': [t.task_id for t in d.topological_sort()] if d else None, "
        "'max_active_runs': d.max_active_runs if d else None}))"
    )
    out = subprocess.run(
        [str(airflow_python), "-c", script],
        env=airflow_env,
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["tasks"] == ["ingest", "bronze", "silver", "gold", "finish"]
    assert result["max_active_runs"] == 1


def test_dags_test_runs_the_whole_pipeline(airflow_env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "source"
    generate(source, dt.date(2023, 1, 1), dt.date(2023, 1, 31), locations=(DEFAULT_LOCATIONS[0],))
    lake = tmp_path / "lake"
    env = {
        **airflow_env,
        "DEX_SOURCE_URL": f"file://{source}",
        "DEX_LAKE_URL": f"file://{lake}",
        "DEX_LOCATIONS": "berlin",
    }
    airflow = str(AIRFLOW_VENV / "bin" / "airflow")
    run = subprocess.run(
        [airflow, "dags", "test", "weather", "2024-06-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (lake / "gold" / "weather" / "features" / "location=berlin" / "part-0.parquet").is_file()
    reports = list((lake / "_runs").glob("*/report.json"))
    assert len(reports) == 1  # `finish` wrote the run report
    report = json.loads(reports[0].read_text())
    assert set(report["freshness_hours"]) == {"berlin"}
    state = json.loads((lake / "_state" / "weather" / "state.json").read_text())
    assert state["pending"] == {"silver": [], "gold": [], "features": []}
