"""`dex images push`: build the apps' images and push them under their source tags, for a
deploy that uses them prebuilt (`dex:platform.image_source: registry`).

CI's in-network runners have no Docker daemon, so `deploy.yml` pushes the images from a
GitHub-hosted runner first (the registries are public endpoints, reached with the stack's own
deploy role) and the in-network `pulumi up` only looks their digests up. The tags are the
same digests of the sources `pulumi up` would build under (`components.k8s.images`): an image
already in the registry under its tag is not built again (the registries' tags are immutable).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from components.contracts import APP_IMAGES
from components.k8s.images import REPO_ROOT, source_tag


class ImageError(Exception):
    """What stopped a push, in one sentence."""


@dataclass(frozen=True)
class Push:
    app: str
    ref: str
    """`repository:tag`."""
    pushed: bool
    """False when the registry already held the tag."""


def _docker() -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise ImageError("docker is not on PATH: `dex images push` builds with docker buildx")
    return docker


def _run(args: list[str], what: str, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # noqa: S603 (docker with arguments built here)
            args, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise ImageError(f"{what} did not finish within {timeout:.0f} s") from None


def exists(docker: str, ref: str) -> bool:
    """Whether the registry holds `ref` (repository:tag), asked without pulling it."""
    out = _run([docker, "buildx", "imagetools", "inspect", ref], f"inspecting {ref}", 120)
    if out.returncode == 0:
        return True
    text = (out.stderr + out.stdout).lower()
    if "not found" in text or "manifest unknown" in text:
        return False
    raise ImageError(
        f"cannot tell whether {ref} exists: {out.stderr.strip() or out.stdout.strip()}"
    )


def push(
    repository_urls: dict[str, str], root: Path = REPO_ROOT, platform: str = "linux/amd64"
) -> list[Push]:
    """Build and push every app whose source tag the registry does not hold yet."""
    missing = [app for app in APP_IMAGES if app not in repository_urls]
    if missing:
        raise ImageError(
            f"no repository URL for {', '.join(missing)} (the stack output `registry_urls`)"
        )
    docker = _docker()
    done = []
    for app in APP_IMAGES:
        ref = f"{repository_urls[app]}:{source_tag(app, root)}"
        if exists(docker, ref):
            done.append(Push(app, ref, pushed=False))
            continue
        build = [
            docker, "buildx", "build", "--platform", platform, "--push",
            "--file", str(root / "apps" / app / "Dockerfile"),
            "--tag", ref,
            "--label", f"org.opencontainers.image.revision={source_tag(app, root)}",
            str(root),
        ]  # fmt: skip
        out = _run(build, f"building {app}", 3600)
        if out.returncode != 0:
            tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-20:])
            raise ImageError(f"building and pushing {ref} failed:\n{tail}")
        done.append(Push(app, ref, pushed=True))
    return done
