"""The Checkov findings DEX accepts: `policies/checkov-accepted.yaml`.

Each entry names a check, the stacks it is accepted on, optionally the resources (shell
patterns on the resource's name, the last segment of its URN), and why. A finding no entry
covers fails like a mandatory rule. An entry that covers nothing on the stacks it names is
stale and reported, so the file cannot rot.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ACCEPTED = ROOT / "policies" / "checkov-accepted.yaml"
_CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")
_KEYS = {"check", "stacks", "resources", "reason"}


class AcceptedError(Exception):
    """The accepted-findings file is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class Acceptance:
    check: str
    stacks: tuple[str, ...]
    resources: tuple[str, ...]
    reason: str

    def covers(self, check_id: str, stack: str | None, urn: str) -> bool:
        name = urn.rsplit("::", 1)[-1]
        return (
            check_id == self.check
            and (stack in self.stacks or "*" in self.stacks)
            and any(fnmatch.fnmatchcase(name, p) for p in self.resources)
        )


def _entry(i: int, raw: Any, stacks: Sequence[str] | None) -> Acceptance:
    where = f"{ACCEPTED.name}: accepted[{i}]"
    if not isinstance(raw, dict):
        raise AcceptedError(f"{where}: expected a mapping with check, stacks and reason")
    unknown = set(raw) - _KEYS
    if unknown:
        raise AcceptedError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    check = raw.get("check")
    if not isinstance(check, str) or not _CHECK_ID.match(check):
        raise AcceptedError(f"{where}: `check` must be a Checkov id like CKV_AWS_18, got {check!r}")
    reason = raw.get("reason")
    if not isinstance(reason, str) or len(reason.strip()) < 20:
        raise AcceptedError(f"{where} ({check}): `reason` must say why, in a sentence")
    names = raw.get("stacks")
    if not isinstance(names, list) or not names or not all(isinstance(s, str) for s in names):
        raise AcceptedError(f"{where} ({check}): `stacks` must be a list of stack names or ['*']")
    if stacks is not None:
        bad = [s for s in names if s != "*" and s not in stacks]
        if bad:
            raise AcceptedError(
                f"{where} ({check}): no stack named {', '.join(bad)} (stacks: {', '.join(stacks)})"
            )
    resources = raw.get("resources", ["*"])
    if not isinstance(resources, list) or not all(isinstance(p, str) for p in resources):
        raise AcceptedError(f"{where} ({check}): `resources` must be a list of name patterns")
    return Acceptance(check, tuple(names), tuple(resources), " ".join(reason.split()))


def load(path: Path = ACCEPTED, stacks: Sequence[str] | None = None) -> list[Acceptance]:
    """The entries of `path`; `stacks`, when given, are the names an entry may use."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except yaml.YAMLError as exc:
        raise AcceptedError(f"{path.name}: not YAML ({exc})") from None
    entries = (doc or {}).get("accepted", []) if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise AcceptedError(f"{path.name}: expected a mapping with a list `accepted`")
    return [_entry(i, raw, stacks) for i, raw in enumerate(entries)]


def reason_for(
    entries: Iterable[Acceptance], check_id: str, stack: str | None, urn: str
) -> str | None:
    """Why the finding is accepted, or None when it is not."""
    return next((e.reason for e in entries if e.covers(check_id, stack, urn)), None)
