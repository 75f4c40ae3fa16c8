"""Job matrices: every entry a `strategy.matrix` expands to."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any


def matrix_entries(job: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Every matrix entry of a job (`[{}]` without a matrix); None if computed at run time."""
    matrix = (job.get("strategy") or {}).get("matrix")
    if matrix is None:
        return [{}]
    if not isinstance(matrix, Mapping):
        return None
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    if any(not isinstance(v, list) for v in axes.values()):
        return None
    entries: list[dict[str, Any]] = []
    if axes:
        entries = [dict(zip(axes, c, strict=True)) for c in itertools.product(*axes.values())]
    for exclude in matrix.get("exclude") or []:
        entries = [e for e in entries if any(e.get(k) != v for k, v in exclude.items())]
    for include in matrix.get("include") or []:
        matched = False
        for entry in entries if axes else []:  # without axes, each include is an entry
            if all(entry.get(k) == v for k, v in include.items() if k in axes):
                entry.update({k: v for k, v in include.items() if k not in axes})
                matched = True
        if not matched:
            entries.append(dict(include))
    return entries or [{}]
