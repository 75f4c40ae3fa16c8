"""Fixtures of the policy rules, per area: each module here defines `CASES` like
tests/unit/test_policies.py's own (rule id -> (compliant resources, non-compliant resources[,
pack config])); `collected()` merges them, refusing a rule id defined twice. Modules whose
name starts with `_` hold shared fixture pieces."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def collected() -> dict[str, Any]:
    cases: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared pieces, not an area
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for rule_id, case in module.CASES.items():
            if rule_id in cases:
                raise ValueError(f"fixtures for {rule_id} defined twice ({info.name})")
            cases[rule_id] = case
    return cases
