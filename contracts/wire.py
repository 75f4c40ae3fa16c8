"""Pulumi's wire format, as it stands in a plan or a `pulumi stack export`: the toolchain
writes it (`contracts/deployment.py`, `toolchain/synth.py`) and the policy pack reads it
(`policies/model.py`)."""

from __future__ import annotations

from collections.abc import Mapping

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""Pulumi's wire sentinel for a value not known until the resource exists."""
SIG_KEY = "4dabf18193072939515e22adb298388d"
"""Pulumi's key marking a special value (secret, asset, resource reference)."""
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
"""The signature of a secret value."""


def is_secret(value: object) -> bool:
    """A secret envelope (`{SIG_KEY: SECRET_SIG, ...}`)."""
    return isinstance(value, Mapping) and value.get(SIG_KEY) == SECRET_SIG


def is_unknown(value: object) -> bool:
    """A value the engine only knows once the resource exists."""
    return value == UNKNOWN
