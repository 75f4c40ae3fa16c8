"""The `weather` DAG: the pipeline's steps as Airflow 3 tasks.

Each task runs `python -m apps.pipelines step STEP` with the same code `dex pipelines run`
uses, so the DAG holds no pipeline logic. In the cluster the tasks run in the pipelines
image under the KubernetesExecutor (`DEX_PIPELINES_PYTHON` is that image's Python); on one
machine, Airflow's own virtualenv calls the project's Python. Settings come from the
environment: DEX_LAKE_URL, DEX_SOURCE_URL, DEX_LOCATIONS, DEX_LINEAGE_URL,
DEX_S3_ENDPOINT_URL; DEX_PIPELINES_PYTHONPATH adds the project to the task's import path.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

PYTHON = os.environ.get("DEX_PIPELINES_PYTHON", sys.executable)
STEPS = ("ingest", "bronze", "silver", "gold", "finish")

with DAG(
    dag_id="weather",
    description="Hourly weather: raw -> bronze -> silver -> gold, with quality gates",
    schedule=os.environ.get("DEX_WEATHER_SCHEDULE", "@hourly"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,  # steps share the lake's state: one run at a time
    default_args={
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=2),
        "execution_timeout": dt.timedelta(hours=1),
    },
    tags=["dex", "pipelines"],
) as dag:
    env = {"PYTHONUNBUFFERED": "1"}
    if os.environ.get("DEX_PIPELINES_PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["DEX_PIPELINES_PYTHONPATH"]
    previous = None
    for step in STEPS:
        task = BashOperator(
            task_id=step,
            bash_command=(
                f"{shlex.quote(PYTHON)} -m apps.pipelines step {step} "
                "--run-id {{ run_id | replace(':', '-') | replace('+', '-') }} "
                f"--report /dev/null"
            ),
            env=env,
            append_env=True,  # the worker's DEX_* settings reach the step
        )
        if previous is not None:
            previous >> task
        previous = task
