"""Run Checkov (pinned, in its own environment) over converted plans and read its findings.

Checkov pins its own versions of boto3 and a hundred other packages, which the project's
lock cannot share, so it lives in `.venv-checkov` (`make checkov`, from
`requirements-checkov.lock`), like Airflow in `.venv-airflow`. `DEX_CHECKOV` names another
`checkov` executable. One run covers any number of plans: each gets a folder, and every
finding comes back with the URN of the resource it is about.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.checkov.convert import Converted

ROOT = Path(__file__).resolve().parents[2]
VERSION = "3.3.30"
FRAMEWORKS = ("terraform_plan", "kubernetes")


class CheckovError(Exception):
    """Checkov is missing or did not finish."""


@dataclass(frozen=True)
class Finding:
    check_id: str
    title: str
    urn: str
    type: str
    passed: bool
    framework: str


@dataclass
class Scan:
    """Checkov's verdicts on one plan."""

    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    """The whole Checkov run's time (shared when one run covered several plans)."""

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if not f.passed]

    @property
    def passed(self) -> list[Finding]:
        return [f for f in self.findings if f.passed]


def executable() -> Path:
    path = Path(os.environ.get("DEX_CHECKOV") or ROOT / ".venv-checkov" / "bin" / "checkov")
    if not path.exists():
        raise CheckovError(
            f"Checkov is not installed at {path}: run `make checkov` (it installs checkov=="
            f"{VERSION} into .venv-checkov from requirements-checkov.lock), or set DEX_CHECKOV"
        )
    return path


def write(folder: Path, converted: Converted) -> None:
    """The files Checkov reads for one plan: `tfplan.json` and `k8s/*.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tfplan.json").write_text(json.dumps(converted.terraform, indent=1))
    if converted.manifests:
        (folder / "k8s").mkdir(exist_ok=True)
        for name, manifest in converted.manifests.items():
            (folder / "k8s" / name).write_text(json.dumps(manifest, indent=1))


def _reports(stdout: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(stdout)
    except json.JSONDecodeError:
        raise CheckovError(f"Checkov's output is not JSON: {stdout[:500]!r}") from None
    return [r for r in (doc if isinstance(doc, list) else [doc]) if "results" in r]


def _run(
    checkov: Path, folder: str, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own pinned checkov, fixed arguments
        [str(checkov), "-d", folder, "--framework", *FRAMEWORKS, "-o", "json", "--skip-download"],
        capture_output=True, text=True, env=dict(env), cwd=folder, check=False, timeout=timeout,
    )  # fmt: skip


def scan(plans: Mapping[str, Converted], timeout: float = 900) -> dict[str, Scan]:
    """Checkov over every plan of `plans` (label -> converted plan) in one run, stopped after
    `timeout` seconds (Checkov has hung on objects it did not expect)."""
    checkov = executable()
    out = {label: Scan() for label in plans}
    with tempfile.TemporaryDirectory(prefix="dex-checkov-") as tmp:
        for label, converted in plans.items():
            write(Path(tmp) / label, converted)
        env = {**os.environ, "LOG_LEVEL": "ERROR", "BC_SKIP_MAPPING": "TRUE"}
        started = time.perf_counter()
        try:
            run = _run(checkov, tmp, env, timeout)
        except subprocess.TimeoutExpired:
            raise CheckovError(f"Checkov did not finish in {timeout:.0f} s") from None
        seconds = time.perf_counter() - started
    if run.returncode not in (0, 1):
        raise CheckovError(f"Checkov exited with {run.returncode}: {run.stderr[-2000:]}")
    for report in _reports(run.stdout):
        framework = report["check_type"]
        for passed, key in ((True, "passed_checks"), (False, "failed_checks")):
            for record in report["results"].get(key, []):
                parts = Path(record["file_path"]).parts
                label = parts[1]
                converted = plans[label]
                where = record["resource"] if framework == "terraform_plan" else parts[-1]
                urn = converted.urns.get(where, where)
                out[label].findings.append(
                    Finding(record["check_id"], record["check_name"], urn,
                            converted.types.get(urn, ""), passed, framework)
                )  # fmt: skip
    for result in out.values():
        result.seconds = seconds
    return out
