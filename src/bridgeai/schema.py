"""The housing dataset's schema: the one place every column rule lives.

Validation at ingestion, the model's preprocessing, the prediction API's request model, the MLflow
signature, the Open Inference Protocol v2 encoding and the drift column mapping are all derived
from the constants here, so a rule changed here changes everywhere at once.

Categorical values are normalised the same way everywhere (``strip().lower()``): the original
demonstrator lower-cased at training and upper-cased at serving, so its model silently ignored
every categorical feature. Here :func:`normalize_category` is the only normaliser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

TARGET: Final = "price"

#: Columns of the source CSV, in the original's order.
COLUMNS: Final = (
    "price",
    "area",
    "bedrooms",
    "bathrooms",
    "stories",
    "mainroad",
    "guestroom",
    "basement",
    "hotwaterheating",
    "airconditioning",
    "parking",
    "prefarea",
    "furnishingstatus",
)

#: Model inputs, in the dataset's order (the target removed).
FEATURES: Final = tuple(c for c in COLUMNS if c != TARGET)

NUMERIC: Final = ("area", "bedrooms", "bathrooms", "stories", "parking")
#: Numeric features that are whole numbers (sent as INT64 over v2).
COUNTS: Final = ("bedrooms", "bathrooms", "stories", "parking")

YES_NO: Final = ("yes", "no")
FURNISHING: Final = ("furnished", "semi-furnished", "unfurnished")
BINARY: Final = (
    "mainroad",
    "guestroom",
    "basement",
    "hotwaterheating",
    "airconditioning",
    "prefarea",
)
CATEGORICAL: Final = (*BINARY, "furnishingstatus")

#: Allowed values of each categorical column, after :func:`normalize_category`.
ALLOWED: Final[dict[str, tuple[str, ...]]] = {
    **{c: YES_NO for c in BINARY},
    "furnishingstatus": FURNISHING,
}

V2Datatype = Literal["BYTES", "FP32", "FP64", "INT64", "INT32"]


@dataclass(frozen=True)
class Bounds:
    """Inclusive bounds a single house's numeric feature must respect at prediction time."""

    ge: float
    le: float


#: Bounds for one house sent to the prediction API: the original's upper bounds
#: (bedrooms, bathrooms, parking < 10; stories < 5) plus lower bounds it lacked.
BOUNDS: Final[dict[str, Bounds]] = {
    "area": Bounds(ge=1, le=1_000_000),
    "bedrooms": Bounds(ge=0, le=9),
    "bathrooms": Bounds(ge=0, le=9),
    "stories": Bounds(ge=1, le=4),
    "parking": Bounds(ge=0, le=9),
}

#: How the original prediction service encoded each feature over v2; the server accepts more.
V2_DATATYPE: Final[dict[str, V2Datatype]] = {
    **{c: "BYTES" for c in CATEGORICAL},
    "area": "FP32",
    **{c: "INT64" for c in COUNTS},
}

#: The original's example request, used for docs, OpenAPI examples and smoke tests.
EXAMPLE_HOUSE: Final[dict[str, str | int]] = {
    "mainroad": "yes",
    "guestroom": "no",
    "basement": "yes",
    "hotwaterheating": "no",
    "airconditioning": "yes",
    "prefarea": "no",
    "furnishingstatus": "furnished",
    "area": 1200,
    "bedrooms": 3,
    "bathrooms": 2,
    "stories": 2,
    "parking": 1,
}


def normalize_category(value: str) -> str:
    """Normalise a categorical value the one way used at training and serving."""
    return value.strip().lower()


def check_category(column: str, value: str) -> str:
    """Return the normalised value, or raise ``ValueError`` naming the column and allowed values."""
    norm = normalize_category(value)
    allowed = ALLOWED[column]
    if norm not in allowed:
        raise ValueError(f"{column}: {value!r} is not one of {', '.join(allowed)} (any case)")
    return norm
