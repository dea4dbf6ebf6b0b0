"""The request model: derived from the schema, strict about types, any case for categoricals."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bridgeai import schema
from bridgeai.service.models import BatchRequest, House, PredictionResponse


def _house(**changes: object) -> dict[str, object]:
    body = dict(schema.EXAMPLE_HOUSE)
    body.update(changes)
    return body


def _error_fields(body: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        House.model_validate_json(json.dumps(body))
    return [".".join(str(p) for p in e["loc"]) for e in caught.value.errors()]


def test_fields_are_exactly_the_schema_features() -> None:
    assert tuple(House.model_fields) == schema.FEATURES


def test_example_house_validates_and_categoricals_come_out_normalised() -> None:
    house = House.model_validate_json(
        json.dumps(_house(mainroad=" YES ", guestroom="No", furnishingstatus="Semi-Furnished"))
    )
    assert house.mainroad == "yes" and house.guestroom == "no"
    assert house.furnishingstatus == "semi-furnished"
    assert house.area == 1200.0 and isinstance(house.bedrooms, int)


@pytest.mark.parametrize("column", schema.CATEGORICAL)
def test_each_categorical_rejects_a_value_outside_the_schema(column: str) -> None:
    with pytest.raises(ValidationError) as caught:
        House.model_validate_json(json.dumps(_house(**{column: "palace"})))
    (error,) = caught.value.errors()
    assert error["loc"] == (column,)
    assert "is not one of" in error["msg"] and ", ".join(schema.ALLOWED[column]) in error["msg"]


@pytest.mark.parametrize("column", schema.NUMERIC)
def test_each_numeric_bound_is_enforced_on_both_sides(column: str) -> None:
    bounds = schema.BOUNDS[column]
    assert _error_fields(_house(**{column: bounds.le + 1})) == [column]
    assert _error_fields(_house(**{column: bounds.ge - 1})) == [column]
    House.model_validate_json(json.dumps(_house(**{column: bounds.le})))
    House.model_validate_json(json.dumps(_house(**{column: bounds.ge})))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("area", "1200"),  # a string is not coerced
        ("area", True),
        ("bedrooms", "3"),
        ("bedrooms", 3.5),
        ("bedrooms", False),
        ("mainroad", 1),
        ("furnishingstatus", None),
    ],
)
def test_wrong_types_are_rejected_not_coerced(column: str, value: object) -> None:
    assert _error_fields(_house(**{column: value})) == [column]


@pytest.mark.parametrize("column", schema.COUNTS)
def test_integral_numbers_are_integers_as_json_schema_says(column: str) -> None:
    # JSON Schema's "integer" includes 2.0; pandas sends counts as floats once a value is missing.
    house = House.model_validate(_house(**{column: 2.0}))
    value = getattr(house, column)
    assert value == 2 and type(value) is int


@pytest.mark.parametrize("value", [2.5, "2", "2.0", True, float("nan"), float("inf"), 1e300])
@pytest.mark.parametrize("column", schema.COUNTS)
def test_non_integral_or_text_counts_stay_rejected(column: str, value: object) -> None:
    assert _error_fields(_house(**{column: value})) == [column]


@pytest.mark.parametrize("column", schema.FEATURES)
def test_every_feature_is_required(column: str) -> None:
    body = _house()
    del body[column]
    assert _error_fields(body) == [column]


def test_unknown_fields_are_rejected_so_typos_surface() -> None:
    assert _error_fields(_house(bedroom=3)) == ["bedroom"]


def test_batch_needs_at_least_one_house() -> None:
    with pytest.raises(ValidationError) as caught:
        BatchRequest.model_validate({"houses": []})
    assert caught.value.errors()[0]["loc"] == ("houses",)


def test_json_schema_documents_examples_bounds_and_allowed_values() -> None:
    doc = House.model_json_schema()
    assert doc["examples"] == [schema.EXAMPLE_HOUSE]
    assert doc["required"] == list(schema.FEATURES)
    bedrooms = doc["properties"]["bedrooms"]
    assert (bedrooms["minimum"], bedrooms["maximum"]) == (0, 9)
    furnishing = doc["properties"]["furnishingstatus"]
    assert "semi-furnished" in furnishing["description"]
    import re

    pattern = re.compile(furnishing["pattern"])
    assert pattern.match("Semi-Furnished") and not pattern.match("palace")
    assert PredictionResponse.model_json_schema()["examples"][0]["response"]["unit"] == "GBP(£)"
