"""The model server's HTTP API, tested against a real ``python -m bridgeai.serving`` process.

Expected prices come from the LightGBM booster on hand-encoded rows
(:func:`tests.support.model_server.reference_prices`), not from the encoder the server runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bridgeai import schema
from bridgeai.model.house_price import HousePriceModel
from bridgeai.model.source import ModelInfo
from bridgeai.serving import codec
from bridgeai.serving.app import create_app
from bridgeai.serving.settings import ModelServerSettings
from bridgeai.testing.synthetic import housing_frame
from tests.support.model_server import MODEL_NAME, reference_prices

pytestmark = pytest.mark.integration


def _houses(rows: int, seed: int = 11) -> list[dict[str, Any]]:
    frame = housing_frame(rows, seed=seed).select(schema.FEATURES)
    return frame.to_dicts()


def _infer(http: httpx.Client, body: Any, **kwargs: Any) -> httpx.Response:
    return http.post(f"/v2/models/{MODEL_NAME}/infer", json=body, **kwargs)


# -- health and metadata ------------------------------------------------------------------------
def test_health_and_server_metadata(http: httpx.Client) -> None:
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    meta = http.get("/v2").json()
    assert meta["name"] == "bridgeai-model-server"
    assert meta["version"]


@pytest.mark.parametrize("versioned", [False, True])
def test_model_metadata_and_readiness(
    http: httpx.Client, identity: ModelInfo, versioned: bool
) -> None:
    suffix = f"/versions/{identity.version}" if versioned else ""
    meta = http.get(f"/v2/models/{MODEL_NAME}{suffix}").json()
    assert meta["name"] == MODEL_NAME
    assert meta["versions"] == [identity.version]
    assert meta["platform"] == "lightgbm"
    assert [i["name"] for i in meta["inputs"]] == list(schema.FEATURES)
    assert meta["outputs"] == [{"name": "price", "datatype": "FP64", "shape": [-1]}]
    assert meta["parameters"]["mlflow_run_id"] == identity.run_id
    ready = http.get(f"/v2/models/{MODEL_NAME}{suffix}/ready")
    assert ready.status_code == 200
    assert ready.json() == {"name": MODEL_NAME, "ready": True}


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/v2/models/other_model", "'other_model' is not served here"),
        (f"/v2/models/{MODEL_NAME}/versions/99", "version '99' is not served here"),
        ("/v2/models/other_model/ready", "'other_model' is not served here"),
        (f"/v2/models/{MODEL_NAME}/versions/99/ready", "version '99'"),
    ],
)
def test_unknown_model_or_version_is_404(http: httpx.Client, path: str, fragment: str) -> None:
    response = http.get(path)
    assert response.status_code == 404
    assert fragment in response.json()["error"]


def test_unknown_model_or_version_on_infer_is_404(http: httpx.Client) -> None:
    body = codec.build_request([schema.EXAMPLE_HOUSE])
    assert http.post("/v2/models/nope/infer", json=body).status_code == 404
    wrong = http.post(f"/v2/models/{MODEL_NAME}/versions/1/infer", json=body)
    assert wrong.status_code == 404
    assert "version '1'" in wrong.json()["error"]


def test_wrong_method_and_unknown_path_answer_json(http: httpx.Client) -> None:
    get = http.get(f"/v2/models/{MODEL_NAME}/infer")
    assert get.status_code == 405
    assert "GET is not allowed" in get.json()["error"]
    missing = http.get("/v2/nothing/here")
    assert missing.status_code == 404
    assert "no such endpoint" in missing.json()["error"]


# -- inference ------------------------------------------------------------------------------------
def test_infer_answers_the_original_clients_request(
    http: httpx.Client, model: HousePriceModel, identity: ModelInfo
) -> None:
    # The original service upper-cased categoricals and sent area as FP32, counts as INT64.
    house = {k: v.upper() if isinstance(v, str) else v for k, v in schema.EXAMPLE_HOUSE.items()}
    body = codec.build_request([house], request_id="req-1")
    assert {i["name"]: i["datatype"] for i in body["inputs"]} == schema.V2_DATATYPE
    response = _infer(http, body, headers={"x-request-id": "trace-42"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-42"
    doc = response.json()
    assert doc["model_name"] == MODEL_NAME
    assert doc["model_version"] == identity.version
    assert doc["id"] == "req-1"
    [output] = doc["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("price", "FP64", [1])
    assert output["data"][0] == pytest.approx(reference_prices(model, [house])[0], rel=1e-12)


def test_versioned_infer(http: httpx.Client, model: HousePriceModel, identity: ModelInfo) -> None:
    houses = _houses(3)
    response = http.post(
        f"/v2/models/{MODEL_NAME}/versions/{identity.version}/infer",
        json=codec.build_request(houses),
    )
    assert response.status_code == 200
    np.testing.assert_allclose(
        codec.prices_from(response.json()), reference_prices(model, houses), rtol=1e-12
    )


def test_yes_and_YES_give_identical_predictions(http: httpx.Client) -> None:
    lower = _houses(20, seed=5)
    spellings = (str.upper, str.capitalize, lambda s: f"  {s.upper()} ")
    variants = [
        [{k: spell(v) if isinstance(v, str) else v for k, v in h.items()} for h in lower]
        for spell in spellings
    ]
    baseline = codec.prices_from(_infer(http, codec.build_request(lower)).json())
    for houses in variants:
        assert codec.prices_from(_infer(http, codec.build_request(houses)).json()) == baseline
    # ...and the categoricals matter: flipping one changes some prediction.
    flipped = [
        {**h, "airconditioning": "no" if h["airconditioning"] == "yes" else "yes"} for h in lower
    ]
    assert codec.prices_from(_infer(http, codec.build_request(flipped)).json()) != baseline


def test_large_batch_in_every_accepted_encoding_matches_the_model(
    http: httpx.Client, model: HousePriceModel
) -> None:
    houses = _houses(1000, seed=21)  # > chunk_rows: decoded off the loop, pipelined
    body = codec.build_request(houses)
    for tensor in body["inputs"]:
        if tensor["name"] == "area":
            tensor["datatype"] = "FP64"
        elif tensor["name"] == "bedrooms":
            tensor["datatype"] = "INT32"
        elif tensor["name"] in ("stories", "basement"):  # shape [N, 1], data nested
            tensor["shape"] = [len(houses), 1]
            tensor["data"] = [[v] for v in tensor["data"]]
        elif tensor["name"] == "parking":  # shape [N, 1], data flat
            tensor["shape"] = [len(houses), 1]
    response = _infer(http, body)
    assert response.status_code == 200, response.text
    prices = codec.prices_from(response.json())
    assert response.json()["outputs"][0]["shape"] == [1000]
    np.testing.assert_allclose(prices, reference_prices(model, houses), rtol=1e-12)


def test_a_large_request_in_the_original_clients_form_matches_the_model(
    http: httpx.Client, model: HousePriceModel
) -> None:
    houses = _houses(5_000, seed=23)
    for i, house in enumerate(houses):  # any case, as clients send them
        house["mainroad"] = house["mainroad"].upper() if i % 2 else house["mainroad"]
        house["furnishingstatus"] = house["furnishingstatus"].title() if i % 3 else "UNFURNISHED"
    response = _infer(http, codec.build_request(houses))
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        codec.prices_from(response.json()), reference_prices(model, houses), rtol=1e-12
    )
    # A bad value deep in a large request gets the same 400 as in a small one.
    houses[4_321]["furnishingstatus"] = "palace"
    response = _infer(http, codec.build_request(houses))
    assert response.status_code == 400
    assert "furnishingstatus: 'palace' is not one of" in response.json()["error"]


def _request_with(input_name: str, **changes: Any) -> dict[str, Any]:
    body = codec.build_request(_houses(2))
    for tensor in body["inputs"]:
        if tensor["name"] == input_name:
            tensor.update(changes)
    return body


def _without(name: str) -> dict[str, Any]:
    body = codec.build_request(_houses(2))
    body["inputs"] = [t for t in body["inputs"] if t["name"] != name]
    return body


def _renamed(old: str, new: str) -> dict[str, Any]:
    return _request_with(old, name=new)


def _duplicated(name: str) -> dict[str, Any]:
    body = codec.build_request(_houses(2))
    body["inputs"].append(next(t for t in body["inputs"] if t["name"] == name))
    return body


BAD_REQUESTS = {
    "unknown name": (_renamed("area", "size"), ["unknown input 'size'", "area"]),
    "missing input": (_without("parking"), ["missing input(s): parking"]),
    "duplicate input": (_duplicated("stories"), ["'stories' is given more than once"]),
    "bytes for a number": (
        _request_with("area", datatype="BYTES", data=["big", "small"]),
        ["input 'area'", "datatype must be one of INT64, INT32, FP64, FP32", "'BYTES'"],
    ),
    "number for a category": (
        _request_with("mainroad", datatype="INT64", data=[1, 0]),
        ["input 'mainroad'", "datatype must be BYTES", "'INT64'"],
    ),
    "unknown datatype": (
        _request_with("bedrooms", datatype="UINT128"),
        ["input 'bedrooms'", "'UINT128'"],
    ),
    "text in INT64": (
        _request_with("bedrooms", data=["3", "2"]),
        ["input 'bedrooms'", "INT64 data must be whole numbers", "'3'"],
    ),
    "fraction in INT64": (
        _request_with("bathrooms", data=[1, 2.5]),
        ["input 'bathrooms'", "whole numbers", "2.5"],
    ),
    "boolean as a number": (
        _request_with("parking", data=[True, 1]),
        ["input 'parking'", "INT64 data must be whole numbers", "True"],
    ),
    "null in FP32": (
        _request_with("area", data=[None, 1200.0]),
        ["input 'area'", "FP32 data must be numbers", "None"],
    ),
    "unknown category": (
        _request_with("furnishingstatus", data=["palace", "furnished"]),
        ["furnishingstatus", "'palace' is not one of furnished, semi-furnished, unfurnished"],
    ),
    "number inside BYTES": (
        _request_with("guestroom", data=[1, "no"]),
        ["guestroom", "expected text"],
    ),
    "2-D shape": (
        _request_with("area", shape=[1, 2]),
        ["input 'area'", "shape [1, 2] is not supported", "[N] or [N, 1]"],
    ),
    "shape disagrees with data": (
        _request_with("area", shape=[3]),
        ["input 'area'", "shape [3] needs 3 value(s) but 'data' has 2"],
    ),
    "rows differ between inputs": (
        _request_with("area", shape=[1], data=[1200.0]),
        ["'bedrooms' has 2 rows but 'area' has 1", "one value per row"],
    ),
    "nested rows with two values": (
        _request_with("stories", shape=[2, 1], data=[[1, 2], [1, 2]]),
        ["input 'stories'", "exactly one value per row"],
    ),
    "negative shape": (_request_with("area", shape=[-2]), ["input 'area'", "non-negative"]),
    "no inputs": ({"inputs": []}, ["'inputs' must be a non-empty list"]),
    "not an object": ([1, 2, 3], ["must be a JSON object"]),
    "unknown output": (
        {**codec.build_request(_houses(1)), "outputs": [{"name": "log_price"}]},
        ["unknown output 'log_price'", "'price'"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_are_400_with_a_message_naming_the_problem(
    http: httpx.Client, case: str
) -> None:
    body, fragments = BAD_REQUESTS[case]
    response = _infer(http, body)
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message


def test_invalid_json_is_400(http: httpx.Client) -> None:
    response = http.post(
        f"/v2/models/{MODEL_NAME}/infer",
        content=b'{"inputs": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_oversized_body_is_413(http: httpx.Client) -> None:
    body = codec.build_request(_houses(40_000, seed=1))  # ~2.4 MB > the 2,000,000-byte limit
    response = _infer(http, body)
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json()["error"]


# -- request ids and logs -------------------------------------------------------------------------
def test_request_ids_are_echoed_or_made(http: httpx.Client) -> None:
    assert (
        http.get("/v2/health/live", headers={"x-request-id": "abc-1"}).headers["x-request-id"]
        == "abc-1"
    )
    made = http.get("/v2/health/live").headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    unsafe = http.get("/v2/health/live", headers={"x-request-id": "x" * 300})
    assert unsafe.headers["x-request-id"] != "x" * 300
    error = _infer(http, {"inputs": []}, headers={"x-request-id": "bad-req-9"})
    assert error.headers["x-request-id"] == "bad-req-9"


# -- one error map ---------------------------------------------------------------------------------
def test_the_lane_and_the_routes_answer_one_error_with_the_same_bytes(http: httpx.Client) -> None:
    body = codec.build_request([schema.EXAMPLE_HOUSE])
    for suffix in ("", "/versions/99"):
        route = http.get(f"/v2/models/other_model{suffix}")  # Starlette
        lane = http.post(f"/v2/models/other_model{suffix}/infer", json=body)  # the bare lane
        assert route.status_code == lane.status_code == 404
        assert route.content == lane.content
        assert route.headers["content-type"] == lane.headers["content-type"] == "application/json"


def test_before_the_model_is_loaded_every_path_is_503_with_the_same_body(
    tmp_path: Path,
) -> None:
    # The app without its lifespan: the model never loads, as in the first seconds of a start.
    app = create_app(ModelServerSettings(model_uri=str(tmp_path), access_log=False))

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
            return [
                await client.get("/v2/health/ready"),
                await client.get(f"/v2/models/{MODEL_NAME}"),
                await client.get(f"/v2/models/{MODEL_NAME}/ready"),
                await client.post(
                    f"/v2/models/{MODEL_NAME}/infer",
                    json=codec.build_request([schema.EXAMPLE_HOUSE]),
                ),
            ]

    ready, metadata, model_ready, infer = asyncio.run(ask())
    assert (ready.status_code, ready.json()) == (503, {"ready": False})
    assert metadata.status_code == model_ready.status_code == infer.status_code == 503
    assert metadata.content == model_ready.content == infer.content
    assert infer.json() == {"error": "the model is still loading; retry shortly"}


def test_the_openapi_document_describes_this_models_inputs(
    http: httpx.Client, identity: ModelInfo
) -> None:
    doc = http.get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert {"/v2/models/{model_name}/infer", "/v2/health/ready", "/v2"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    inputs = schemas["inference_request"]["properties"]["inputs"]["prefixItems"]
    assert [i["$ref"].rsplit("_", 1)[-1] for i in inputs][-1] == "furnishingstatus"
    assert len(inputs) == len(schema.FEATURES)
    mainroad = schemas["input_mainroad"]
    assert mainroad["properties"]["datatype"]["const"] == "BYTES"
    area = schemas["input_area"]["anyOf"]
    assert [v["properties"]["datatype"]["const"] for v in area] == [
        "INT64",
        "INT32",
        "FP64",
        "FP32",
    ]
    version = doc["paths"]["/v2/models/{model_name}/versions/{model_version}/infer"]
    assert version["parameters"][1]["schema"]["enum"] == [identity.version]
    assert "parameters" in doc["paths"]["/v2/models/{model_name}/infer"]
    assert len(doc["paths"]["/v2/models/{model_name}/infer"]["parameters"]) == 1
