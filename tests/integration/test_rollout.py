"""Champion and challenger online, over real HTTP against a real MLflow registry: a canary
share answers about that share of callers and each caller keeps its model; shadow scores are
logged beside the answers and never returned; a challenger whose alias is deleted stops
answering; per-version metrics."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.api.predlog import expand
from apps.pipelines import cli as pipelines
from apps.pipelines.locations import DEFAULT_LOCATIONS
from apps.pipelines.sample import generate
from apps.training.settings import TrainingSettings
from apps.training.train import train
from tests.integration.test_api import ROW, Server, api_settings, token

pytestmark = pytest.mark.integration
MODEL = "weather-next-day-tmax"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A champion (version 1) and a challenger (version 2) in a real MLflow registry."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("rollout")
    generate(
        root / "source", dt.date(2023, 1, 1), dt.date(2023, 4, 30), locations=DEFAULT_LOCATIONS[:2]
    )
    lake = f"file://{root}/lake"
    pipelines.run(f"file://{root}/source", lake)
    tracking = f"sqlite:///{root}/mlflow.db"
    first = train(TrainingSettings(lake_url=lake, MLFLOW_TRACKING_URI=tracking))  # type: ignore[call-arg]
    client = MlflowClient(tracking_uri=tracking)
    source = client.get_model_version(MODEL, first.version)
    second = client.create_model_version(MODEL, source.source, run_id=first.run_id)
    client.set_registered_model_alias(MODEL, "challenger", second.version)
    return {
        "lake": lake,
        "tracking": tracking,
        "champion": first.version,
        "challenger": str(second.version),
    }


def _answers(url: str, callers: list[str], repeats: int = 1) -> dict[str, set[str]]:
    """Per caller, the model versions that answered it."""
    seen: dict[str, set[str]] = {}
    with httpx.Client(base_url=url, timeout=10) as c:
        for sub in callers:
            headers = token(["predict"], sub=sub)
            for _ in range(repeats):
                r = c.post("/v1/predict", headers=headers, json={"rows": [ROW]})
                assert r.status_code == 200, r.text
                seen.setdefault(sub, set()).add(r.json()["model_version"])
    return seen


def test_a_canary_answers_its_share_of_callers_each_sticky(
    registry: dict[str, str], tmp_path: Path
) -> None:
    settings = api_settings(
        registry, tmp_path, rollout="canary", canary_share=0.2, rate_limit="100000/minute"
    )
    callers = [uuid.uuid4().hex for _ in range(400)]
    with Server(settings) as srv:
        seen = _answers(srv.url, callers)
        sticky = _answers(srv.url, callers[:40], repeats=4)
        with httpx.Client(base_url=srv.url) as c:
            described = c.get("/v1/model", headers=token(["model:read"])).json()
            metrics = c.get("/metrics").text
    by_challenger = sum(1 for v in seen.values() if v == {registry["challenger"]})
    assert all(len(v) == 1 for v in seen.values())
    # binomial(400, 0.2): mean 80, sd 8; 4 sd either side
    assert 48 <= by_challenger <= 112, by_challenger
    assert all(len(v) == 1 for v in sticky.values()), "a caller changed models"
    assert all(seen[s] == sticky[s] for s in callers[:40])
    assert described["version"] == registry["champion"]
    assert described["rollout"]["mode"] == "canary"
    assert described["rollout"]["challenger"]["version"] == registry["challenger"]
    challenger_calls = by_challenger + 4 * _count(sticky, registry)
    champion_calls = 400 + 160 - challenger_calls
    assert _sample(metrics, "dex_api_model_requests_total", registry["challenger"], "ok") == (
        challenger_calls
    )
    assert _sample(metrics, "dex_api_model_requests_total", registry["champion"], "ok") == (
        champion_calls
    )
    assert (
        _sample(metrics, "dex_api_prediction_value_celsius_count", registry["champion"])
        == champion_calls
    )


def _sample(text: str, name: str, version: str, outcome: str | None = None) -> float:
    """One sample of the exposition, found by version (and outcome)."""
    for line in text.splitlines():
        wanted = outcome is None or f'outcome="{outcome}"' in line
        if line.startswith(name + "{") and f'model_version="{version}"' in line and wanted:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} for version {version} in the metrics")


def _count(seen: dict[str, set[str]], registry: dict[str, str]) -> int:
    return sum(1 for v in seen.values() if v == {registry["challenger"]})


def _logged(lake: str) -> list[dict[str, Any]]:
    root = Path(lake.removeprefix("file://"), "raw", "predictions")
    return [
        record
        for f in sorted(root.rglob("*.jsonl"))
        for line in f.read_text().splitlines()
        if line.strip()
        for record in expand(json.loads(line))
    ]


def test_shadow_scores_are_logged_beside_the_answer_never_returned(
    registry: dict[str, str], tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    settings = api_settings(
        registry,
        tmp_path,
        rollout="shadow",
        shadow_share=1.0,
        lake_url=f"file://{lake}",
        rate_limit="100000/minute",
    )
    row = {**ROW, "date": "2024-06-01"}
    rids = []
    with Server(settings) as srv, httpx.Client(base_url=srv.url) as c:
        for _ in range(20):
            r = c.post("/v1/predict", headers=token(["predict"]), json={"rows": [row, row]})
            assert r.status_code == 200
            body = r.json()
            assert body["model_version"] == registry["champion"]
            assert body["predictions"][0]["for_date"] == "2024-06-02"
            rids.append(body["request_id"])
    # the server stopped: its shutdown scored what was queued and flushed the log
    records = _logged(f"file://{lake}")
    by_role: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for rec in records:
        by_role.setdefault((rec["role"], rec["served"]), []).append(rec)
    assert set(by_role) == {("champion", True), ("challenger", False)}
    for (role, _served), recs in by_role.items():
        assert sorted({r["request_id"] for r in recs}) == sorted(rids)
        assert len(recs) == 40
        want = registry["champion"] if role == "champion" else registry["challenger"]
        assert {r["model_version"] for r in recs} == {want}
        assert {r["for_date"] for r in recs} == {"2024-06-02"}
        assert {r["route"] for r in recs} == {"predict"}


def test_a_deleted_challenger_stops_answering(registry: dict[str, str], tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    settings = api_settings(
        registry,
        tmp_path,
        rollout="canary",
        canary_share=1.0,
        refresh_seconds=0.3,
        rate_limit="100000/minute",
    )
    client = MlflowClient(tracking_uri=registry["tracking"])
    callers = [uuid.uuid4().hex for _ in range(10)]
    try:
        with Server(settings) as srv:
            before = _answers(srv.url, callers)
            client.delete_registered_model_alias(MODEL, "challenger")
            deadline = time.monotonic() + 20
            while srv.app.app.state.services.rollout.challenger.current is not None:  # type: ignore[attr-defined]
                assert time.monotonic() < deadline, "the challenger kept answering"
                time.sleep(0.1)
            after = _answers(srv.url, callers)
    finally:
        client.set_registered_model_alias(MODEL, "challenger", registry["challenger"])
    assert all(v == {registry["challenger"]} for v in before.values())
    assert all(v == {registry["champion"]} for v in after.values())


def test_rollout_settings_refuse_a_canary_of_nobody() -> None:
    from pydantic import ValidationError

    from apps.api.settings import ApiSettings

    with pytest.raises(ValidationError, match="DEX_API_CANARY_SHARE"):
        ApiSettings(rollout="canary", canary_share=0.0)
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        ApiSettings(rollout="canary", canary_share=1.5)
