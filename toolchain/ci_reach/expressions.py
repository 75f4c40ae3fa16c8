"""GitHub Actions expressions, evaluated as far as the workflow determines them: matrix
values, literals, `vars.NAME` / `vars[...]` (as the variable's name), `format`,
`startsWith`, `endsWith`, `contains`, `fromJSON`, comparisons and `&&` / `||` / `!`;
anything only the run knows is UNKNOWN."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class _Unknown:
    """A value only the run knows (a secret, a step output, a variable's content)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass(frozen=True)
class VarRef:
    """`vars.NAME`: a repository variable, known by name only."""

    name: str


class _Vars:
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,])"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_-]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"cannot read expression {text!r} at {pos}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _truthy(value: Any) -> Any:
    if value is UNKNOWN or isinstance(value, VarRef):
        return UNKNOWN
    return bool(value) and value != 0


def as_text(value: Any) -> Any:
    """A value as the text an expression turns it into (UNKNOWN if only the run knows it)."""
    if value is UNKNOWN or isinstance(value, VarRef):
        return UNKNOWN
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Parser:
    """A recursive-descent evaluator of GitHub Actions expressions (the subset above)."""

    def __init__(self, text: str, matrix: Mapping[str, Any]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.matrix = matrix

    def peek(self) -> str:
        return self.toks[self.i][1] if self.i < len(self.toks) else ""

    def take(self) -> tuple[str, str]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Any:
        value = self.or_()
        if self.i != len(self.toks):
            raise ValueError(f"unexpected {self.peek()!r}")
        return value

    def or_(self) -> Any:
        left = self.and_()
        while self.peek() == "||":
            self.take()
            right = self.and_()
            t = _truthy(left)
            left = left if t is True else right if t is False else UNKNOWN
        return left

    def and_(self) -> Any:
        left = self.cmp()
        while self.peek() == "&&":
            self.take()
            right = self.cmp()
            t = _truthy(left)
            left = right if t is True else left if t is False else UNKNOWN
        return left

    def cmp(self) -> Any:
        left = self.unary()
        if self.peek() in ("==", "!=", "<", ">", "<=", ">="):
            op = self.take()[1]
            right = self.unary()
            a, b = as_text(left), as_text(right)
            if a is UNKNOWN or b is UNKNOWN:
                return UNKNOWN
            if op in ("==", "!="):
                return (a.lower() == b.lower()) == (op == "==")
            return UNKNOWN
        return left

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            t = _truthy(self.unary())
            return UNKNOWN if t is UNKNOWN else not t
        return self.postfix()

    def postfix(self) -> Any:
        value = self.primary()
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                value = self.member(value, self.take()[1])
            else:
                key = self.or_()
                if self.take()[1] != "]":
                    raise ValueError("expected ]")
                value = self.member(value, as_text(key))
        return value

    def member(self, value: Any, key: Any) -> Any:
        if key is UNKNOWN:
            return UNKNOWN
        if isinstance(value, _Vars):
            return VarRef(str(key))
        if isinstance(value, Mapping):
            for k, v in value.items():
                if str(k).lower() == str(key).lower():
                    return v
            return None if value is self.matrix else UNKNOWN
        return UNKNOWN

    def primary(self) -> Any:
        kind, tok = self.take()
        if kind == "str":
            return tok[1:-1].replace("''", "'")
        if kind == "num":
            return float(tok)
        if tok == "(":
            value = self.or_()
            self.take()
            return value
        if kind != "ident":
            raise ValueError(f"unexpected {tok!r}")
        if self.peek() == "(":
            self.take()
            args: list[Any] = []
            while self.peek() != ")":
                args.append(self.or_())
                if self.peek() == ",":
                    self.take()
            self.take()
            return _call(tok.lower(), args)
        low = tok.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "null":
            return None
        if low == "matrix":
            return self.matrix
        if low == "vars":
            return _Vars()
        return UNKNOWN


def _call(name: str, args: list[Any]) -> Any:
    texts = [as_text(a) for a in args]
    if name in ("startswith", "endswith", "contains") and len(args) == 2:
        if isinstance(args[0], list):
            if UNKNOWN in [as_text(a) for a in args[0]] or texts[1] is UNKNOWN:
                return UNKNOWN
            return texts[1].lower() in [str(as_text(a)).lower() for a in args[0]]
        if UNKNOWN in texts:
            return UNKNOWN
        a, b = texts[0].lower(), texts[1].lower()
        return {"startswith": a.startswith(b), "endswith": a.endswith(b), "contains": b in a}[name]
    if name == "format" and args:
        if UNKNOWN in texts:
            return UNKNOWN
        return re.sub(r"\{(\d+)\}", lambda m: texts[int(m.group(1)) + 1], texts[0])
    if name == "fromjson" and len(args) == 1 and texts[0] is not UNKNOWN:
        try:
            return json.loads(texts[0])
        except ValueError:
            return UNKNOWN
    return UNKNOWN


def evaluate(expr: str, matrix: Mapping[str, Any]) -> Any:
    """The value of one expression (without `${{ }}`); UNKNOWN if the run decides it."""
    try:
        return _Parser(expr, matrix).parse()
    except (ValueError, IndexError):
        return UNKNOWN


_INTERPOLATION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def resolve(value: Any, matrix: Mapping[str, Any]) -> Any:
    """A workflow value with its `${{ }}` evaluated: one whole expression keeps its value
    (a VarRef, a bool), text with several becomes text, UNKNOWN if any part is unknown."""
    if not isinstance(value, str):
        return value
    whole = _INTERPOLATION.fullmatch(value.strip())
    if whole:
        return evaluate(whole.group(1), matrix)
    parts: list[str] = []
    pos = 0
    for match in _INTERPOLATION.finditer(value):
        part = as_text(evaluate(match.group(1), matrix))
        if part is UNKNOWN:
            return UNKNOWN
        parts += [value[pos : match.start()], part]
        pos = match.end()
    return "".join([*parts, value[pos:]])


def run_script(value: Any, matrix: Mapping[str, Any]) -> str:
    """A `run:` script with what the workflow determines substituted; the rest left as is."""

    def sub(match: re.Match[str]) -> str:
        part = as_text(evaluate(match.group(1), matrix))
        return match.group(0) if part is UNKNOWN else str(part)

    return _INTERPOLATION.sub(sub, str(value or ""))


def condition(value: Any, matrix: Mapping[str, Any]) -> Any:
    """An `if:` (bare or wrapped in `${{ }}`): True, False or UNKNOWN."""
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    whole = _INTERPOLATION.fullmatch(text)
    return _truthy(evaluate(whole.group(1) if whole else text, matrix))
