"""`decide`: the challenger's absolute errors against the champion's over the window, the
one-sided tests that judge them, and the aliases, tags and history the verdict moves (see
`apps.training.ops`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from apps.shared.metrics import push
from apps.training.model_ops.common import CHALLENGER, CHAMPION, OpsError, now, ops_lake
from apps.training.model_ops.feedback import window, window_dict
from apps.training.model_ops.registry import (
    alias_version,
    compact,
    record_champion_change,
    registry_client,
)
from apps.training.settings import ModelOpsSettings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing the challenger's absolute errors with the champion's."""

    verdict: str
    """promote, retire or wait."""
    test: str
    """wilcoxon (paired), mannwhitneyu (two samples) or none (too few samples)."""
    samples: int
    """Pairs for wilcoxon; the smaller of the two sample sizes otherwise."""
    p_smaller: float | None
    """p-value of "the challenger's errors are smaller"."""
    p_larger: float | None
    """p-value of "the challenger's errors are larger"."""
    champion_mae: float | None
    challenger_mae: float | None
    reason: str


def _p(value: float) -> float:
    return 1.0 if math.isnan(value) else float(value)  # NaN: no information, no evidence


def compare(
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    *,
    min_pairs: int,
    min_samples: int,
    alpha: float,
) -> Comparison:
    """Champion and challenger rows with an actual (`request_id`, `location`, `for_date`,
    `abs_error`): the Wilcoxon signed-rank test on the pairs (the same request and location
    scored by both) when there are `min_pairs`, else the Mann-Whitney U test when each
    model has `min_samples`; one-sided both ways at `alpha`."""
    keys = ["request_id", "location", "for_date"]
    a = champion[champion["request_id"] != ""].drop_duplicates(keys)
    b = challenger[challenger["request_id"] != ""].drop_duplicates(keys)
    pairs = a[[*keys, "abs_error"]].merge(b[[*keys, "abs_error"]], on=keys, suffixes=("_a", "_b"))
    if len(pairs) >= min_pairs:
        p_smaller, p_larger = _wilcoxon(pairs)
        test, n = "wilcoxon", len(pairs)
        champ_mae = float(pairs["abs_error_a"].mean())
        chal_mae = float(pairs["abs_error_b"].mean())
    elif len(champion) >= min_samples and len(challenger) >= min_samples:
        x = challenger["abs_error"].to_numpy(float)
        y = champion["abs_error"].to_numpy(float)
        p_smaller, p_larger = _mann_whitney(x, y)
        test, n = "mannwhitneyu", min(len(x), len(y))
        champ_mae, chal_mae = float(y.mean()), float(x.mean())
    else:
        return Comparison(
            "wait",
            "none",
            len(pairs),
            None,
            None,
            float(champion["abs_error"].mean()) if len(champion) else None,
            float(challenger["abs_error"].mean()) if len(challenger) else None,
            f"too few samples: {len(pairs)} pairs (need {min_pairs}), "
            f"{len(champion)} champion and {len(challenger)} challenger "
            f"(need {min_samples} each)",
        )
    if p_smaller < alpha:
        verdict = "promote"
    elif p_larger < alpha:
        verdict = "retire"
    else:
        verdict = "wait"
    reason = (
        f"{test} on {n} {'pairs' if test == 'wilcoxon' else 'samples each'}: MAE challenger "
        f"{chal_mae:.3f} vs champion {champ_mae:.3f}; p(smaller)={p_smaller:.3g}, "
        f"p(larger)={p_larger:.3g}, alpha={alpha}"
    )
    return Comparison(verdict, test, n, p_smaller, p_larger, champ_mae, chal_mae, reason)


def _wilcoxon(pairs: pd.DataFrame) -> tuple[float, float]:
    """p-values of "the challenger's errors are smaller" and "... larger" on paired samples
    (`abs_error_a` the champion's, `abs_error_b` the challenger's): the signed-rank test on
    their differences, none of which can be told apart when they are all zero."""
    from scipy.stats import wilcoxon  # type: ignore[import-untyped]

    diff = pairs["abs_error_b"].to_numpy(float) - pairs["abs_error_a"].to_numpy(float)
    if np.allclose(diff, 0.0):
        return 1.0, 1.0
    return (
        _p(wilcoxon(diff, alternative="less").pvalue),
        _p(wilcoxon(diff, alternative="greater").pvalue),
    )


def _mann_whitney(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """p-values of "the challenger's errors `x` are smaller than the champion's `y`" and
    "... larger", on the two samples (the Mann-Whitney U test)."""
    from scipy.stats import mannwhitneyu

    return (
        _p(mannwhitneyu(x, y, alternative="less").pvalue),
        _p(mannwhitneyu(x, y, alternative="greater").pvalue),
    )


def render_decision(decision: dict[str, Any]) -> bytes:
    registry = CollectorRegistry()
    info = Gauge(
        "dex_model_decision",
        "The last champion/challenger decision (1 for the decision taken)",
        ["decision", "test"],
        registry=registry,
    )
    p_value = Gauge(
        "dex_model_decision_p_value",
        "p-value of the last decision's one-sided tests",
        ["alternative"],
        registry=registry,
    )
    samples = Gauge("dex_model_decision_samples", "Samples compared", registry=registry)
    mae = Gauge(
        "dex_model_decision_mae", "MAE on the samples compared", ["role"], registry=registry
    )
    champion = Gauge(
        "dex_model_champion_version", "The champion's version after the decision", registry=registry
    )
    when = Gauge(
        "dex_model_decision_timestamp_seconds", "When the last decision ran", registry=registry
    )
    info.labels(decision["decision"], decision.get("test") or "none").set(1)
    for alternative in ("smaller", "larger"):
        value = decision.get(f"p_{alternative}")
        if value is not None:
            p_value.labels(alternative).set(value)
    samples.set(decision.get("samples") or 0)
    for role in (CHAMPION, CHALLENGER):
        value = decision.get(f"{role}_mae")
        if value is not None:
            mae.labels(role).set(value)
    after = decision.get("champion_after")
    if after is not None and str(after).isdigit():
        champion.set(int(after))
    when.set(now().timestamp())
    return generate_latest(registry)


def decide(settings: ModelOpsSettings) -> dict[str, Any]:
    """Compare the current challenger with the current champion over the window and act."""
    lake = ops_lake(settings)
    client = registry_client(settings)
    name = settings.model_name
    at = now()
    champion_v = alias_version(client, name, CHAMPION)
    challenger_v = alias_version(client, name, CHALLENGER)
    frame, end = window(lake, settings)
    decision: dict[str, Any] = {
        "model_name": name,
        "at": at.isoformat(timespec="seconds"),
        "champion": champion_v,
        "challenger": challenger_v,
        "window": window_dict(end, settings),
        "alpha": settings.decision_alpha,
        "min_pairs": settings.decision_min_pairs,
        "min_samples": settings.decision_min_samples,
        "champion_after": champion_v,
    }
    if champion_v is None:
        decision |= {"decision": "no_champion", "reason": f"{name} has no champion"}
    elif challenger_v is None or challenger_v == champion_v:
        decision |= {"decision": "no_challenger", "reason": f"{name} has no challenger"}
    else:
        done = frame[frame["abs_error"].notna()]
        result = compare(
            done[done["model_version"] == champion_v],
            done[done["model_version"] == challenger_v],
            min_pairs=settings.decision_min_pairs,
            min_samples=settings.decision_min_samples,
            alpha=settings.decision_alpha,
        )
        decision |= {
            "decision": result.verdict,
            **{k: v for k, v in asdict(result).items() if k != "verdict"},
        }
        _act(client, settings, decision, champion_v, challenger_v)
    if champion_v is not None:  # else the registered model may not exist at all
        summary = {k: decision.get(k) for k in ("at", "decision", "champion", "challenger")}
        client.set_registered_model_tag(name, "dex.last_decision", compact(summary))
    lake.write_json(decision, "_runs", "model-decisions", f"{at:%Y%m%dT%H%M%S%fZ}.json")
    body = render_decision(decision)
    lake.write_bytes(body, "_metrics", "model-decision.prom")
    decision["metrics_push"] = push(body, "dex-model-decision") or "ok"
    return decision


def _act(
    client: MlflowClient,
    settings: ModelOpsSettings,
    decision: dict[str, Any],
    champion_v: str,
    challenger_v: str,
) -> None:
    """Move the aliases the decision calls for, then tag the challenger's version with it."""
    name = settings.model_name
    verdict = decision["decision"]
    if verdict in ("promote", "retire") and (
        alias_version(client, name, CHAMPION) != champion_v
        or alias_version(client, name, CHALLENGER) != challenger_v
    ):
        raise OpsError(
            f"the aliases of {name} moved while deciding (champion v{champion_v}, challenger "
            f"v{challenger_v} when read): nothing changed; run the decision again"
        )
    if verdict == "promote":
        client.set_registered_model_alias(name, CHAMPION, challenger_v)
        client.delete_registered_model_alias(name, CHALLENGER)
        record_champion_change(
            client,
            name,
            version=challenger_v,
            previous=champion_v,
            kind="promotion",
            by="dex model ops decide",
            reason=decision["reason"],
            at=decision["at"],
            limit=settings.history_limit,
        )
        decision["champion_after"] = challenger_v
    elif verdict == "retire":
        client.delete_registered_model_alias(name, CHALLENGER)
    for key, value in _decision_tags(decision, champion_v).items():
        client.set_model_version_tag(name, challenger_v, key, value)


def _decision_tags(decision: dict[str, Any], champion_v: str) -> dict[str, str]:
    """The `dex.decision*` tags that record a decision on the challenger's version."""
    tags = {
        "dex.decision": decision["decision"],
        "dex.decision.at": decision["at"],
        "dex.decision.test": decision["test"],
        "dex.decision.samples": str(decision["samples"]),
        "dex.decision.reason": decision["reason"][:500],
        "dex.decision.window": f"{decision['window']['start']}..{decision['window']['end']}",
        "dex.decision.champion": champion_v,
    }
    p_values = [p for p in (decision["p_smaller"], decision["p_larger"]) if p is not None]
    if p_values:
        tags["dex.decision.p_value"] = f"{min(p_values):.6g}"
        tags["dex.decision.p_smaller"] = f"{decision['p_smaller']:.6g}"
        tags["dex.decision.p_larger"] = f"{decision['p_larger']:.6g}"
    return tags
