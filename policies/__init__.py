"""DEX's policy pack: plain rules over resource types and properties.

`all_rules()` loads every rule module once and returns the rules in id order. The CrossGuard
pack (`policies/__main__.py`) and the offline runner (`policies/runner.py`) both use it.
"""

from __future__ import annotations

from policies.model import RULES, Rule


def all_rules() -> list[Rule]:
    from policies import (  # noqa: F401 - they register rules
        rules_aws,
        rules_aws_access,
        rules_aws_audit,
        rules_aws_cluster,
        rules_aws_data,
        rules_aws_identity,
        rules_aws_lifecycle,
        rules_gcp,
        rules_gcp_access,
        rules_gcp_audit,
        rules_gcp_cluster,
        rules_gcp_data,
        rules_gcp_lifecycle,
        rules_gcp_supply,
        rules_helm,
        rules_k8s,
        rules_k8s_network,
        rules_k8s_pods,
        rules_k8s_rbac,
    )

    seen: set[str] = set()
    for rule in RULES:
        if rule.id in seen:
            raise ValueError(f"duplicate policy id {rule.id}")
        seen.add(rule.id)
    return sorted(RULES, key=lambda r: r.id)
