"""The import arrows between the packages ([tool.importlinter] in pyproject.toml), checked by
`lint-imports` in `make test`. Each contract is proved here on a copy of the tree with the
one import it forbids added: a contract that cannot break is not a check."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dex", "toolchain", "stacks", "components", "policies", "apps", "contracts")
LINT = Path(sys.executable).with_name("lint-imports")

# contract id -> (module that gains the import, the import it is forbidden)
DEFECTS = {
    "layers": ("components/k8s/base.py", "import stacks.config"),
    "k8s-cloud-agnostic": ("components/k8s/namespaces.py", "import components.aws.kms"),
    "apps-no-pulumi": ("apps/api/rollout.py", "import pulumi"),
    "policies-no-components": ("policies/rules_k8s.py", "import components.contracts"),
    "cli-on-top": ("apps/pipelines/units.py", "import dex.outputs"),
    "contracts-standalone": ("contracts/model.py", "import pydantic"),
    "apps-shared-library": ("apps/shared/schema.py", "import apps.pipelines.units"),
    "apps-independent": ("apps/pipelines/units.py", "import apps.api.rows"),
    "program-without-toolchain": ("stacks/regions.py", "import toolchain.mocks"),
}


def _tree(tmp_path: Path) -> Path:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def _contract_names() -> dict[str, str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c["name"] for c in config["contracts"]}


@pytest.mark.unit
def test_the_tree_keeps_every_import_arrow(tmp_path: Path) -> None:
    result = _lint(_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(DEFECTS)} kept, 0 broken" in result.stdout


@pytest.mark.unit
def test_each_contract_breaks_on_the_import_it_forbids(tmp_path: Path) -> None:
    """Every defect injected at once, one per contract: each contract reports BROKEN, and
    only because of its own defect."""
    names = _contract_names()
    assert set(names) == set(DEFECTS), "a contract without an injected-defect test"
    tree = _tree(tmp_path)
    for module, statement in DEFECTS.values():
        path = tree / module
        path.write_text(path.read_text() + f"\n{statement}  # injected\n")
    result = _lint(tree)
    assert result.returncode != 0
    for contract, (module, _statement) in DEFECTS.items():
        assert re.search(rf"{re.escape(names[contract])} BROKEN", result.stdout), contract
        importer = module.removesuffix(".py").replace("/", ".")
        assert importer in result.stdout, (contract, importer)
    assert f"0 kept, {len(DEFECTS)} broken" in result.stdout
