"""The project's own supply chain: Dependabot covers every manifest DEX pins (the Python
dependencies, the workflows' actions, each app's base image), and requirements.lock, which
Dependabot cannot read, satisfies pyproject.toml so that a Dependabot update of pyproject.toml
fails CI until the lock follows (`make lock`). The actions' SHA pins and the lock's
vulnerability audit are checked in test_workflows.py, the base images' digests in
test_dockerfiles.py."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

BIN = Path(sys.executable).parent
DEPENDABOT = ROOT / ".github" / "dependabot.yml"


def _config() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(DEPENDABOT.read_text())  # type: ignore[no-any-return]


def _directories(ecosystem: str) -> set[str]:
    found: set[str] = set()
    for update in _config()["updates"]:
        if update["package-ecosystem"] == ecosystem:
            found |= set(update.get("directories", [])) | (
                {update["directory"]} if "directory" in update else set()
            )
    return found


def _tracked(pattern: str) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", pattern],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return [ROOT / f for f in listed if (ROOT / f).is_file()]


def _dir(path: Path) -> str:
    rel = path.parent.relative_to(ROOT).as_posix()
    return "/" if rel == "." else f"/{rel}"


def test_dependabot_config_matches_its_schema() -> None:
    out = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(DEPENDABOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_schema_check_catches_a_misspelled_key(tmp_path: Path) -> None:
    broken = tmp_path / "dependabot.yml"
    text = DEPENDABOT.read_text()
    broken.write_text(text.replace("package-ecosystem: docker", "ecosystem: docker"))
    out = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0


def test_dependabot_covers_every_dockerfile_directory() -> None:
    dockerfiles = _tracked("apps/*/Dockerfile")
    assert len(dockerfiles) == 3
    assert _directories("docker") == {_dir(p) for p in dockerfiles}  # none missing, none stale


def test_dependabot_covers_the_workflows() -> None:
    """The github-actions ecosystem reads .github/workflows from the directory `/`."""
    assert list((ROOT / ".github" / "workflows").glob("*.yml"))
    assert _directories("github-actions") == {"/"}


def test_dependabot_covers_every_python_manifest_with_a_pin() -> None:
    """pyproject.toml (the lock's source) and every requirements file that pins a version.
    Dependabot's pip ecosystem reads requirement files named *.txt or *.in only
    (dependabot-core python/lib/dependabot/python/shared_file_fetcher.rb), so the lock itself
    is out of its reach: the next test and the PR's pip-audit job cover it."""
    wanted = {"/"}
    for path in _tracked("*requirements*.txt") + _tracked("*requirements*.in"):
        lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
        if any("==" in line for line in lines):
            wanted.add(_dir(path))
    assert wanted == _directories("pip")
    assert not (ROOT / "requirements.lock").name.endswith((".txt", ".in"))


def test_every_update_is_scheduled_with_a_cooldown() -> None:
    for update in _config()["updates"]:
        assert update["schedule"]["interval"] in {"daily", "weekly", "monthly"}, update
        assert update["cooldown"]["default-days"] >= 3, update


def _lock() -> dict[str, str]:
    pins = {}
    for raw in (ROOT / "requirements.lock").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"requirements.lock: {raw!r} is not an exact pin"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def lock_mismatches(requirements: list[str], pins: dict[str, str]) -> list[str]:
    """The requirements (PEP 508 strings) the lock leaves out or pins outside their range."""
    bad = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": "dev"}):
            continue
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            bad.append(f"{text}: not in requirements.lock")
        elif not req.specifier.contains(version, prereleases=True):
            bad.append(f"{text}: requirements.lock has {version}")
    return bad


def test_the_lock_satisfies_pyproject() -> None:
    """Every dependency and dev tool of pyproject.toml is pinned in the lock, inside its range.
    A Dependabot pull request that moves a pin or a range in pyproject.toml fails here until
    `make lock` is run on its branch."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    assert len(requirements) > 40
    assert not lock_mismatches(requirements, _lock())


def test_the_lock_check_sees_a_moved_pin() -> None:
    pins = {"ruff": "0.17.6", "pulumi-aws": "7.51.0"}
    assert not lock_mismatches(["ruff==0.17.6", "pulumi_aws>=7.51,<8"], pins)
    assert lock_mismatches(["ruff==0.17.7", "pulumi-aws>=8,<9", "checkov==3.3.30"], pins) == [
        "ruff==0.17.7: requirements.lock has 0.17.6",
        "pulumi-aws>=8,<9: requirements.lock has 7.51.0",
        "checkov==3.3.30: not in requirements.lock",
    ]
