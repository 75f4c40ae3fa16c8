"""Service level objectives as Prometheus rules: one error-ratio SLI per SLO, recorded over
the standard windows, and the multi-window, multi-burn-rate alerts of the Google SRE
workbook (page: 2% of a 30-day budget in 1 h or 5% in 6 h; ticket: 10% in 3 days); then the
model signals (input drift, no model) and the rollout's alerts (challenger errors, the
champion's online MAE, the model-ops job).

Pure data: `rule_groups()` is what the PrometheusRule objects carry, and what the tests hand
to `promtool check rules` / `promtool test rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.k8s.base import APPS_NS, MODEL_OPS_APP

RUNBOOK_BASE = "https://github.com/dataenginex/dex/blob/main/docs/runbooks.md"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

# (long window, short window, burn rate, severity, for)
BURN_ALERTS = (
    ("1h", "5m", 14.4, "page", "2m"),
    ("6h", "30m", 6.0, "page", "15m"),
    ("1d", "2h", 3.0, "ticket", "1h"),
    ("3d", "6h", 1.0, "ticket", "3h"),
)


@dataclass(frozen=True)
class Slo:
    name: str
    """Short id, used in rule names and the `slo` label."""
    objective: float
    """The target share of good events (or good time), e.g. 0.999."""
    description: str
    error_ratio: str
    """PromQL for the share of bad events over `{w}` (the window is substituted)."""
    pre_rules: tuple[tuple[str, str], ...] = ()
    """Recording rules the SLI needs first: (record, expr)."""

    @property
    def budget(self) -> float:
        return round(1 - self.objective, 6)


SLOS: tuple[Slo, ...] = (
    Slo(
        name="api-availability",
        objective=0.999,
        description="99.9% of serving API requests succeed (not 5xx)",
        error_ratio=(
            'sum(rate(dex_api_requests_total{status=~"5.."}[{w}]))'
            " / sum(rate(dex_api_requests_total[{w}]))"
        ),
    ),
    Slo(
        name="api-latency",
        objective=0.99,
        description="99% of prediction requests complete within 100 ms (p99 < 100 ms)",
        error_ratio=(
            "1 - ("
            'sum(rate(dex_api_request_duration_seconds_bucket{route=~"/v1/.*",le="0.1"}[{w}]))'
            ' / sum(rate(dex_api_request_duration_seconds_count{route=~"/v1/.*"}[{w}]))'
            ")"
        ),
    ),
    Slo(
        name="pipeline-freshness",
        objective=0.99,
        description="99% of the time the weather pipeline succeeded within the last 2 hours",
        error_ratio="1 - avg_over_time(dex:pipeline_fresh:bool[{w}])",
        pre_rules=(
            (
                "dex:pipeline_fresh:bool",
                "(time() - max by (pipeline) "
                '(dex_pipeline_last_success_timestamp_seconds{pipeline="weather"})) < bool 7200',
            ),
        ),
    ),
    Slo(
        name="mlflow-availability",
        objective=0.995,
        description="MLflow's tracking server is up 99.5% of the time",
        error_ratio='1 - avg(avg_over_time(up{job="mlflow"}[{w}]))',
    ),
)


MODEL_MAE_ALERT_CELSIUS = 3.0
"""The default of `dex:platform.model_mae_alert_celsius`: the champion's online MAE (°C) above
which DexChampionOnlineMaeHigh fires."""
MODEL_MAE_MIN_SAMPLES = 30
"""Joined predictions the champion's online MAE must rest on before it may alert (the
model-ops job's own minimum for a decision)."""
CHALLENGER_ERROR_MARGIN = 0.01
"""How far (absolute share of calls) the challenger's error ratio may exceed the champion's."""
CHALLENGER_MIN_CALLS = 100
"""Challenger calls over the alert's window before its error ratio is judged."""
MODEL_OPS_MAX_AGE_SECONDS = 26 * 3600
"""A daily job with a 2-hour deadline: a success is never more than 26 hours old."""


def _model_requests(role: str, outcome: str | None = None, window: str = "30m") -> str:
    match = f'role="{role}"' + (f',outcome="{outcome}"' if outcome else "")
    return f"sum(rate(dex_api_model_requests_total{{{match}}}[{window}]))"


def _challenger_errors_alert() -> dict[str, Any]:
    # ratios of label-less sums; a role with no error series yet counts as 0 errors, a
    # champion with no calls (a canary at 100%) as a 0 ratio
    challenger = (
        f"(({_model_requests('challenger', 'error')} or vector(0))"
        f" / {_model_requests('challenger')})"
    )
    champion = (
        f"((({_model_requests('champion', 'error')} or vector(0))"
        f" / {_model_requests('champion')}) or vector(0))"
    )
    calls = 'sum(increase(dex_api_model_requests_total{role="challenger"}[30m]))'
    return {
        "alert": "DexChallengerErrorRatioHigh",
        "expr": (
            f"{challenger} > {champion} + {CHALLENGER_ERROR_MARGIN}"
            f" and {calls} >= {CHALLENGER_MIN_CALLS}"
        ),
        "for": "15m",
        "labels": {
            "severity": "warning",
            "runbook_url": f"{RUNBOOK_BASE}#challenger-errors",
        },
        "annotations": {
            "summary": "The challenger fails more often than the champion",
            "description": (
                "{{ $value | humanizePercentage }} of the challenger's model calls "
                "failed over 30m, more than the champion's error ratio + "
                f"{CHALLENGER_ERROR_MARGIN:.0%}."
            ),
        },
    }


def _champion_mae_alert(model_mae_alert_celsius: float) -> dict[str, Any]:
    return {
        "alert": "DexChampionOnlineMaeHigh",
        "expr": (
            'max by (model_version) (dex_model_online_mae{role="champion"})'
            f" > {model_mae_alert_celsius}"
            " and on (model_version) max by (model_version) "
            f'(dex_model_online_samples{{role="champion"}}) >= {MODEL_MAE_MIN_SAMPLES}'
        ),
        "for": "30m",
        "labels": {
            "severity": "warning",
            "runbook_url": f"{RUNBOOK_BASE}#champion-online-mae",
        },
        "annotations": {
            "summary": "The champion's online error regressed",
            "description": (
                "Champion v{{ $labels.model_version }} has an online MAE of "
                '{{ $value | printf "%.2f" }} °C against the actuals '
                f"(alert above {model_mae_alert_celsius} °C)."
            ),
        },
    }


def _model_ops_alert() -> dict[str, Any]:
    cron = f'namespace="{APPS_NS}",cronjob="{MODEL_OPS_APP}"'
    last_success = f"max(kube_cronjob_status_last_successful_time{{{cron}}})"
    age = MODEL_OPS_MAX_AGE_SECONDS
    return {
        "alert": "DexModelOpsNotSucceeding",
        "expr": (
            f"time() - {last_success} > {age}"
            f" or (time() - max(kube_cronjob_created{{{cron}}}) > {age}"
            f" unless {last_success})"
        ),
        "for": "10m",
        "labels": {
            "severity": "warning",
            "runbook_url": f"{RUNBOOK_BASE}#model-ops-not-succeeding",
        },
        "annotations": {
            "summary": "The model-ops job has not succeeded for more than a day",
            "description": (
                f"CronJob {APPS_NS}/{MODEL_OPS_APP}: no successful run in "
                f"{age // 3600} h: no feedback, no challenger decision, no batch "
                "scores, no drift check."
            ),
        },
    }


def model_rules(model_mae_alert_celsius: float = MODEL_MAE_ALERT_CELSIUS) -> dict[str, Any]:
    """The rollout and feedback-loop alerts: a challenger failing more than the champion, a
    champion whose online error regressed, and the model-ops job no longer succeeding."""
    return {
        "name": "dex-model-rollout",
        "rules": [
            _challenger_errors_alert(),
            _champion_mae_alert(model_mae_alert_celsius),
            _model_ops_alert(),
        ],
    }


def _record(slo: Slo, window: str) -> str:
    return "dex:slo_errors:ratio_rate" + window


def _burn_rate_alert(slo: Slo, severity: str) -> dict[str, Any]:
    """The `page` or `ticket` alert of one SLO: any of its (long, short) window pairs burning
    above its rate."""
    conditions = []
    longest = ""
    for long, short, burn, sev, _for in BURN_ALERTS:
        if sev != severity:
            continue
        threshold = round(burn * slo.budget, 6)
        conditions.append(
            f'({_record(slo, long)}{{slo="{slo.name}"}} > {threshold}'
            f' and {_record(slo, short)}{{slo="{slo.name}"}} > {threshold})'
        )
        longest = _for
    alert_name = "".join(p.title() for p in slo.name.split("-"))
    return {
        "alert": f"Dex{alert_name}BurnRate{'Fast' if severity == 'page' else 'Slow'}",
        "expr": " or ".join(conditions),
        "for": "2m" if severity == "page" else longest,
        "labels": {
            "severity": "critical" if severity == "page" else "warning",
            "slo": slo.name,
            "runbook_url": f"{RUNBOOK_BASE}#{slo.name}",
        },
        "annotations": {
            "summary": f"{slo.name}: error budget burning too fast ({severity})",
            "description": (
                f"{slo.description}. At this burn rate the 30-day budget of "
                f"{slo.budget:.3%} is exhausted early."
            ),
        },
    }


def slo_group(slo: Slo) -> dict[str, Any]:
    """One SLO's group: its SLI over every window, then the burn-rate alerts."""
    rules: list[dict[str, Any]] = [
        {"record": record, "expr": expr} for record, expr in slo.pre_rules
    ]
    for window in WINDOWS:
        rules.append(
            {
                "record": _record(slo, window),
                "expr": slo.error_ratio.replace("{w}", window),
                "labels": {"slo": slo.name},
            }
        )
    for severity in ("page", "ticket"):
        rules.append(_burn_rate_alert(slo, severity))
    return {"name": f"dex-slo-{slo.name}", "interval": "30s", "rules": rules}


def signals_group() -> dict[str, Any]:
    """The model signals: input drift, and no model served."""
    return {
        "name": "dex-signals",
        "rules": [
            {
                "alert": "DexModelInputDrift",
                "expr": "max by (feature) (dex_model_feature_psi) > 0.25",
                "for": "1h",
                "labels": {
                    "severity": "warning",
                    "runbook_url": f"{RUNBOOK_BASE}#model-input-drift",
                },
                "annotations": {
                    "summary": "Serving inputs drifted from the training reference",
                    "description": "PSI of {{ $labels.feature }} is {{ $value }} (> 0.25).",
                },
            },
            {
                "alert": "DexApiNoModel",
                "expr": "absent(dex_api_model_info == 1)",
                "for": "10m",
                "labels": {
                    "severity": "critical",
                    "runbook_url": f"{RUNBOOK_BASE}#api-no-model",
                },
                "annotations": {
                    "summary": "The serving API reports no loaded model",
                    "description": "No API replica has exported dex_api_model_info for 10m.",
                },
            },
        ],
    }


def rule_groups(model_mae_alert_celsius: float = MODEL_MAE_ALERT_CELSIUS) -> list[dict[str, Any]]:
    """One group per SLO: its SLI over every window, then the burn-rate alerts; the model
    signals; the rollout and feedback-loop alerts (`model_rules`)."""
    return [
        *(slo_group(slo) for slo in SLOS),
        signals_group(),
        model_rules(model_mae_alert_celsius),
    ]
