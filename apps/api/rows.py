"""Vectorized validation of a request body of feature rows (`POST /v1/predict`).

pydantic validates a body row by row (about 2 µs a row), then the rows must be read back out
of their models (as much again) for the model, which wants columns. Here a body is checked
column by column instead, in a few calls whatever its size:

- the body's shape: an object with only the list field, a list of the allowed length, objects
  in it, no row with a key the row model does not have, no required key missing;
- each field's values in one pydantic call against that field's own type and constraints (so
  strictness, ranges, patterns and the refusal of NaN and infinities are pydantic's own, not a
  copy of them);
- the row model's cross-field validators, each as a check over whole columns (`ROW_RULES`).

Anything in doubt (any check failing, or a row model this module cannot mirror: a validator
it has no column rule for, aliases, computed fields) goes to the request model's own
validation, which decides: a 422 with exactly the errors FastAPI gives for a body parameter of
that model, or valid rows after all. Either way the result is a `Rows` batch: the rows as
`model_dump()` gives them, and their columns.

The route takes its body unvalidated (`documented_as`), so the OpenAPI document still shows
the request model, with its schema and example. Its JSON is parsed by pydantic-core rather than
`json.loads` (`FastJSONRoute`: a third of the time for 1,000 rows); a body pydantic-core
refuses is parsed by `json.loads` as before, which gives the same value or the same error.
"""

from __future__ import annotations

import functools
import json
import logging
import operator
import types
import typing
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any

import numpy as np
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, PlainValidator, TypeAdapter, ValidationError
from pydantic_core import from_json

from apps.api.batch import Rows

log = logging.getLogger("dex.api.rows")

Rule = Callable[[Mapping[str, Any]], bool]
"""A row model's cross-field validator over columns: True when every row passes it."""

ROW_RULES: dict[str, Rule] = {
    # FeatureRow._consistent: a day's minimum is not above its maximum
    "_consistent": lambda c: bool(np.all(c["temp_min_c"] <= c["temp_max_c"])),
}
"""Column rules by the name of the `model_validator` they mirror. A row model with a model
validator not named here is validated by pydantic alone (correct, only slower)."""

_MISSING = object()


def _as_is(value: Any) -> Any:
    return value


def loads(body: bytes) -> Any:
    """`json.loads(body)`, faster: pydantic-core's parser (called directly: through a
    `TypeAdapter(Any)` it costs half as much again), and where it refuses (a lone surrogate, a
    byte order mark, UTF-16, bad JSON) `json.loads` itself, for its value or its error. Where
    both parse, they give the same value (NaN, Infinity and 1e999 included)."""
    try:
        return from_json(body)
    except ValueError:
        return json.loads(body)


class _FastJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class FastJSONRoute(APIRoute):
    """A route whose JSON body is parsed by `loads` (FastAPI calls `request.json()`); all
    else, errors included, as FastAPI does it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_FastJSONRequest(request.scope, request.receive))

        return route


def documented_as(model: type[BaseModel]) -> PlainValidator:
    """Metadata for a body parameter (`Annotated[Any, documented_as(M), Body()]`) that
    FastAPI parses as JSON but does not validate, and that OpenAPI documents as `M` (a
    reference to its schema, with its examples), as if the parameter were declared `M`."""
    return PlainValidator(_as_is, json_schema_input_type=model)


def _is_number(annotation: Any) -> bool:
    """`float` or `float | None`."""
    if annotation is float:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return set(typing.get_args(annotation)) == {float, type(None)}
    return False


class BatchValidator:
    """Validates bodies of `request_model`: an object whose one field is a list of rows."""

    def __init__(self, request_model: type[BaseModel], rules: Mapping[str, Rule] = ROW_RULES):
        self.request_model = request_model
        ((self.field, info),) = request_model.model_fields.items()
        (row_model,) = typing.get_args(info.annotation)
        self.row_model: type[BaseModel] = row_model
        # Field(min_length=..., max_length=...) as annotated-types' MinLen / MaxLen
        lows = [getattr(m, "min_length", None) for m in info.metadata]
        highs = [getattr(m, "max_length", None) for m in info.metadata]
        self.min_rows: int = max((n for n in lows if n is not None), default=0)
        self.max_rows: int = min((n for n in highs if n is not None), default=2**62)
        fields = row_model.model_fields
        self.names = list(fields)
        self.required = [name for name, f in fields.items() if f.is_required()]
        self.numeric = frozenset(name for name, f in fields.items() if _is_number(f.annotation))
        # each field alone, with its row model's configuration (strict, no NaN, ...)
        self.adapters = {
            name: TypeAdapter(
                list[Annotated[f.annotation, f]],  # type: ignore[name-defined]
                config=row_model.model_config,
            )
            for name, f in fields.items()
        }
        self.getters = {name: operator.itemgetter(name) for name in fields}
        decorators = row_model.__pydantic_decorators__
        self.rules = [rules.get(name) for name in decorators.model_validators]
        self.unsupported = self._unsupported(rules)
        """Why bodies are validated by pydantic alone (None: the column checks are used)."""
        if self.unsupported:
            log.warning("%s: no vectorized validation: %s", row_model.__name__, self.unsupported)

    def _unsupported(self, rules: Mapping[str, Rule]) -> str | None:
        request, row = self.request_model, self.row_model
        if request.model_config.get("extra") != "forbid" or row.model_config.get("extra") != (
            "forbid"
        ):
            return "unknown keys are not refused"
        for model in (request, row):
            d = model.__pydantic_decorators__
            if d.field_validators or d.validators or d.root_validators:
                return f"{model.__name__} has field validators"
            if d.field_serializers or d.model_serializers or model.model_computed_fields:
                return f"{model.__name__} customizes its dump"
        if request.__pydantic_decorators__.model_validators:
            return f"{request.__name__} has model validators"
        missing = [n for n in row.__pydantic_decorators__.model_validators if n not in rules]
        if missing:
            return f"no column rule for {', '.join(missing)}"
        for name, f in row.model_fields.items():
            if f.alias or f.validation_alias or f.exclude:
                return f"{name} has an alias or is excluded"
            if not f.is_required() and (f.default is not None or f.default_factory is not None):
                return f"{name} defaults to something other than None"
        return None

    def parse(self, body: Any) -> Rows:
        """The rows of a valid body; else RequestValidationError, as FastAPI raises it."""
        rows = None if self.unsupported else self._columns(body)
        return rows if rows is not None else self._exact(body)

    def _columns(self, body: Any) -> Rows | None:
        """The column checks: the rows when all pass, None at the first doubt."""
        if type(body) is not dict or len(body) != 1:
            return None
        rows = body.get(self.field)
        if type(rows) is not list or not self.min_rows <= len(rows) <= self.max_rows:
            return None
        if any(type(row) is not dict for row in rows):
            return None
        n = len(rows)
        present = 0  # keys found among the fields: fewer than the rows' keys means an unknown one
        lists: list[list[Any]] = []
        columns: dict[str, Any] = {}
        try:
            for name, adapter in self.adapters.items():
                try:  # every row has the field: the common case, at C speed
                    values = list(map(self.getters[name], rows))
                    missing = 0
                except KeyError:
                    if name in self.required:
                        return None
                    values = [row.get(name, _MISSING) for row in rows]
                    missing = values.count(_MISSING)
                    values = [None if v is _MISSING else v for v in values]
                present += n - missing
                values = adapter.validate_python(values)
                lists.append(values)
                columns[name] = (
                    np.array(values, dtype=np.float64) if name in self.numeric else values
                )
        except (ValidationError, TypeError, ValueError, OverflowError):
            return None
        if present != sum(map(len, rows)):
            return None
        if not all(rule is not None and rule(columns) for rule in self.rules):
            return None
        # the dicts are made only if a row is read (the prediction path reads columns)
        return Rows(None, columns, values=dict(zip(self.names, lists, strict=True)))

    def _exact(self, body: Any) -> Rows:
        """pydantic's validation of the whole body, as FastAPI runs it for a body parameter."""
        try:
            request = self.request_model.model_validate(body, from_attributes=True)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors, body=body) from None
        records = [row.model_dump() for row in getattr(request, self.field)]
        return Rows.from_records(records, self.numeric)


@functools.cache
def validator(request_model: type[BaseModel]) -> BatchValidator:
    """The validator of `request_model` (built once)."""
    return BatchValidator(request_model)


def parse_rows(body: Any, request_model: type[BaseModel]) -> Rows:
    """A body taken with `documented_as(request_model)`, validated as that model: the rows,
    or RequestValidationError (a 422 with pydantic's errors under `body`)."""
    return validator(request_model).parse(body)
