"""The alert rules and dashboard queries, checked by Prometheus' own `promtool`: every rule
group passes `promtool check rules`, every dashboard query parses, and `promtool test rules`
proves each SLO's burn-rate alert fires on a burn and stays quiet otherwise.

promtool comes from Debian's `prometheus` package; `make test` installs it when missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.k8s import slo
from components.k8s.observability import dashboards

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "these tests need promtool (Debian: apt-get install prometheus); "
            "`make test` installs it when it is missing"
        )
    return path


def run(promtool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def write_rules(path: Path, groups: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def test_rule_groups_pass_promtool_check(promtool: str, tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml", slo.rule_groups())
    out = run(promtool, "check", "rules", str(rules))
    assert out.returncode == 0, out.stdout + out.stderr
    count = sum(len(g["rules"]) for g in slo.rule_groups())
    assert f"SUCCESS: {count} rules found" in out.stdout


def test_promtool_check_fails_on_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The check above can fail: a malformed expression is refused."""
    bad = [{"name": "bad", "rules": [{"record": "x:y", "expr": "sum(rate(foo[5m])"}]}]
    out = run(promtool, "check", "rules", str(write_rules(tmp_path / "bad.yaml", bad)))
    assert out.returncode != 0


def grafana_to_promql(expr: str) -> str:
    """Grafana's interval variables replaced by a duration, as Grafana does at query time."""
    return re.sub(r"\$__(rate_interval|interval|range)", "5m", expr)


def test_every_dashboard_query_parses(promtool: str, tmp_path: Path) -> None:
    exprs = [
        (stem, panel["title"], target["expr"])
        for stem, board in dashboards().items()
        for panel in board["panels"]
        for target in panel["targets"]
    ]
    assert len(exprs) >= 15
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": grafana_to_promql(expr)}
        for i, (_stem, _title, expr) in enumerate(exprs)
    ]
    out = run(
        promtool,
        "check",
        "rules",
        str(write_rules(tmp_path / "dash.yaml", [{"name": "dashboards", "rules": rules}])),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for _stem, _title, expr in exprs:
        assert "$" not in grafana_to_promql(expr)  # no variable left unexplained


# -- promtool test rules: burns fire, normal traffic does not ----------------------------------


def alerts_by_name() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in slo.rule_groups() for r in g["rules"] if "alert" in r}


def expected(alert: str, **extra: str) -> dict[str, Any]:
    rule = alerts_by_name()[alert]
    return {
        "exp_labels": {**rule["labels"], **extra},
        "exp_annotations": dict(rule["annotations"]),
    }


def fires(alert: str, at: str, **extra: str) -> dict[str, Any]:
    """`extra`: labels the alert keeps from its series (the freshness SLI is per pipeline)."""
    return {"eval_time": at, "alertname": alert, "exp_alerts": [expected(alert, **extra)]}


def quiet(alert: str, at: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": []}


def requests(good_per_min: int, bad_per_min: int, minutes: int) -> list[dict[str, str]]:
    labels = 'route="/v1/predict",method="POST"'
    return [
        {
            "series": f'dex_api_requests_total{{{labels},status="200"}}',
            "values": f"0+{good_per_min}x{minutes}",
        },
        {
            "series": f'dex_api_requests_total{{{labels},status="500"}}',
            "values": f"0+{bad_per_min}x{minutes}",
        },
    ]


def latency(total_per_min: int, fast_per_min: int, minutes: int) -> list[dict[str, str]]:
    labels = 'route="/v1/predict",method="POST"'
    return [
        {
            "series": f'dex_api_request_duration_seconds_bucket{{{labels},le="0.1"}}',
            "values": f"0+{fast_per_min}x{minutes}",
        },
        {
            "series": f"dex_api_request_duration_seconds_count{{{labels}}}",
            "values": f"0+{total_per_min}x{minutes}",
        },
    ]


def case(series: list[dict[str, str]], checks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"interval": "1m", "input_series": series, "alert_rule_test": checks}


FAST = {s.name: f"Dex{''.join(p.title() for p in s.name.split('-'))}BurnRateFast" for s in slo.SLOS}
SLOW = {name: alert.replace("Fast", "Slow") for name, alert in FAST.items()}

CASES: dict[str, list[dict[str, Any]]] = {
    "api-availability": [
        # 10% of requests fail: pages within the hour
        case(requests(90, 10, 120), [fires(FAST["api-availability"], "60m")]),
        # 0.01% fail (well inside a 99.9% objective): nothing
        case(
            requests(9999, 1, 300),
            [quiet(FAST["api-availability"], "60m"), quiet(SLOW["api-availability"], "4h10m")],
        ),
        # 0.5% fail: too slow a burn to page, a ticket once it has lasted
        case(
            requests(995, 5, 300),
            [quiet(FAST["api-availability"], "4h10m"), fires(SLOW["api-availability"], "4h10m")],
        ),
    ],
    "api-latency": [
        # 20% of predictions slower than 100 ms
        case(latency(100, 80, 120), [fires(FAST["api-latency"], "60m")]),
        # 0.05% slow
        case(latency(10000, 9995, 120), [quiet(FAST["api-latency"], "60m")]),
    ],
    "pipeline-freshness": [
        # the last success is older than two hours the whole time
        case(
            [
                {
                    "series": 'dex_pipeline_last_success_timestamp_seconds{pipeline="weather"}',
                    "values": "-10000x120",
                }
            ],
            [fires(FAST["pipeline-freshness"], "60m", pipeline="weather")],
        ),
        # a success every minute
        case(
            [
                {
                    "series": 'dex_pipeline_last_success_timestamp_seconds{pipeline="weather"}',
                    "values": "0+60x120",
                }
            ],
            [quiet(FAST["pipeline-freshness"], "60m")],
        ),
    ],
    "mlflow-availability": [
        case(
            [{"series": 'up{job="mlflow"}', "values": "0x120"}],
            [fires(FAST["mlflow-availability"], "60m")],
        ),
        case(
            [{"series": 'up{job="mlflow"}', "values": "1x120"}],
            [quiet(FAST["mlflow-availability"], "60m")],
        ),
    ],
}


def test_every_slo_has_burn_and_quiet_cases() -> None:
    assert set(CASES) == {s.name for s in slo.SLOS}
    for name, cases in CASES.items():
        checks = [c for tc in cases for c in tc["alert_rule_test"]]
        assert any(c["exp_alerts"] for c in checks), name  # a burn fires
        assert any(not c["exp_alerts"] for c in checks), name  # normal traffic does not


@pytest.mark.parametrize("name", sorted(CASES))
def test_slo_alerts_fire_on_a_burn_and_stay_quiet_otherwise(
    promtool: str, tmp_path: Path, name: str
) -> None:
    write_rules(tmp_path / "rules.yaml", slo.rule_groups())
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": CASES[name],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    out = run(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_test_catches_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    """The unit tests above can fail: expecting silence during a burn is reported."""
    write_rules(tmp_path / "rules.yaml", slo.rule_groups())
    wrong = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [case(requests(90, 10, 120), [quiet(FAST["api-availability"], "60m")])],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(wrong, sort_keys=False))
    out = run(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert out.returncode != 0
    assert FAST["api-availability"] in out.stdout + out.stderr
