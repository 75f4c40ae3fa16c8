"""What a run of the weather pipeline reports, and the two ways it fails."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class ReconciliationError(Exception):
    """Rows in != rows out + rows quarantined: something was lost or invented."""


class QualityGateError(Exception):
    """A table-level expectation failed: the step's own output is malformed."""


@dataclass
class Report:
    run_id: str
    lake: str
    started_at: str
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    quarantine: Counter[str] = field(default_factory=Counter)
    partitions: dict[str, list[str]] = field(default_factory=dict)
    reconciliation: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    freshness_hours: dict[str, float] = field(default_factory=dict)

    def layer(self, name: str) -> dict[str, Any]:
        return self.layers.setdefault(name, {})

    def add(self, layer: str, key: str, n: int) -> None:
        d = self.layer(layer)
        d[key] = d.get(key, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "lake": self.lake,
            "started_at": self.started_at,
            "finished_at": dt.datetime.now(dt.UTC).isoformat(),
            "layers": self.layers,
            "quarantine": {
                "rows": sum(self.quarantine.values()),
                "by_reason": dict(sorted(self.quarantine.items())),
            },
            "partitions": {k: sorted(set(v)) for k, v in self.partitions.items()},
            "reconciliation": {
                "checked": len(self.reconciliation),
                "mismatches": [r for r in self.reconciliation if not r["ok"]],
            },
            "refused": {"files": len(self.refused), "by_file": self.refused},
            "validation": self.validation,
            "profiles": self.profiles,
            "freshness_hours": self.freshness_hours,
        }
