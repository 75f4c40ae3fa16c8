"""The API's request and response bodies (pydantic), and the error bodies every route
documents in OpenAPI."""

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from apps.shared.schema import FEATURE_COLUMNS

LOCATION = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


class FeatureRow(BaseModel):
    """One location-day of gold features (nulls allowed where history is missing)."""

    # NaN and the infinities (JSON `NaN`, `Infinity`, `1e999`) are refused, never predicted
    # on; strict: a string or a boolean where a number belongs is an error, not coerced
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
    location: str = Field(pattern=LOCATION.pattern, examples=["berlin"])
    date: dt.date | None = Field(
        None,
        strict=False,
        description="The day these features describe (optional): the prediction is for the "
        "day after, and the feedback loop compares it with that day's actual.",
        examples=["2024-06-01"],
    )
    temp_max_c: float = Field(ge=-100, le=70)
    temp_min_c: float = Field(ge=-100, le=70)
    temp_mean_c: float = Field(ge=-100, le=70)
    precipitation_mm: float = Field(ge=0, le=2000)
    humidity_mean_pct: float = Field(ge=0, le=100)
    wind_max_ms: float = Field(ge=0, le=150)
    temp_max_lag1: float | None = Field(None, ge=-100, le=70)
    temp_max_lag2: float | None = Field(None, ge=-100, le=70)
    temp_max_lag3: float | None = Field(None, ge=-100, le=70)
    temp_max_roll7_mean: float | None = Field(None, ge=-100, le=70)
    precip_roll3_sum: float | None = Field(None, ge=0, le=6000)
    doy_sin: float = Field(ge=-1, le=1)
    doy_cos: float = Field(ge=-1, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> "FeatureRow":
        if self.temp_min_c > self.temp_max_c:
            raise ValueError(
                f"temp_min_c ({self.temp_min_c}) is above temp_max_c ({self.temp_max_c})"
            )
        return self


assert set(FeatureRow.model_fields) == {"location", "date", *FEATURE_COLUMNS}  # gold's columns


MAX_ROWS = 10_000
"""The most rows any request may carry, checked before a single row is validated: a body of
tiny rows (`{"rows":[{},{},...]}`) is refused in one error, not validated into millions."""


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "rows": [
                        {
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
                    ]
                }
            ]
        },
    )
    rows: list[FeatureRow] = Field(min_length=1, max_length=MAX_ROWS)


class Prediction(BaseModel):
    location: str
    temp_max_c: float
    for_date: dt.date | None = None
    """The day predicted, when the row gave its date."""


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Prediction]
    request_id: str


class Forecast(BaseModel):
    location: str
    date: dt.date
    """The day forecast (the day after the latest features)."""
    temp_max_c: float
    based_on: dt.date
    model_version: str
    cached: bool


class ErrorBody(BaseModel):
    """Every error the API answers: what went wrong, and the request's id."""

    detail: str
    request_id: str | None = None


class FieldError(BaseModel):
    type: str | None
    loc: list[str]
    msg: str
    input: str
    """The offending value, as JSON-safe text (at most 200 characters)."""


class ValidationErrorBody(BaseModel):
    """A 422: at most 50 field errors, how many there were, and the request's id."""

    detail: list[FieldError]
    errors: int
    request_id: str | None = None


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool]
    degraded: list[str]
    serving: dict[str, Any] | None
    registry_error: str | None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, each with its body's schema."""
    text = {
        401: "missing, malformed, expired or foreign bearer token",
        403: "the token lacks the route's scope",
        404: "no such location in the lake",
        413: "request body too large",
        422: "invalid request",
        429: "rate limit exceeded (see Retry-After)",
        503: "no model served yet, or a dependency is down",
    }
    return {
        c: {"model": ValidationErrorBody if c == 422 else ErrorBody, "description": text[c]}
        for c in codes
    }
