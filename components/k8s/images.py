"""The apps' images: built from `apps/<app>/Dockerfile` with pulumi-docker-build and pushed
to the stack's registry. Workloads reference the pushed digest, never a tag alone.

Tags are immutable in both registries, so each build is tagged with a digest of its build
inputs (the app's files, the shared code, the lock file): the same sources give the same tag,
a changed source a new one. Each app's `Dockerfile.dockerignore` admits exactly its
BUILD_INPUTS (a test holds them equal), so a change to one app neither rebuilds nor re-pushes
another's image under an existing, immutable tag.

Paths: the engine starts the docker-build plugin in the program's `main` folder (`stacks/`),
so the context and Dockerfile are given relative to that folder (`context`, from the project
file), never to the project root. Nothing is built during `pulumi preview`
(`build_on_preview=False`): a preview needs neither Docker nor registry credentials.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

from components.contracts import APP_IMAGES, RegistryOutputs

REPO_ROOT = Path(__file__).resolve().parents[2]

BUILD_INPUTS: dict[str, tuple[str, ...]] = {
    "api": ("apps/__init__.py", "apps/api", "apps/shared", "contracts", "requirements.lock"),
    # the model-ops job (`apps.training.ops`) scores with the serving API's model code
    "training": (
        "apps/__init__.py",
        "apps/training",
        "apps/api",
        "apps/shared",
        "contracts",
        "requirements.lock",
    ),
    "pipelines": (
        "apps/__init__.py",
        "apps/pipelines",
        "apps/shared",
        "contracts",
        "requirements.lock",
    ),
}
"""What each image is built from (relative to the repository root)."""


def source_tag(app: str, root: Path = REPO_ROOT) -> str:
    """The tag an app's image is pushed under: `src-` and 16 hex digits of its sources."""
    return "src-" + source_digest(app, root)[:16]


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


def pushed_ref(app: str, repository: str, tag: str, digest: str) -> str:
    """`repository@digest` of an image pushed under its source tag. Not pushed yet: a
    preview shows `repository:tag` (and warns); an update stops, naming the command."""
    if digest:
        return f"{repository}@{digest}"
    message = (
        f"the {app} image {repository}:{tag} is not in the registry: run "
        "`dex images push --stack <stack>` first (or deploy with dex:platform.image_source build)"
    )
    if not pulumi.runtime.is_dry_run():
        raise ValueError(message)
    pulumi.log.warn(message)
    return f"{repository}:{tag}"


def _pushed_ref_of(app: str, tag: str, repo_and_digest: list[str]) -> str:
    return pushed_ref(app, repo_and_digest[0], tag, repo_and_digest[1])


@dataclass(frozen=True)
class AppImagesArgs:
    registry: RegistryOutputs
    context: str
    """The repository root as the plugin's working directory sees it
    (`stacks.stackfiles.build_context()`: `..` with `main: stacks/`)."""
    source: str = "build"
    """`build` (pulumi-docker-build builds and pushes) or `registry` (pushed before by `dex
    images push`; the registry contract carries the digests)."""
    root: Path = REPO_ROOT
    """The repository root on this machine, whose sources give the tags."""


class AppImages(pulumi.ComponentResource):
    """One image per app. Type token `dex:k8s:AppImages`."""

    images: dict[str, AppImage]

    def __init__(
        self, name: str, args: AppImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:k8s:AppImages", name, None, opts)
        if args.source == "registry":
            self.images = pushed_images(args.registry, args.root)
        else:
            self.images = self._build(name, args)
        self.register_outputs({app: img.ref for app, img in self.images.items()})

    def _build(self, name: str, args: AppImagesArgs) -> dict[str, AppImage]:
        """Build and push each image, tagged with its sources' digest."""
        registry, context = args.registry, args.context
        provider = docker_build.Provider(
            f"{name}-docker-build", opts=pulumi.ResourceOptions(parent=self)
        )
        images: dict[str, AppImage] = {}
        for app in APP_IMAGES:
            tag = source_tag(app, args.root)
            repo = registry.repository_urls[app]
            image = docker_build.Image(
                f"{name}-{app}",
                # relative to the plugin's working directory: the plan is the same on every
                # machine, and the path resolves where the engine runs the plugin
                context=docker_build.BuildContextArgs(location=context),
                dockerfile=docker_build.DockerfileArgs(location=f"{context}/apps/{app}/Dockerfile"),
                build_on_preview=False,
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
            images[app] = AppImage(
                repository=repo,
                tag=tag,
                digest=image.digest,
                ref=pulumi.Output.concat(repo, "@", image.digest),
            )
        return images


def pushed_images(registry: RegistryOutputs, root: Path = REPO_ROOT) -> dict[str, AppImage]:
    """The images pushed before under their source tags, by the digests the registry
    contract looked up."""
    images: dict[str, AppImage] = {}
    for app in APP_IMAGES:
        if app not in registry.image_digests:
            raise ValueError(
                f"image source `registry` needs the digest of {app}'s pushed image; "
                "the registry contract has none"
            )
        repo = registry.repository_urls[app]
        tag = source_tag(app, root)
        digest = registry.image_digests[app]
        images[app] = AppImage(
            repository=repo,
            tag=tag,
            digest=digest,
            ref=pulumi.Output.all(repo, digest).apply(functools.partial(_pushed_ref_of, app, tag)),
        )
    return images
