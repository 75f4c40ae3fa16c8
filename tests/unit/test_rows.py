"""The vectorized validation of /v1/predict bodies decides exactly as pydantic did, and the
faster JSON parser reads exactly what `json.loads` read.

Every body goes through two FastAPI apps in-process: the reference takes `body: PredictRequest`
(today's validation, by FastAPI and pydantic), the other parses with `FastJSONRoute`, takes the
body unvalidated and calls `parse_rows`. Both must answer alike: the same status, the same
errors (type, location, message, input), the same rows (values and their types). Valid bodies
must also take the column path (else the equivalence proves nothing about it)."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, model_validator

from apps.api.app import MAX_ROWS, FeatureRow, PredictRequest
from apps.api.batch import Rows
from apps.api.rows import BatchValidator, FastJSONRoute, documented_as, loads, parse_rows, validator

pytestmark = pytest.mark.unit

ROW: dict[str, Any] = {
    "location": "berlin",
    "temp_max_c": 5.0,
    "temp_min_c": 1.0,
    "temp_mean_c": 3.0,
    "precipitation_mm": 0.0,
    "humidity_mean_pct": 70.0,
    "wind_max_ms": 4.0,
    "temp_max_lag1": 4.0,
    "doy_sin": 0.1,
    "doy_cos": 0.99,
}


def _app(route: Any, route_class: type[APIRoute] = APIRoute) -> TestClient:
    app = FastAPI()
    router = APIRouter(route_class=route_class)
    seen: list[Any] = []

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        seen.append(exc.errors())
        return JSONResponse({"errors": len(exc.errors())}, status_code=422)

    router.post("/p")(route)
    app.include_router(router)
    client = TestClient(app)
    client.seen = seen  # type: ignore[attr-defined]
    return client


async def _reference(body: PredictRequest) -> JSONResponse:
    return JSONResponse({"rows": repr([r.model_dump() for r in body.rows])})


async def _columns(body: Annotated[Any, documented_as(PredictRequest), Body()]) -> JSONResponse:
    rows = parse_rows(body, PredictRequest)
    assert isinstance(rows, Rows)
    return JSONResponse({"rows": repr(list(rows))})


REFERENCE, COLUMNS = _app(_reference), _app(_columns, FastJSONRoute)


def _same_answer(content: bytes, headers: dict[str, str] | None = None) -> int:
    """Both apps' answer to this body: equal, or the test fails. Returns the status."""
    headers = {"Content-Type": "application/json"} if headers is None else headers
    expected = REFERENCE.post("/p", content=content, headers=headers)
    got = COLUMNS.post("/p", content=content, headers=headers)
    assert got.status_code == expected.status_code, (content[:300], got.text, expected.text)
    if expected.status_code == 422:
        # repr: NaN inputs compare equal by text; types (5 vs 5.0) are compared too
        want, have = REFERENCE.seen.pop(), COLUMNS.seen.pop()  # type: ignore[attr-defined]
        assert repr(have) == repr(want), content[:300]
    else:
        assert got.json() == expected.json(), content[:300]
    return expected.status_code


# -- strategies ------------------------------------------------------------------------------
RANGES = {
    name: (
        next(m.ge for m in f.metadata if hasattr(m, "ge")),
        next(m.le for m in f.metadata if hasattr(m, "le")),
    )
    for name, f in FeatureRow.model_fields.items()
    if name not in ("location", "date")
}
OPTIONAL = [n for n, f in FeatureRow.model_fields.items() if not f.is_required()]


@st.composite
def valid_rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {"location": draw(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True))}
    for name, (lo, hi) in RANGES.items():
        value: Any = draw(
            st.floats(lo, hi, allow_nan=False) | st.integers(math.ceil(lo), math.floor(hi))
        )
        if name in OPTIONAL:
            choice = draw(st.sampled_from(["value", "null", "absent"]))
            if choice == "absent":
                continue
            value = None if choice == "null" else value
        row[name] = value
    if row["temp_min_c"] > row["temp_max_c"]:
        row["temp_min_c"], row["temp_max_c"] = row["temp_max_c"], row["temp_min_c"]
    day = draw(st.none() | st.dates(dt.date(1990, 1, 1), dt.date(2100, 1, 1)))
    if day is not None:
        row["date"] = day.isoformat()
    return row


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["berlin", "2024-06-01", "5.0", "Berlin", "berlin\n", "1e999", ""]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
fields = st.sampled_from([*FeatureRow.model_fields, "colour", "Location", ""])


@st.composite
def mutated_rows(draw: st.DrawFn) -> Any:
    row = draw(valid_rows())
    kind = draw(st.sampled_from(["set", "extra", "drop", "invert", "edge", "not a row"]))
    if kind == "set":
        row[draw(fields)] = draw(json_values)
    elif kind == "extra":
        row[draw(st.text(max_size=8).filter(lambda k: k not in FeatureRow.model_fields))] = None
    elif kind == "drop":
        row.pop(draw(st.sampled_from(sorted(row))), None)
    elif kind == "invert":
        row["temp_min_c"], row["temp_max_c"] = row["temp_max_c"] + 1, row["temp_min_c"]
    elif kind == "edge":
        name, (lo, hi) = draw(st.sampled_from(sorted(RANGES.items())))
        row[name] = draw(
            st.sampled_from([lo, hi, lo - 1e-9, hi + 1e-9, math.nextafter(hi, math.inf), -0.0])
        )
    else:
        return draw(json_values)
    return row


bodies = st.one_of(
    st.builds(lambda rows: {"rows": rows}, st.lists(valid_rows(), min_size=1, max_size=6)),
    st.builds(
        lambda good, bad, at: {"rows": [*good[:at], bad, *good[at:]]},
        st.lists(valid_rows(), max_size=4),
        mutated_rows(),
        st.integers(0, 4),
    ),
    st.builds(
        lambda rows, extra: {"rows": rows, **extra},
        st.lists(valid_rows(), max_size=2),
        st.dictionaries(st.text(max_size=5), json_values, max_size=2),
    ),
    json_values,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_every_body_gets_the_answer_pydantic_gave(body: Any) -> None:
    text = json.dumps(body, allow_nan=True)
    if _same_answer(text.encode()) == 200:
        parsed = json.loads(text)
        assert validator(PredictRequest)._columns(parsed) is not None, body  # the fast path ran


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(valid_rows(), min_size=1, max_size=30))
def test_valid_rows_take_the_column_path_and_give_pydantics_rows(rows: list[Any]) -> None:
    body = json.loads(json.dumps({"rows": rows}))
    fast = validator(PredictRequest)._columns(body)
    assert fast is not None
    exact = validator(PredictRequest)._exact(body)
    assert repr(list(fast)) == repr(list(exact))  # values and types (5 -> 5.0, dates)
    for name in fast.columns:
        assert repr(fast.columns[name]) == repr(exact.columns[name])


@pytest.mark.parametrize(
    "text",
    [
        '{"rows":[' + json.dumps(ROW).replace("5.0", token, 1) + "]}"
        for token in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "true", '"5.0"', "5")
    ]
    + [
        '{"rows":[' + json.dumps(ROW).replace('"berlin"', '"\\ud800"') + "]}",
        '{"rows":[{"\\ud800": 1}]}',
        '{"rows":[' + json.dumps(ROW)[:-1] + ', "temp_max_c": "x"}]}',  # the same key twice
        '{"rows":[' + json.dumps(ROW)[:-1] + ', "temp_max_c": 6.0}]}',
        '{"rows":[' + json.dumps(ROW).replace('"berlin"', '"b\\u0065rlin"') + "]}",
        '{"rows":[' + json.dumps(ROW).replace('"location"', '"locatio\\u006e"') + "]}",
        '{"rows":[' + json.dumps(ROW).replace('"berlin"', '"berlin\\n"') + "]}",
        '{"rows":[' + json.dumps({**ROW, "temp_max_lag2": None}) + "]}",
        '{"rows":[' + json.dumps({**ROW, "colour": "blue"}) + "]}",
        '{"rows":[' + json.dumps({**ROW, "colour": None}) + "]}",
        '{"rows":[' + json.dumps({k: v for k, v in ROW.items() if k != "doy_cos"}) + "]}",
        '{"rows":[' + json.dumps({**ROW, "doy_cos": None}) + "]}",
        '{"rows":[' + json.dumps({**ROW, "date": "2024-02-30"}) + "]}",
        '{"rows":[' + json.dumps({**ROW, "date": 20240601}) + "]}",
        '{"rows":[' + json.dumps({**ROW, "temp_max_c": 10**400}) + "]}",
        '{"rows":[' + json.dumps({**ROW, "temp_max_c": 70, "temp_min_c": 70}) + "]}",
        '{"rows":[]}',
        '{"rows":[{}]}',
        '{"rows":null}',
        '{"rows":{}}',
        "null",
        "[]",
        '"rows"',
        "{not json",
        "",
        '{"rows":[' + json.dumps(ROW) + "]} trailing",
    ],
)
def test_odd_bodies_get_the_answer_pydantic_gave(text: str) -> None:
    _same_answer(text.encode())


def test_content_types_are_read_as_fastapi_reads_them() -> None:
    body = json.dumps({"rows": [ROW]}).encode()
    for headers in ({}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x+json"}):
        _same_answer(body, headers)
    _same_answer(json.dumps({"rows": [ROW]}).encode("utf-16"), {})


def test_too_many_rows_are_one_error_before_any_row_is_validated() -> None:
    text = '{"rows":[' + ",".join(["{}"] * (MAX_ROWS + 1)) + "]}"
    assert _same_answer(text.encode()) == 422
    with pytest.raises(RequestValidationError) as caught:
        parse_rows(json.loads(text), PredictRequest)
    assert [e["type"] for e in caught.value.errors()] == ["too_long"]


def test_rows_carry_their_columns() -> None:
    body = {"rows": [ROW, {**ROW, "temp_max_lag1": None, "date": "2024-06-01"}]}
    rows = parse_rows(body, PredictRequest)
    assert rows[1]["date"] == dt.date(2024, 6, 1)
    assert rows[0] == FeatureRow.model_validate(ROW).model_dump()
    assert rows.columns["location"] == ["berlin", "berlin"]
    lag = rows.columns["temp_max_lag1"]
    assert lag[0] == 4.0
    assert math.isnan(lag[1])
    assert rows.matrix(["temp_max_c", "temp_max_lag1"]).shape == (2, 2)


class _Strange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    a: float = Field(ge=0)
    b: float = 0.0

    @model_validator(mode="after")
    def _unknown_rule(self) -> _Strange:
        if self.a == 1:
            raise ValueError("a must not be 1")
        return self


class _StrangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[_Strange] = Field(min_length=1)


def test_a_row_model_it_cannot_mirror_is_validated_by_pydantic_alone() -> None:
    strange = BatchValidator(_StrangeRequest)
    assert strange.unsupported is not None
    assert "_unknown_rule" in strange.unsupported or "defaults" in strange.unsupported
    with pytest.raises(RequestValidationError) as caught:
        strange.parse({"rows": [{"a": 1}]})
    assert caught.value.errors()[0]["loc"] == ("body", "rows", 0)
    assert list(strange.parse({"rows": [{"a": 2}]})) == [{"a": 2.0, "b": 0.0}]


def test_the_real_row_model_takes_the_column_path() -> None:
    assert validator(PredictRequest).unsupported is None


def test_the_openapi_document_still_describes_the_request_body(tmp_path: Any) -> None:
    from apps.api.app import create_app
    from apps.api.settings import ApiSettings

    settings_ = ApiSettings(
        tracking_uri=f"sqlite:///{tmp_path}/m.db", model_cache_dir=str(tmp_path)
    )
    spec = create_app(settings_).app.openapi()  # type: ignore[attr-defined]
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictRequest"
    }
    schema = spec["components"]["schemas"]["PredictRequest"]
    assert schema["examples"][0]["rows"][0]["location"] == "berlin"
    assert schema["properties"]["rows"]["items"] == {"$ref": "#/components/schemas/FeatureRow"}
    assert schema["properties"]["rows"]["maxItems"] == MAX_ROWS


# -- the JSON parser ---------------------------------------------------------------------------
def _same_parse(text: bytes) -> None:
    try:
        expected: Any = ("value", json.loads(text))
    except ValueError as exc:
        expected = ("error", type(exc), str(exc))
    try:
        got: Any = ("value", loads(text))
    except ValueError as exc:
        got = ("error", type(exc), str(exc))
    assert repr(got) == repr(expected), text[:200]


@settings(max_examples=300, deadline=None)
@given(
    value=json_values,
    ascii_only=st.booleans(),
    indent=st.none() | st.integers(0, 2),
    junk=st.sampled_from(["", " ", "\n", " x", ",", "]", "\ufeff"]),
)
def test_the_parser_reads_what_json_loads_reads(
    value: Any, ascii_only: bool, indent: int | None, junk: str
) -> None:
    text = json.dumps(value, allow_nan=True, ensure_ascii=ascii_only, indent=indent)
    _same_parse(text.encode("utf-8", "surrogatepass"))
    _same_parse((text + junk).encode("utf-8", "surrogatepass"))
    _same_parse((junk + text).encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": 1, "a": 2}',
        b'"\\ud800"',
        b'{"\\ud800": 1}',
        b'"\\ud83d\\ude00"',
        b"\xef\xbb\xbf{}",
        '{"a": "\u00e9"}'.encode("utf-16"),
        '{"a": 1}'.encode("utf-32"),
        b'"\x01"',
        b"\xff",
        b"NaN",
        b"-Infinity",
        b"1e999",
        b"-0",
        b"1e-400",
        b"123456789012345678901234567890",
        b"1.7976931348623157e309",
        b"[1.0000000000000002, 0.1, 2.5e-8, 5e-324]",
        b"",
        b"   ",
        b"{",
        b"[1,]",
        b"01",
        b"tru",
    ],
)
def test_odd_json_is_read_as_json_loads_reads_it(text: bytes) -> None:
    _same_parse(text)
