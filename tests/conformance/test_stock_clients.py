"""Stock OIP v2 clients against the model server, and the original system's own requests.

* ``tritonclient.http`` and ``tritonclient.grpc`` (in this process): with their defaults
  (binary tensors both ways) and with JSON-only tensors, single rows and batches;
* KServe's ``InferenceRESTClient`` and ``InferenceGRPCClient`` (in their own virtualenv, see
  ``kserve_python``): with the defaults (binary) and ``binary_data=False``;
* the original prediction service's v2 payload (upper-case BYTES, FP32 area, INT64 counts) and
  the original service's request body to the prediction service.

Each must get the prices the in-process model computes, and a clear 4xx for bad tensors.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from bridgeai import schema
from bridgeai.model.house_price import HousePriceModel
from bridgeai.testing.synthetic import housing_frame
from tests.support.model_server import MODEL_NAME, ModelServerProcess
from tests.support.service import API_KEY, RunningService

pytestmark = [pytest.mark.conformance, pytest.mark.integration]

HOUSE = dict(schema.EXAMPLE_HOUSE)
_NUMPY = {"BYTES": np.object_, "FP32": np.float32, "INT64": np.int64}


def _houses(rows: int) -> list[dict[str, Any]]:
    return housing_frame(rows, seed=17).select(schema.FEATURES).to_dicts()


def _expected(model: HousePriceModel, houses: list[dict[str, Any]]) -> list[float]:
    """What the model computes in this process for these houses."""
    return model.predict({f: [h[f] for h in houses] for f in schema.FEATURES}).tolist()


def _triton_inputs(module: Any, houses: list[dict[str, Any]], binary: bool, **types: str):
    inputs = []
    for name in schema.FEATURES:
        datatype = types.get(name, schema.V2_DATATYPE[name])
        values = np.array([h[name] for h in houses], dtype=_NUMPY[datatype])
        tensor = module.InferInput(name, [len(houses)], datatype)
        if module is triton_http:
            tensor.set_data_from_numpy(values, binary_data=binary)
        else:
            tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


@pytest.fixture(scope="module")
def triton_rest(model_server: ModelServerProcess) -> Any:
    client = triton_http.InferenceServerClient(model_server.url.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def triton_grpc_client(model_server: ModelServerProcess, grpc_port: int) -> Any:
    with triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}") as client:
        yield client


# -- tritonclient.http ----------------------------------------------------------------------
@pytest.mark.parametrize("rows", [1, 25])
@pytest.mark.parametrize("binary", [True, False], ids=["defaults", "json-only"])
def test_tritonclient_http_gets_the_models_prices(
    triton_rest: Any, model: HousePriceModel, rows: int, binary: bool
) -> None:
    houses = _houses(rows)
    inputs = _triton_inputs(triton_http, houses, binary)
    # defaults: no outputs named, so tritonclient asks for every output in binary
    outputs = None if binary else [triton_http.InferRequestedOutput("price", binary_data=False)]
    result = triton_rest.infer(MODEL_NAME, inputs, outputs=outputs, request_id="t-1")
    assert result.as_numpy("price").tolist() == pytest.approx(_expected(model, houses), rel=1e-12)
    response = result.get_response()
    assert response["id"] == "t-1" and response["model_version"] == "7"
    assert triton_rest.is_server_live() and triton_rest.is_model_ready(MODEL_NAME)
    meta = triton_rest.get_model_metadata(MODEL_NAME)
    assert [i["name"] for i in meta["inputs"]] == list(schema.FEATURES)


@pytest.mark.parametrize("binary", [True, False], ids=["defaults", "json-only"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mainroad": "INT64"}, "input 'mainroad': datatype must be BYTES"),
        ({"drop": "parking"}, "missing input(s): parking"),
        ({"value": "maybe"}, "input mainroad: 'maybe' is not one of yes, no"),
    ],
)
def test_tritonclient_http_gets_a_clear_400_for_bad_tensors(
    triton_rest: Any, binary: bool, change: dict[str, str], message: str
) -> None:
    house = {**HOUSE, "mainroad": 1 if "mainroad" in change else change.get("value", "yes")}
    types = {k: v for k, v in change.items() if k in schema.FEATURES}
    inputs = _triton_inputs(triton_http, [house], binary, **types)
    inputs = [i for i in inputs if i.name() != change.get("drop")]
    with pytest.raises(InferenceServerException) as caught:
        triton_rest.infer(MODEL_NAME, inputs)
    assert caught.value.status() == "400"
    assert message in caught.value.message()


# -- tritonclient.grpc ----------------------------------------------------------------------
@pytest.mark.parametrize("rows", [1, 25])
def test_tritonclient_grpc_gets_the_models_prices(
    triton_grpc_client: Any, model: HousePriceModel, rows: int
) -> None:
    houses = _houses(rows)
    result = triton_grpc_client.infer(MODEL_NAME, _triton_inputs(triton_grpc, houses, True))
    assert result.as_numpy("price").tolist() == pytest.approx(_expected(model, houses), rel=1e-12)


def test_tritonclient_grpc_gets_invalid_argument_for_bad_tensors(triton_grpc_client: Any) -> None:
    inputs = _triton_inputs(triton_grpc, [{**HOUSE, "mainroad": 1}], True, mainroad="INT64")
    with pytest.raises(InferenceServerException) as caught:
        triton_grpc_client.infer(MODEL_NAME, inputs)
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'mainroad': datatype must be BYTES" in caught.value.message()


# -- the original system's clients ----------------------------------------------------------
def _original_v2_payload(house: dict[str, Any]) -> dict[str, Any]:
    """The original prediction service's request to KServe, as it built it."""
    inputs = []
    for name in schema.FEATURES:
        if name in schema.CATEGORICAL:
            inputs.append(
                {"name": name, "shape": [1], "datatype": "BYTES", "data": [house[name].upper()]}
            )
        elif name == "area":
            inputs.append({"name": name, "shape": [1], "datatype": "FP32", "data": [house[name]]})
        else:
            inputs.append({"name": name, "shape": [1], "datatype": "INT64", "data": [house[name]]})
    return {"inputs": inputs}


def test_the_original_services_v2_payload_is_priced(
    model_server: ModelServerProcess, model: HousePriceModel
) -> None:
    for house in _houses(5):
        answer = httpx.post(
            f"{model_server.url}/v2/models/{MODEL_NAME}/infer",
            json=_original_v2_payload(house),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        price = answer.json()["outputs"][0]["data"][0]  # where the original read it
        assert price == pytest.approx(_expected(model, [house])[0], rel=1e-12)


def test_the_original_services_request_body_is_answered_as_it_was(
    service: RunningService, model: HousePriceModel
) -> None:
    original = {
        "mainroad": "yes", "guestroom": "no", "basement": "yes", "hotwaterheating": "no",
        "airconditioning": "yes", "prefarea": "no", "furnishingstatus": "furnished",
        "area": 1200, "bedrooms": 3, "bathrooms": 2, "stories": 2, "parking": 1,
    }  # fmt: skip
    with service.client() as http:
        answer = http.post("/predict", json=original, headers={"X-API-Key": API_KEY})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == 200 and body["message"] == "House price prediction successful"
    assert body["response"]["unit"] == "GBP(£)"
    assert body["response"]["prediction"] == pytest.approx(_expected(model, [original])[0])


# -- KServe's own clients, in their virtualenv ----------------------------------------------
def test_kserves_clients_get_the_models_prices_and_clear_errors(
    kserve_python: Path, model_server: ModelServerProcess, grpc_port: int, model: HousePriceModel
) -> None:
    single, batch = _houses(1), _houses(30)
    cases = [
        {"label": "single, defaults", "houses": single, "binary": True},
        {"label": "batch, defaults", "houses": batch, "binary": True},
        {"label": "single, json", "houses": single, "binary": False},
        {"label": "batch, json", "houses": batch, "binary": False},
        {
            "label": "bad tensor",
            "houses": [{**HOUSE, "area": "big"}],
            "binary": False,
            "datatypes": {"area": "BYTES"},
        },
    ]
    spec = {
        "url": model_server.url,
        "grpc": f"127.0.0.1:{grpc_port}",
        "model": MODEL_NAME,
        "features": list(schema.FEATURES),
        "datatypes": dict(schema.V2_DATATYPE),
        "cases": cases,
    }
    script = Path(__file__).with_name("kserve_client.py")
    result = subprocess.run(
        [str(kserve_python), str(script)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout)
    for protocol in ("rest", "grpc"):
        by_label = {a["label"]: a for a in answers[protocol]}
        for case in cases[:-1]:
            got = by_label[case["label"]]
            assert "error" not in got, (protocol, got)
            assert got["prices"] == pytest.approx(_expected(model, case["houses"]), rel=1e-12)
        bad = by_label["bad tensor"]
        assert bad["status"] in (400, "StatusCode.INVALID_ARGUMENT"), (protocol, bad)
        assert "input 'area': datatype must be one of INT64, INT32, FP64, FP32" in bad["error"]
    rest = {a["label"]: a for a in answers["rest"]}
    assert rest["single, defaults"]["id"] == "kserve-1"  # (its REST parser drops model_version)
