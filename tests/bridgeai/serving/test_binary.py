"""The binary tensor data extension against a real ``python -m bridgeai.serving`` process.

Requests are built with :mod:`struct` (:mod:`tests.support.binary_tensors`), not with the
server's code; expected prices come from the booster on hand-encoded rows.
"""

from __future__ import annotations

import itertools
import math
import struct
from typing import Any

import httpx
import orjson
import pytest

from bridgeai import schema
from bridgeai.model.house_price import HousePriceModel
from bridgeai.serving import binary, codec
from bridgeai.serving.errors import ProtocolError
from bridgeai.testing.synthetic import housing_frame
from tests.support import binary_tensors as bt
from tests.support.model_server import MODEL_NAME, reference_prices

pytestmark = pytest.mark.integration

INFER = f"/v2/models/{MODEL_NAME}/infer"


def _houses(rows: int, seed: int = 5) -> list[dict[str, Any]]:
    return housing_frame(rows, seed=seed).select(schema.FEATURES).to_dicts()


def _post(http: httpx.Client, content: bytes, headers: dict[str, str]) -> httpx.Response:
    return http.post(INFER, content=content, headers=headers)


@pytest.mark.parametrize("rows", [1, 3, 1_000])  # 1,000 rows: the offloaded, pipelined path
def test_binary_and_json_requests_give_identical_predictions(
    http: httpx.Client, model: HousePriceModel, rows: int
) -> None:
    houses = _houses(rows)
    content, headers = bt.body(bt.tensors(houses))
    answer = _post(http, content, headers)
    assert answer.status_code == 200, answer.text
    assert bt.HEADER.lower() not in answer.headers  # asked for JSON back
    from_json = http.post(INFER, json=codec.build_request(houses))
    assert answer.json()["outputs"] == from_json.json()["outputs"]
    expected = reference_prices(model, houses)
    assert answer.json()["outputs"][0]["data"] == pytest.approx(expected.tolist(), rel=1e-12)


@pytest.mark.parametrize(
    "request_fields",
    [
        {"parameters": {"binary_data_output": True}},
        {"outputs": [{"name": "price", "parameters": {"binary_data": True}}]},
        # the output's own flag wins over the request's
        {
            "parameters": {"binary_data_output": False},
            "outputs": [{"name": "price", "parameters": {"binary_data": True}}],
        },
    ],
)
def test_a_binary_answer_when_asked_holds_the_same_prices(
    http: httpx.Client, request_fields: dict[str, Any]
) -> None:
    houses = _houses(40)
    content, headers = bt.body(bt.tensors(houses), **request_fields)
    answer = _post(http, content, headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    doc, prices = bt.binary_prices(answer.content, answer.headers[bt.HEADER])
    assert doc["model_name"] == MODEL_NAME and doc["model_version"] == "7"
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 8 * len(houses)}
    from_json = http.post(INFER, json=codec.build_request(houses)).json()
    assert prices == from_json["outputs"][0]["data"]  # bit for bit


def test_the_outputs_own_false_flag_gives_json(http: httpx.Client) -> None:
    houses = _houses(2)
    fields = {
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "price", "parameters": {"binary_data": False}}],
    }
    answer = _post(http, *bt.body(bt.tensors(houses), **fields))
    assert answer.status_code == 200 and "data" in answer.json()["outputs"][0]


def test_json_and_binary_inputs_mix_and_every_datatype_is_accepted(
    http: httpx.Client, model: HousePriceModel
) -> None:
    houses = _houses(5)
    pairs = bt.tensors(houses, {"area": "FP64", "bedrooms": "INT32", "parking": "FP32"})
    # mainroad as JSON data, the rest binary: the binary bytes are those of the binary inputs
    mainroad = {"name": "mainroad", "shape": [5], "datatype": "BYTES"}
    mixed = [
        (mainroad | {"data": [h["mainroad"] for h in houses]}, b"")
        if t["name"] == "mainroad"
        else (t, raw)
        for t, raw in pairs
    ]
    answer = _post(http, *bt.body(mixed))
    assert answer.status_code == 200, answer.text
    expected = reference_prices(model, houses)
    assert answer.json()["outputs"][0]["data"] == pytest.approx(expected.tolist(), rel=1e-12)


def _malformed() -> list[tuple[str, bytes, dict[str, str], str]]:
    houses = _houses(2)
    pairs = bt.tensors(houses)
    good, headers = bt.body(pairs)
    split = int(headers[bt.HEADER])
    cases = []

    def case(label: str, content: bytes, hdrs: dict[str, str], message: str) -> None:
        cases.append((label, content, hdrs, message))

    case("truncated buffer", good[:-5], headers, "runs past the end of the 170 bytes")
    case("extra bytes", good + b"\x00" * 3, headers, "add up to")
    case("header past the end", good, {**headers, bt.HEADER: str(len(good) + 1)}, "body has")
    case("header not a number", good, {**headers, bt.HEADER: "12a"}, "whole number of bytes")
    case("header cutting the JSON", good, {**headers, bt.HEADER: str(split - 2)}, "not valid JSON")
    case("no header", good, {"Content-Type": "application/octet-stream"}, "not valid JSON")
    no_header_doc = orjson.dumps({"inputs": [t for t, _ in pairs]})
    case("sizes without the header", no_header_doc, {}, "no Inference-Header-Content-Length")

    def swap(name: str, raw: bytes | None = None, **changes: Any) -> list[Any]:
        """``pairs`` with input ``name``'s bytes (and binary_data_size) or fields replaced."""
        out = []
        for tensor, data in pairs:
            if tensor["name"] == name:
                if raw is not None:
                    tensor, data = tensor | {"parameters": {"binary_data_size": len(raw)}}, raw
                tensor = tensor | changes
            out.append((tensor, data))
        return out

    # numbers whose byte count does not match their shape
    short = swap("area", bt.element_bytes("FP32", [1.0, 2.0, 3.0]))
    case("FP32 bytes not matching the shape", *bt.body(short), "take 8 bytes but binary_data")
    # a BYTES element whose declared length runs past its tensor
    overrun = struct.pack("<I", 50) + b"yes" + struct.pack("<I", 2) + b"no"
    case("BYTES element overrun", *bt.body(swap("mainroad", overrun)), "element 0 declares 50")
    latin = bt.element_bytes("BYTES", [b"\xff\xfeyes", b"no"])
    case("non-UTF-8 BYTES", *bt.body(swap("basement", latin)), "is not valid UTF-8")
    nan = bt.element_bytes("FP32", [math.nan, 1.0])
    case("NaN", *bt.body(swap("area", nan)), "must be finite numbers")
    both = swap("area", data=[1, 2])
    case("data and binary_data_size", *bt.body(both), "has both 'data' and parameters.binary")
    negative = swap("area", parameters={"binary_data_size": -1})
    case("negative size", *bt.body(negative), "non-negative whole number of bytes")
    return cases


@pytest.mark.parametrize(("label", "content", "headers", "message"), _malformed())
def test_a_malformed_binary_body_is_a_400_that_says_why(
    http: httpx.Client, label: str, content: bytes, headers: dict[str, str], message: str
) -> None:
    answer = _post(http, content, headers)
    assert answer.status_code == 400, (label, answer.text)
    assert message in answer.json()["error"], (label, answer.json())


def test_the_server_lists_the_extension(http: httpx.Client) -> None:
    assert "binary_tensor_data" in http.get("/v2").json()["extensions"]


# -- the fast BYTES split agrees with the element-by-element parse --------------------------
@pytest.mark.parametrize(
    "values",
    [
        [b"yes", b"no", b"Yes ", b" NO"],
        [b"", b"yes", b""],  # empty elements
        [b"a" * 300, b"yes"],  # a length over 255
        [b"x\x00\x00\x00y", b"no"],  # three NULs inside a value
        [b"\x00\x00\x00", b"\x00"],
        [b"semi-furnished"] * 1000,
        [b"semi-furnishedXX", b"semi-furnishedXY", b"unfurnished", b"semi-furnishedXX"],
        [b"yes\x00", b"yes", b"yes\x00\x00"],  # NUL-padded spellings stay distinct
        [b"v%d" % i for i in range(40)],  # more spellings than the numpy path tells apart
        [b"a" * 17, b"a" * 16],  # longer than two words
    ],
)
@pytest.mark.parametrize("times", [1, 40])  # 40: enough rows for the numpy path
def test_bytes_elements_are_read_exactly_in_every_layout(values: list[bytes], times: int) -> None:
    values = values * times
    raw = bt.element_bytes("BYTES", values)
    assert list(binary.strings("x", len(values), memoryview(raw))) == values


def _read_in_ranges(column: Any, bounds: list[int]) -> list[bytes]:
    read: list[bytes] = []
    for start, stop in itertools.pairwise(bounds):
        read += list(column[start:stop])
    return read


@pytest.mark.parametrize(
    "values",
    [
        [b"yes", b"no"] * 50 + [b"YES", b"No"] * 50,  # new spellings in later ranges
        [b"no"] * 150 + [b"v%d" % i for i in range(40)] + [b"yes"] * 10,  # too many, late
        [b"semi-furnished", b"unfurnished", b"furnished", b"Furnished"] * 50,
    ],
)
def test_a_bytes_column_read_range_by_range_gives_the_elements_in_order(
    values: list[bytes],
) -> None:
    raw = bt.element_bytes("BYTES", values)
    column = binary.strings("x", len(values), memoryview(raw))
    assert isinstance(column, binary.BytesColumn)  # the range-by-range path is what is tested
    assert _read_in_ranges(column, [0, 7, 64, 65, 150, 180, len(values)]) == values
    assert list(column[10:20]) == values[10:20]  # a range read before is read again the same
    fresh = binary.strings("x", len(values), memoryview(raw))
    assert list(fresh[150:200]) == values[150:200]  # a later range first
    assert list(fresh) == values


def test_a_spelling_that_is_not_utf8_is_refused_when_its_rows_are_read() -> None:
    values = [b"yes", b"no"] * 100 + [b"\xffes"]
    raw = bt.element_bytes("BYTES", values)
    column = binary.strings("basement", len(values), memoryview(raw))
    assert list(column[0:200]) == values[:200]
    with pytest.raises(ProtocolError, match=r"input 'basement': BYTES element .* not valid UTF-8"):
        column[200:201]


def test_a_large_binary_request_with_a_late_bad_spelling_is_a_400(http: httpx.Client) -> None:
    # 2,000 rows: predicted in chunks of 256 (conftest); the bad spelling is in the last one.
    houses = _houses(2_000)
    houses[-1] = {**houses[-1], "guestroom": "maybe"}
    body, headers = bt.body(bt.tensors(houses))
    answer = _post(http, body, headers)
    assert answer.status_code == 400, answer.text
    assert "guestroom" in answer.json()["error"] and "maybe" in answer.json()["error"]
