"""Paths handed to plugins: every docker-build context and Dockerfile resolves from the folder
the engine starts plugins in (the program's `main`)."""

from __future__ import annotations

from pathlib import Path

from contracts.deployment import Plan
from stacks.stackfiles import PROJECT_DIR, plugin_dir
from toolchain.first_deploy.model import Finding


def plugin_paths(plan: Plan, project_dir: Path = PROJECT_DIR) -> list[Finding]:
    """docker-build resolves its context and Dockerfile from the plugin's working directory
    (the program's `main` folder), not from the project root."""
    base = plugin_dir(project_dir)
    findings: list[Finding] = []
    for res in plan.of_type("docker-build:index:Image"):
        context = (res.inputs.get("context") or {}).get("location")
        dockerfile = (res.inputs.get("dockerfile") or {}).get("location")
        if not isinstance(context, str) or not (base / context).is_dir():
            findings.append(
                Finding(
                    "paths", res.urn, f"build context {context!r} is no folder seen from {base}"
                )
            )
            continue
        if dockerfile is None:
            dockerfile_path = base / context / "Dockerfile"
        elif isinstance(dockerfile, str):
            dockerfile_path = base / dockerfile
        else:
            continue
        if not dockerfile_path.is_file():
            findings.append(
                Finding("paths", res.urn, f"Dockerfile {dockerfile!r} is no file seen from {base}")
            )
        elif not dockerfile_path.resolve().is_relative_to((base / context).resolve()):
            findings.append(
                Finding("paths", res.urn, f"Dockerfile {dockerfile!r} is outside its context")
            )
        if res.inputs.get("buildOnPreview", True) is not False:
            findings.append(
                Finding(
                    "paths", res.urn,
                    "builds during `pulumi preview` (buildOnPreview): a preview would need Docker "
                    "and push credentials",
                )
            )  # fmt: skip
    return findings
