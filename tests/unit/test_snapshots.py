"""Plan snapshots: a change to the infrastructure shows up as a reviewed diff of these files.

After an intended change, refresh them with
`DEX_UPDATE_SNAPSHOTS=1 pytest tests/unit/test_snapshots.py` and review `git diff tests/snapshots`.
"""

from __future__ import annotations

import os

import pytest

from contracts.deployment import dump_plan, parse_plan
from tests.conftest import ROOT, STACKS
from toolchain.diff import diff_plans, render_text
from toolchain.synth import synthesize

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("stack", STACKS)
def test_plan_matches_snapshot(stack: str) -> None:
    path = ROOT / "tests" / "snapshots" / f"{stack}.json"
    doc = synthesize(stack)
    text = dump_plan(doc)
    if os.environ.get("DEX_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert path.is_file(), f"no snapshot for {stack}: run with DEX_UPDATE_SNAPSHOTS=1"
    expected = path.read_text()
    if text != expected:
        import json

        change = diff_plans(parse_plan(json.loads(expected), "snapshot"), parse_plan(doc, "now"))
        pytest.fail(
            f"plan of {stack} differs from tests/snapshots/{stack}.json; if intended, run "
            f"DEX_UPDATE_SNAPSHOTS=1 and review the diff:\n{render_text(change)[:4000]}"
        )
