"""The Pulumi program: typed stack config in, the cloud's composition out, stack outputs.

`main()` is what `pulumi up` runs (through `stacks/__main__.py`) and what `dex plan` runs
under the mock engine. The config is read and validated before any resource is registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from stacks.config import AwsStackConfig, ConfigError, GcpStackConfig, load_config


def read_raw_config() -> dict[str, Any]:
    """The `dex:*` keys the engine handed the program, without the `dex:` prefix."""
    merged: Mapping[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {k.split(":", 1)[1]: v for k, v in merged.items() if k.startswith("dex:")}


def main() -> None:
    try:
        cfg = load_config(read_raw_config(), stack=pulumi.get_stack())
    except ConfigError as exc:
        # RunError: the CLI prints the message alone, without a Python traceback.
        raise pulumi.RunError(str(exc)) from None
    for key, value in sorted(build(cfg).items()):
        pulumi.export(key, value)


def build(cfg: AwsStackConfig | GcpStackConfig) -> dict[str, Any]:
    """Compose the platform for the configured cloud; returns the stack outputs."""
    if isinstance(cfg, AwsStackConfig):
        from stacks.aws import build_aws

        return build_aws(cfg)
    from stacks.gcp import build_gcp

    return build_gcp(cfg)
