"""`dex images push`: builds and pushes each app under its source tag with docker buildx,
skips a tag the registry already holds, and says plainly what stopped it. `docker` and
`pulumi` are stand-in scripts on PATH that record their arguments (no Docker engine here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.k8s.images import source_tag
from dex.cli import app

pytestmark = pytest.mark.unit

URLS = {a: f"registry.example/dex-dev/{a}" for a in ("api", "pipelines", "training")}


def _stand_in(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A docker whose registry holds only the api image; every call is logged."""
    log = tmp_path / "docker.log"
    held = f"{URLS['api']}:{source_tag('api')}"
    _stand_in(
        tmp_path / "bin",
        "docker",
        f'echo "$@" >> {log}\n'
        'if [ "$2" = imagetools ]; then\n'
        f'  if [ "$4" = "{held}" ]; then echo "Name: $4"; exit 0; fi\n'
        '  echo "ERROR: $4: not found" >&2; exit 1\n'
        "fi\n"
        "exit 0\n",
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    return log


def test_push_builds_what_the_registry_lacks_under_the_source_tags(docker: Path) -> None:
    args = [f"--registry-url={a}={u}" for a, u in URLS.items()]
    result = CliRunner().invoke(app, ["images", "push", *args])
    assert result.exit_code == 0, result.output
    assert f"api: {URLS['api']}:{source_tag('api')} (already there)" in result.stdout
    builds = [line.split() for line in docker.read_text().splitlines() if " build " in line]
    assert [b[b.index("--tag") + 1] for b in builds] == [
        f"{URLS[a]}:{source_tag(a)}" for a in ("pipelines", "training")
    ]
    for build in builds:
        assert build[:2] == ["buildx", "build"]
        assert {"--push", "--platform", "linux/amd64"} <= set(build)
        app_name = build[build.index("--tag") + 1].split("/")[-1].split(":")[0]
        assert build[build.index("--file") + 1].endswith(f"apps/{app_name}/Dockerfile")


def test_push_reads_the_registry_from_the_stack_outputs(docker: Path, tmp_path: Path) -> None:
    outputs = {"registry_urls": URLS}
    _stand_in(tmp_path / "bin", "pulumi", f"cat <<'EOF'\n{json.dumps(outputs)}\nEOF\n")
    result = CliRunner().invoke(app, ["images", "push", "--stack", "dev"])
    assert result.exit_code == 0, result.output
    assert "pipelines: registry.example/dex-dev/pipelines:src-" in result.stdout


def test_a_failed_build_says_which_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in(
        tmp_path / "bin",
        "docker",
        'if [ "$2" = imagetools ]; then echo "not found" >&2; exit 1; fi\n'
        'echo "ERROR: failed to solve: denied: not authorized" >&2; exit 1\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    args = [f"--registry-url={a}={u}" for a, u in URLS.items()]
    result = CliRunner().invoke(app, ["images", "push", *args])
    assert result.exit_code == 1
    assert "building and pushing registry.example/dex-dev/api:src-" in result.output
    assert "not authorized" in result.output


def test_bad_input_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    runner = CliRunner()
    assert "say where to push" in runner.invoke(app, ["images", "push"]).output
    bad = runner.invoke(app, ["images", "push", "--registry-url", "api"])
    assert bad.exit_code == 2
    assert "APP=REPOSITORY_URL" in bad.output
    missing = runner.invoke(app, ["images", "push", "--registry-url", "api=x"])
    assert "no repository URL for pipelines, training" in missing.output
    no_cli = runner.invoke(app, ["images", "push", "--stack", "dev"])
    assert no_cli.exit_code == 1
    assert "needs the Pulumi CLI" in no_cli.output
