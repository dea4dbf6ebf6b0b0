"""The v2 codec in-process: what it accepts and what it turns requests into."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from bridgeai import schema
from bridgeai.serving import codec


def _body(**overrides: object) -> bytes:
    request = codec.build_request([schema.EXAMPLE_HOUSE, schema.EXAMPLE_HOUSE])
    request.update(overrides)
    return orjson.dumps(request)


def test_build_request_matches_the_original_client() -> None:
    request = codec.build_request([schema.EXAMPLE_HOUSE], request_id="r1")
    assert request["id"] == "r1"
    by_name = {t["name"]: t for t in request["inputs"]}
    assert list(by_name) == list(schema.FEATURES)
    assert by_name["area"] == {"name": "area", "shape": [1], "datatype": "FP32", "data": [1200]}
    assert by_name["mainroad"]["datatype"] == "BYTES"
    assert by_name["parking"]["datatype"] == "INT64"
    codec.InferenceRequest.model_validate(request)  # the documented pydantic shape


def test_decode_gives_one_column_per_feature() -> None:
    decoded = codec.decode_request(_body(id="abc"))
    assert decoded.rows == 2
    assert decoded.id == "abc"
    assert set(decoded.columns) == set(schema.FEATURES)
    assert decoded.datatypes["area"] == "FP32"
    columns = decoded.rows_between()
    assert columns["mainroad"] == ["yes", "yes"]
    assert list(columns["area"]) == [1200, 1200]


def test_large_numeric_tensors_become_float64_arrays_slice_by_slice() -> None:
    houses = [{**schema.EXAMPLE_HOUSE, "area": 1000 + i} for i in range(500)]
    decoded = codec.decode_request(orjson.dumps(codec.build_request(houses)))
    area = decoded.rows_between()["area"]
    assert isinstance(area, np.ndarray)
    assert area.dtype == np.float64
    assert area.shape == (500,)
    part = decoded.rows_between(100, 300)
    assert list(part["area"]) == [float(1000 + i) for i in range(100, 300)]
    assert len(part["mainroad"]) == 200


@pytest.mark.parametrize("rows", [3, 300])
def test_integer_tensors_refuse_fractions_small_and_large(rows: int) -> None:
    request = codec.build_request([schema.EXAMPLE_HOUSE] * rows)
    request["inputs"][1]["data"][-1] = 2.5  # bedrooms
    decoded = codec.decode_request(orjson.dumps(request))
    with pytest.raises(codec.ProtocolError, match="'bedrooms': INT64 data must be whole numbers"):
        decoded.rows_between()


def test_encode_response_is_a_valid_v2_document() -> None:
    doc = orjson.loads(codec.encode_response("m", "3", "rid", np.array([1.5, 2.0])))
    response = codec.InferenceResponse.model_validate(doc)
    assert response.outputs[0].name == "price"
    assert response.outputs[0].datatype == "FP64"
    assert response.outputs[0].shape == [2]
    assert codec.prices_from(doc) == [1.5, 2.0]


def test_prices_from_a_response_without_price_says_so() -> None:
    with pytest.raises(codec.ProtocolError, match="no 'price' output"):
        codec.prices_from({"outputs": [{"name": "other", "data": [1]}]})


@pytest.mark.parametrize("rows", [3, 300])
def test_booleans_are_not_numbers_among_few_or_many_values(rows: int) -> None:
    # numpy reads [1, ..., true] as int64 with true as 1: the check must not rely on the dtype.
    request = codec.build_request([schema.EXAMPLE_HOUSE] * rows)
    request["inputs"][0]["data"][rows // 2] = True  # area, FP32
    decoded = codec.decode_request(orjson.dumps(request))
    with pytest.raises(codec.ProtocolError, match="'area': FP32 data must be numbers; got True"):
        decoded.rows_between()
