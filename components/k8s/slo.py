"""Service level objectives as Prometheus rules: one error-ratio SLI per SLO, recorded over
the standard windows, and the multi-window, multi-burn-rate alerts of the Google SRE
workbook (page: 2% of a 30-day budget in 1 h or 5% in 6 h; ticket: 10% in 3 days).

Pure data: `rule_groups()` is what the PrometheusRule objects carry, and what the tests hand
to `promtool check rules` / `promtool test rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def _record(slo: Slo, window: str) -> str:
    return "dex:slo_errors:ratio_rate" + window


def rule_groups() -> list[dict[str, Any]]:
    """One group per SLO: its SLI over every window, then the burn-rate alerts."""
    groups = []
    for slo in SLOS:
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
            rules.append(
                {
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
            )
        groups.append({"name": f"dex-slo-{slo.name}", "interval": "30s", "rules": rules})
    groups.append(
        {
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
    )
    return groups
