"""How a bad config is reported: one `ConfigError` whose lines each name the key, the value
given and what is allowed, translated from pydantic's errors (no traceback reaches a user)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails


class ConfigError(Exception):
    """The stack config is invalid. `problems` holds one line per bad key."""

    def __init__(self, problems: list[str], stack: str | None = None) -> None:
        self.problems = problems
        self.stack = stack
        where = f" for stack '{stack}'" if stack else ""
        super().__init__(f"invalid DEX config{where}:\n" + "\n".join(f"  - {p}" for p in problems))


class CrossFieldError(ValueError):
    """Raised by a model validator with every problem it found, each already a full line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def choice_message(key: str, value: object, allowed: tuple[str, ...]) -> str:
    near = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" did you mean '{near[0]}'?" if near else ""
    return f"{key} = {value!r} is not allowed;{hint} allowed: " + ", ".join(
        repr(a) for a in allowed
    )


def model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The section model at `loc` under `root`, if `loc` names one."""
    model: type[BaseModel] = root
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return None
        model = field.annotation
    return model


def unknown_key_message(loc: tuple[int | str, ...], model: type[BaseModel] | None) -> str:
    key = "dex:" + ".".join(str(p) for p in loc)
    allowed = sorted(model.model_fields) if model else []
    near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"; did you mean dex:{'.'.join([*map(str, loc[:-1]), near[0]])}?" if near else ""
    return f"{key} is not a known key{hint} (known here: {', '.join(allowed)})"


_TYPE_WORDS = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "float_parsing": "a number",
    "float_type": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "ip_v4_network": "an IPv4 CIDR such as 10.0.0.0/16",
}


def _value_at(data: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def explain(exc: ValidationError, root: type[BaseModel], merged: Mapping[str, Any]) -> list[str]:
    """One line per problem pydantic found validating `merged` against `root`."""
    problems: list[str] = []
    for err in exc.errors():
        problems += _explain_one(err, root, merged)
    return problems


def _explain_one(err: ErrorDetails, root: type[BaseModel], merged: Mapping[str, Any]) -> list[str]:
    loc = tuple(err["loc"])
    key = "dex:" + ".".join(str(p) for p in loc) if loc else "dex"
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        return [unknown_key_message(loc, model_at(root, loc[:-1]))]
    if kind == "missing":
        return [f"{key} is required"]
    if kind == "value_error":
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, CrossFieldError):
            return cause.problems
        msg = str(cause) if cause is not None else err["msg"]
        return [f"{key}: {msg}"]
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return [f"{key} = {value!r} is not allowed; allowed: {expected}"]
    if kind in _TYPE_WORDS:
        shown = _value_at(merged, loc) if value is None else value
        return [f"{key} = {shown!r}: expected {_TYPE_WORDS[kind]}"]
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return [f"{key} = {value!r}: {err['msg'].lower()}"]
    if kind in ("too_short", "string_too_short"):
        return [f"{key} = {value!r}: must not be empty"]
    return [f"{key} = {value!r}: {err['msg']}"]
