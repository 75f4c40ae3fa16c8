"""Every repository path the docs and the code's comments name exists: a file moved without
its mentions is caught here, not by a reader following a stale pointer."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

ROOTS = "apps|stacks|components|toolchain|contracts|policies|dex|tests|benchmarks|docs"
MENTION = re.compile(
    rf"(?<![\w/.-])((?:{ROOTS})/[A-Za-z0-9_./-]+\.(?:py|md|json|yaml|yml|toml|txt))\b"
)
SCANNED = re.compile(
    r"^(README\.md|Makefile|pyproject\.toml|\.github/.*\.ya?ml|docs/.*\.md|"
    r"(apps|stacks|components|toolchain|contracts|policies|dex|benchmarks)/.*\.(py|md))$"
)


def mentions(text: str) -> set[str]:
    return {m.group(1).rstrip(".") for m in MENTION.finditer(text)}


def test_every_path_the_docs_and_comments_name_exists() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    missing = sorted(
        f"{name}: {path}"
        for name in tracked
        if SCANNED.match(name) and (ROOT / name).is_file()
        for path in mentions((ROOT / name).read_text(encoding="utf-8"))
        if not (ROOT / path).exists()
    )
    assert not missing, "paths named but not in the tree:\n" + "\n".join(missing)


def test_the_scan_sees_a_stale_mention_and_ignores_urls() -> None:
    text = (
        "the lake (`apps/common/lake.py`), see https://github.com/o/dex/blob/main/docs/x.md "
        "and apps/shared/lake.py."
    )
    found = mentions(text)
    assert found == {"apps/common/lake.py", "apps/shared/lake.py"}
    assert not (ROOT / "apps/common/lake.py").exists()
