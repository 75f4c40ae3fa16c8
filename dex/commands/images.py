"""`dex images`: build and push the apps' images for a prebuilt-image deploy."""

from __future__ import annotations

from typing import Annotated

import typer

from dex.commands.common import fail, out

images_app = typer.Typer(help="The apps' images: push them for a prebuilt-image deploy.")


@images_app.command("push")
def images_push(
    stack: Annotated[
        str | None, typer.Option(help="The stack whose registry (output registry_urls) to use.")
    ] = None,
    registry_url: Annotated[
        list[str] | None,
        typer.Option(
            "--registry-url",
            help="APP=REPOSITORY_URL, for each app, instead of reading the stack's outputs.",
        ),
    ] = None,
) -> None:
    """Build and push the apps' images under their source tags, skipping tags the registry
    already holds; then `pulumi up` with `dex:platform.image_source=registry` deploys them."""
    from dex.images import ImageError, push
    from dex.outputs import StackOutputError, stack_outputs

    urls: dict[str, str] = {}
    for item in registry_url or []:
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            fail(f"--registry-url takes APP=REPOSITORY_URL, got {item!r}")
        urls[name] = url
    if not urls:
        if stack is None:
            fail("say where to push: --stack STACK, or --registry-url APP=URL for each app")
        try:
            found = stack_outputs(stack, "pass --registry-url APP=URL for each app")
        except StackOutputError as exc:
            fail(str(exc), code=1)
        urls = dict(found.get("registry_urls") or {})
    try:
        results = push(urls)
    except ImageError as exc:
        fail(str(exc), code=1)
    for result in results:
        verb = "pushed" if result.pushed else "already there"
        out.print(f"{result.app}: {result.ref} ({verb})", highlight=False)
