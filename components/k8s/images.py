"""The apps' images: built from `apps/<app>/Dockerfile` with pulumi-docker-build and pushed
to the stack's registry. Workloads reference the pushed digest, never a tag alone.

Tags are immutable in both registries, so each build is tagged with a digest of its build
inputs (the app's files, the shared code, the lock file): the same sources give the same tag,
a changed source a new one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

from components.contracts import APP_IMAGES, RegistryOutputs

REPO_ROOT = Path(__file__).resolve().parents[2]

BUILD_INPUTS: dict[str, tuple[str, ...]] = {
    "api": ("apps/__init__.py", "apps/api", "apps/pipelines", "requirements.lock"),
    "training": ("apps/__init__.py", "apps/training", "apps/pipelines", "requirements.lock"),
    "pipelines": ("apps/__init__.py", "apps/pipelines", "requirements.lock"),
}
"""What each image is built from (relative to the repository root)."""


def source_digest(app: str, root: Path = REPO_ROOT) -> str:
    """A digest of an image's build inputs: paths and bytes, caches excluded, sorted."""
    sha = hashlib.sha256()
    for rel in BUILD_INPUTS[app]:
        path = root / rel
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            sha.update(f.relative_to(root).as_posix().encode() + b"\x00")
            sha.update(f.read_bytes() + b"\x00")
    return sha.hexdigest()


@dataclass(frozen=True)
class AppImage:
    repository: pulumi.Output[str]
    tag: str
    digest: pulumi.Output[str]
    ref: pulumi.Output[str]
    """`repository@sha256:...`: what pod specs use."""


class AppImages(pulumi.ComponentResource):
    """One image per app. Type token `dex:k8s:AppImages`."""

    def __init__(
        self,
        name: str,
        registry: RegistryOutputs,
        opts: pulumi.ResourceOptions | None = None,
        root: Path = REPO_ROOT,
    ) -> None:
        super().__init__("dex:k8s:AppImages", name, None, opts)
        provider = docker_build.Provider(
            f"{name}-docker-build", opts=pulumi.ResourceOptions(parent=self)
        )
        self.images: dict[str, AppImage] = {}
        for app in APP_IMAGES:
            tag = "src-" + source_digest(app, root)[:16]
            repo = registry.repository_urls[app]
            image = docker_build.Image(
                f"{name}-{app}",
                # relative to the project directory `pulumi up` runs in: the plan is the
                # same on every machine
                context=docker_build.BuildContextArgs(location="."),
                dockerfile=docker_build.DockerfileArgs(location=f"apps/{app}/Dockerfile"),
                platforms=[docker_build.Platform.LINUX_AMD64],
                push=True,
                tags=[pulumi.Output.concat(repo, ":", tag)],
                registries=[
                    docker_build.RegistryArgs(
                        address=registry.server,
                        username=registry.username,
                        password=registry.password,
                    )
                ],
                labels={"org.opencontainers.image.revision": tag},
                opts=pulumi.ResourceOptions(parent=self, provider=provider),
            )
            self.images[app] = AppImage(
                repository=repo,
                tag=tag,
                digest=image.digest,
                ref=pulumi.Output.concat(repo, "@", image.digest),
            )
        self.register_outputs({app: img.ref for app, img in self.images.items()})
