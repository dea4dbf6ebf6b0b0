"""Request and response bodies of the prediction API, derived from :mod:`bridgeai.schema`.

No column is listed here: the request model is built from ``schema.FEATURES`` with the bounds in
``schema.BOUNDS`` and the allowed values in ``schema.ALLOWED``, so the API validates exactly what
the model was trained on. Categoricals accept any case and surrounding spaces, and come out of
validation normalised (``schema.normalize_category``), which is how they are logged and sent to
the model. Numbers are strict: ``"1200"`` for ``area`` is rejected, not coerced. Counts accept
integral JSON numbers (``2.0``) as JSON Schema does (its ``integer`` is any number with no
fractional part, and a client whose column went through floats, as pandas does with a missing
value, sends them); ``2.5``, ``"2"`` and ``true`` stay a 422 naming the field.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from bridgeai import schema
from bridgeai.model import REGISTERED_MODEL

UNIT = "GBP(£)"
MESSAGE = "House price prediction successful"
BATCH_MESSAGE = "House price predictions successful"


def _case_insensitive_pattern(values: tuple[str, ...]) -> str:
    """A JSON-Schema regex for documentation (``yes`` -> ``[Yy][Ee][Ss]``)."""
    parts = [
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else "\\-" if c == "-" else c for c in v)
        for v in values
    ]
    return "^\\s*(" + "|".join(parts) + ")\\s*$"


def integral(value: Any) -> Any:
    """``2.0`` -> ``2`` (JSON Schema's ``integer``); anything else unchanged, for strict checks.

    Only real floats with no fractional part are converted: ``2.5``, NaN and infinities stay
    floats and the strict ``int`` validation that follows rejects them, as it rejects ``"2"``
    and booleans.
    """
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def _feature_field(name: str) -> tuple[Any, Any]:
    example = schema.EXAMPLE_HOUSE[name]
    if name in schema.CATEGORICAL:
        allowed = schema.ALLOWED[name]
        categorical: Any = Annotated[
            str,
            Field(
                max_length=64,
                description=f"One of {', '.join(allowed)} (any case).",
                examples=[example],
                # Documentation only: the validator below gives the clearer error message.
                json_schema_extra={"pattern": _case_insensitive_pattern(allowed)},
            ),
            AfterValidator(functools.partial(schema.check_category, name)),
        ]
        return categorical, ...
    bounds = schema.BOUNDS[name]
    kind: type = int if name in schema.COUNTS else float
    described = "A whole number" if kind is int else "A number"
    low, high = (
        f"{int(b):,}" if float(b).is_integer() else f"{b:,}" for b in (bounds.ge, bounds.le)
    )
    before = (BeforeValidator(integral),) if kind is int else ()
    numeric: Any = Annotated[
        kind,
        Field(
            strict=True,
            ge=bounds.ge,
            le=bounds.le,
            allow_inf_nan=False,
            description=f"{described} from {low} to {high}.",
            examples=[example],
        ),
        *before,  # after the Field, so the JSON Schema keeps minimum/maximum
    ]
    return numeric, ...


House = create_model(  # type: ignore[call-overload]
    "House",
    __config__=ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [dict(schema.EXAMPLE_HOUSE)]},
    ),
    __doc__="One house: the 12 features the model was trained on.",
    **{name: _feature_field(name) for name in schema.FEATURES},
)
"""The request body of ``POST /predict``: one house's 12 features (see the module docstring)."""


class BatchRequest(BaseModel):
    """The request body of ``POST /predict/batch``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"houses": [dict(schema.EXAMPLE_HOUSE)] * 2}]},
    )

    houses: list[House] = Field(  # type: ignore[valid-type]
        min_length=1, description="The houses to price, in order (at most the configured limit)."
    )


class Prediction(BaseModel):
    prediction: float = Field(description="Predicted price.")
    unit: str = Field(UNIT, description="Currency of the prediction.")


class BatchPredictions(BaseModel):
    predictions: list[float] = Field(description="Predicted prices, in request order.")
    unit: str = Field(UNIT, description="Currency of the predictions.")


class _Served(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str = Field(description="Model that answered.")
    model_version: str | None = Field(description="Its version, when the model server says.")
    request_id: str = Field(description="Id of this request in prediction_logs and the logs.")


class PredictionResponse(_Served):
    """The original service's response, plus the model and the request id."""

    status: int = Field(200, description="HTTP status, repeated as the original did.")
    message: str = Field(MESSAGE)
    response: Prediction

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "status": 200,
                    "message": MESSAGE,
                    "response": {"prediction": 4_620_000.0, "unit": UNIT},
                    "model_name": REGISTERED_MODEL,
                    "model_version": "3",
                    "request_id": "6f1c0a4e2b9d4f0c8e7a5b3d1c2e4f60",
                }
            ]
        },
    )


class BatchPredictionResponse(_Served):
    """Prices for a batch, in request order."""

    status: int = Field(200)
    message: str = Field(BATCH_MESSAGE)
    response: BatchPredictions


class ErrorResponse(BaseModel):
    """Every error: the status, a message that says what to fix, and (for 422) the details."""

    status: int
    message: str
    detail: list[dict[str, Any]] | None = None
    request_id: str | None = None


class Health(BaseModel):
    status: str = Field(description="'ok' while the process and its log writer are alive.")
    log_writer_alive: bool


class ComponentStatus(BaseModel):
    ok: bool
    detail: str


class ModelStatus(ComponentStatus):
    model_config = ConfigDict(protected_namespaces=())

    url: str
    name: str
    version: str | None = None


class Readiness(BaseModel):
    """What ``/ready`` found: both the database and the model must be reachable."""

    ready: bool
    database: ComponentStatus
    model: ModelStatus
    spool_depth: int = Field(description="Log rows waiting on disk for the database.")
    queue_depth: int = Field(description="Log rows waiting in memory.")
