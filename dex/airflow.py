"""`dex pipelines trigger` / `status`: the deployed Airflow's REST API (v2, Airflow 3) through
apache-airflow-client.

Where Airflow is: `--airflow-url`, else `DEX_AIRFLOW_URL`, else the stack's `airflow_url`
output (read with `pulumi stack output`, which needs the Pulumi CLI and the stack's
credentials). Who asks: `--username` (default `admin`) with the password from
`DEX_AIRFLOW_PASSWORD`, else the stack's `airflow_admin_password` output. A JWT comes from
Airflow's `POST /auth/token`; every call then carries it.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

import httpx


class AirflowError(Exception):
    """Something a user can act on, said plainly."""


@dataclass(frozen=True)
class Target:
    url: str
    username: str
    password: str


def stack_outputs(stack: str) -> dict[str, Any]:
    """The stack's outputs, secrets shown, through the Pulumi CLI."""
    from dex.outputs import StackOutputError
    from dex.outputs import stack_outputs as read

    try:
        return read(stack, "pass --airflow-url (or DEX_AIRFLOW_URL) and set DEX_AIRFLOW_PASSWORD")
    except StackOutputError as exc:
        raise AirflowError(str(exc)) from None


def resolve(stack: str | None, url: str | None, username: str) -> Target:
    url = url or os.environ.get("DEX_AIRFLOW_URL")
    password = os.environ.get("DEX_AIRFLOW_PASSWORD")
    if not url or not password:
        if not stack:
            raise AirflowError(
                "say which Airflow: --stack STACK (reads its outputs), or --airflow-url "
                "(or DEX_AIRFLOW_URL) with DEX_AIRFLOW_PASSWORD"
            )
        outputs = stack_outputs(stack)
        url = url or outputs.get("airflow_url")
        password = password or outputs.get("airflow_admin_password")
        if not url or not password:
            raise AirflowError(
                f"stack {stack!r} has no airflow_url / airflow_admin_password output: "
                "has it been deployed with the platform (components/k8s)?"
            )
    if not url.startswith(("http://", "https://")):
        raise AirflowError(f"Airflow URL {url!r} must start with http:// or https://")
    return Target(url.rstrip("/"), username, password)


def token(target: Target, timeout: float = 30.0) -> str:
    try:
        resp = httpx.post(
            f"{target.url}/auth/token",
            json={"username": target.username, "password": target.password},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise AirflowError(f"cannot reach Airflow at {target.url}: {exc}") from None
    if resp.status_code in (401, 403):
        raise AirflowError(
            f"Airflow at {target.url} refused user {target.username!r}: wrong password?"
        )
    if resp.status_code >= 300:
        raise AirflowError(
            f"Airflow at {target.url} answered {resp.status_code} to a token request: "
            f"{resp.text[:300]}"
        )
    access: str = resp.json()["access_token"]
    return access


class Airflow:
    """The few calls `dex` makes, with Airflow's errors turned into AirflowError."""

    def __init__(self, target: Target) -> None:
        from airflow_client import client

        self.target = target
        config = client.Configuration(host=target.url, access_token=token(target))
        self._client = client.ApiClient(config)
        self.dags = client.DAGApi(self._client)
        self.runs = client.DagRunApi(self._client)
        self.tasks = client.TaskInstanceApi(self._client)

    def __enter__(self) -> Airflow:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.rest_client.pool_manager.clear()  # the client's own exit does nothing

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from airflow_client.client.exceptions import ApiException

        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            detail = (exc.body or "").strip()[:300]
            if exc.status == 404:
                raise AirflowError(f"{what}: not found in Airflow ({detail})") from None
            if exc.status in (401, 403):
                raise AirflowError(f"{what}: Airflow refused it ({exc.status})") from None
            raise AirflowError(f"{what}: Airflow answered {exc.status}: {detail}") from None
        except OSError as exc:  # urllib3's connection errors are OSErrors
            raise AirflowError(f"{what}: cannot reach {self.target.url}: {exc}") from None

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, unpause: bool = True
    ) -> dict[str, Any]:
        from airflow_client.client.models.dag_patch_body import DAGPatchBody
        from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

        dag = self._call(f"DAG {dag_id!r}", self.dags.get_dag, dag_id)
        was_paused = bool(dag.is_paused)
        if was_paused and unpause:
            self._call(
                f"unpausing {dag_id!r}",
                self.dags.patch_dag,
                dag_id,
                DAGPatchBody(is_paused=False),
                update_mask=["is_paused"],
            )
        run = self._call(
            f"triggering {dag_id!r}",
            self.runs.trigger_dag_run,
            dag_id,
            TriggerDAGRunPostBody(logical_date=None, conf=conf or {}),
        )
        return {
            "dag_id": dag_id,
            "dag_run_id": run.dag_run_id,
            "state": _text(run.state),
            "run_after": _time(run.run_after),
            "was_paused": was_paused,
            "paused": was_paused and not unpause,
            "url": f"{self.target.url}/dags/{dag_id}/runs/{run.dag_run_id}",
        }

    def status(self, dag_id: str, limit: int = 5) -> dict[str, Any]:
        dag = self._call(f"DAG {dag_id!r}", self.dags.get_dag, dag_id)
        listed = self._call(
            f"runs of {dag_id!r}",
            self.runs.get_dag_runs,
            dag_id,
            limit=limit,
            order_by=["-run_after"],
        )
        runs = [
            {
                "dag_run_id": r.dag_run_id,
                "state": _text(r.state),
                "run_type": _text(r.run_type),
                "run_after": _time(r.run_after),
                "start_date": _time(r.start_date),
                "end_date": _time(r.end_date),
            }
            for r in listed.dag_runs
        ]
        tasks: list[dict[str, Any]] = []
        if runs:
            found = self._call(
                f"tasks of {runs[0]['dag_run_id']!r}",
                self.tasks.get_task_instances,
                dag_id,
                runs[0]["dag_run_id"],
            )
            tasks = [
                {"task_id": t.task_id, "state": _text(t.state), "try_number": t.try_number}
                for t in found.task_instances
            ]
        return {
            "dag_id": dag_id,
            "paused": bool(dag.is_paused),
            "total_runs": listed.total_entries,
            "runs": runs,
            "latest_tasks": tasks,
        }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
