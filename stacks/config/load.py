"""`load_config`: the only way the program reads its configuration."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from stacks.config.errors import ConfigError, choice_message, explain, unknown_key_message
from stacks.config.profiles import CLOUD_PROFILES, ENV_PROFILES, deep_merge
from stacks.config.stack import STACK_MODELS, AwsStackConfig, GcpStackConfig, StackConfig


def _decode(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Pulumi hands structured config to the program as JSON strings: decode those."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        out[key] = value
        if isinstance(value, str) and value[:1] in ("{", "["):
            # Undecodable text stays a string: the model then names the key and the type.
            with contextlib.suppress(json.JSONDecodeError):
                out[key] = json.loads(value)
    return out


_TOP_KEYS = {cloud: tuple(model.model_fields) for cloud, model in STACK_MODELS.items()}


def load_config(
    raw: Mapping[str, Any], stack: str | None = None
) -> AwsStackConfig | GcpStackConfig:
    """Build the typed config from the user's `dex:*` keys (without the `dex:` prefix): the
    model of the cloud `dex:cloud` names.

    Raises `ConfigError` naming every bad key; never lets a pydantic traceback escape.
    """
    user = _decode(raw)
    cloud, env = user.get("cloud"), user.get("environment")
    problems: list[str] = []
    model = STACK_MODELS.get(cloud) if isinstance(cloud, str) else None
    known = (
        _TOP_KEYS[cloud]
        if model is not None and isinstance(cloud, str)
        else tuple(dict.fromkeys(k for keys in _TOP_KEYS.values() for k in keys))
    )
    for key in user:
        if key not in known:
            problems.append(unknown_key_message((key,), model or StackConfig))
    if "cloud" not in user:
        problems.append("dex:cloud is required; allowed: 'aws', 'gcp'")
    elif model is None:
        problems.append(choice_message("dex:cloud", cloud, tuple(STACK_MODELS)))
    if "environment" not in user:
        problems.append("dex:environment is required; allowed: 'dev', 'prod'")
    elif env not in ENV_PROFILES:
        problems.append(choice_message("dex:environment", env, tuple(ENV_PROFILES)))
    if "region" not in user:
        problems.append("dex:region is required (for example eu-west-1 or europe-west1)")
    if problems:
        raise ConfigError(problems, stack)
    assert model is not None
    assert isinstance(cloud, str)
    assert isinstance(env, str)
    merged = deep_merge(deep_merge(ENV_PROFILES[env], CLOUD_PROFILES[(cloud, env)]), user)
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(explain(exc, model, merged), stack) from None
