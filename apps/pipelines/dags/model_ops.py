"""The `model_ops` DAG: the model's daily operations as Airflow 3 tasks.

    feedback >> decide >> score      drift (in parallel)

Each task runs `python -m apps.training.ops STEP`, the same code `dex model ops STEP` and the
`daily` CronJob run, so the DAG holds no model logic. The steps need the training image's
packages (MLflow, scikit-learn, scipy) and code (apps/training, apps/pipelines, apps/api):
`DEX_MODEL_OPS_PYTHON` is that Python (default `DEX_PIPELINES_PYTHON`, else Airflow's own),
and with `DEX_MODEL_OPS_IMAGE` set each task's pod runs that image under the
KubernetesExecutor. Settings come from the environment: DEX_LAKE_URL, MLFLOW_TRACKING_URI,
DEX_MODEL_NAME, DEX_DECISION_* and DEX_DRIFT_* (apps/training/settings.py ModelOpsSettings),
DEX_S3_ENDPOINT_URL, DEX_PUSHGATEWAY_URL; DEX_PIPELINES_PYTHONPATH adds the project to the
task's import path.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

PYTHON = os.environ.get(
    "DEX_MODEL_OPS_PYTHON", os.environ.get("DEX_PIPELINES_PYTHON", sys.executable)
)
IMAGE = os.environ.get("DEX_MODEL_OPS_IMAGE", "")


def _executor_config() -> dict[str, Any]:
    """Run the task's pod in the training image (KubernetesExecutor), when one is named."""
    if not IMAGE:
        return {}
    from kubernetes.client import models as k8s  # type: ignore[import-not-found]

    return {
        "pod_override": k8s.V1Pod(
            spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", image=IMAGE)])
        )
    }


with DAG(
    dag_id="model_ops",
    description="Daily: online feedback, champion/challenger decision, batch scoring, drift",
    schedule=os.environ.get("DEX_MODEL_OPS_SCHEDULE", "@daily"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,  # the decision moves registry aliases: one run at a time
    default_args={
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=5),
        "execution_timeout": dt.timedelta(hours=1),
    },
    tags=["dex", "model"],
) as dag:
    env = {"PYTHONUNBUFFERED": "1"}
    if os.environ.get("DEX_PIPELINES_PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["DEX_PIPELINES_PYTHONPATH"]
    config = _executor_config()
    tasks = {
        step: BashOperator(
            task_id=step,
            bash_command=f"{shlex.quote(PYTHON)} -m apps.training.ops {step}",
            env=env,
            append_env=True,  # the worker's DEX_* and MLFLOW_* settings reach the step
            executor_config=config,
        )
        for step in ("feedback", "decide", "score", "drift")
    }
    tasks["feedback"] >> tasks["decide"] >> tasks["score"]
