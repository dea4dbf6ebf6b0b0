"""OIP v2 over gRPC, checked with a stock client (tritonclient's gRPC client, in this process)
against the real server that also serves REST: the same predictions, equivalent errors."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from bridgeai import schema
from bridgeai.model.house_price import HousePriceModel
from bridgeai.model.source import ModelInfo
from bridgeai.serving import codec
from bridgeai.serving import grpc_messages as pb
from bridgeai.testing.synthetic import housing_frame
from tests.support.model_server import MODEL_NAME, ModelServerProcess, reference_prices

pytestmark = pytest.mark.integration

_NUMPY = {"BYTES": np.object_, "FP32": np.float32, "FP64": np.float64, "INT64": np.int64}


@pytest.fixture(scope="module")
def client(server: ModelServerProcess, grpc_port: int) -> Any:
    with triton.InferenceServerClient(f"127.0.0.1:{grpc_port}") as stock:
        yield stock


def _houses(rows: int, seed: int = 3) -> list[dict[str, Any]]:
    return housing_frame(rows, seed=seed).select(schema.FEATURES).to_dicts()


def _inputs(houses: list[dict[str, Any]], **datatypes: str) -> list[Any]:
    out = []
    for name in schema.FEATURES:
        datatype = datatypes.get(name, schema.V2_DATATYPE[name])
        values = np.array([h[name] for h in houses], dtype=_NUMPY[datatype])
        tensor = triton.InferInput(name, [len(houses)], datatype)
        tensor.set_data_from_numpy(values)
        out.append(tensor)
    return out


def test_health_metadata_and_readiness(client: Any, identity: ModelInfo) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL_NAME)
    assert client.is_model_ready(MODEL_NAME, identity.version)
    with pytest.raises(InferenceServerException, match="is not served here") as caught:
        client.is_model_ready("no_such_model")  # as REST: 404, here NOT_FOUND
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    meta = client.get_server_metadata()
    assert meta.name == "bridgeai-model-server" and "binary_tensor_data" in meta.extensions
    model = client.get_model_metadata(MODEL_NAME)
    assert list(model.versions) == [identity.version] and model.platform == "lightgbm"
    assert [i.name for i in model.inputs] == list(schema.FEATURES)
    assert [(o.name, o.datatype) for o in model.outputs] == [("price", "FP64")]


@pytest.mark.parametrize("rows", [1, 7, 1_000])
def test_grpc_and_rest_give_identical_predictions(
    client: Any, http: httpx.Client, model: HousePriceModel, rows: int
) -> None:
    houses = _houses(rows)
    result = client.infer(MODEL_NAME, _inputs(houses), request_id="grpc-1")
    prices = result.as_numpy("price")
    rest = http.post(f"/v2/models/{MODEL_NAME}/infer", json=codec.build_request(houses)).json()
    assert prices.tolist() == rest["outputs"][0]["data"]  # bit for bit
    assert prices == pytest.approx(reference_prices(model, houses), rel=1e-12)
    response = result.get_response()
    assert response.id == "grpc-1" and response.model_version == "7"


def test_other_datatypes_and_a_version_are_accepted(client: Any, model: HousePriceModel) -> None:
    houses = _houses(4)
    inputs = _inputs(houses, area="FP64", parking="FP32")
    prices = client.infer(MODEL_NAME, inputs, model_version="7").as_numpy("price")
    assert prices == pytest.approx(reference_prices(model, houses), rel=1e-12)


def _rest_error(http: httpx.Client, body: dict[str, Any], name: str = MODEL_NAME) -> Any:
    return http.post(f"/v2/models/{name}/infer", json=body)


def _grpc_error(client: Any, inputs: list[Any], name: str = MODEL_NAME) -> Any:
    with pytest.raises(InferenceServerException) as caught:
        client.infer(name, inputs)
    return caught.value


def _without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {"inputs": [i for i in body["inputs"] if i["name"] != name]}


def _replace(body: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    return {"inputs": [i | changes if i["name"] == name else i for i in body["inputs"]]}


HOUSE = dict(schema.EXAMPLE_HOUSE)


@pytest.mark.parametrize(
    ("label", "status", "code"),
    [
        ("missing input", 400, "StatusCode.INVALID_ARGUMENT"),
        ("bad category", 400, "StatusCode.INVALID_ARGUMENT"),
        ("wrong datatype", 400, "StatusCode.INVALID_ARGUMENT"),
        ("duplicate input", 400, "StatusCode.INVALID_ARGUMENT"),
        ("rows differ", 400, "StatusCode.INVALID_ARGUMENT"),
        ("unknown model", 404, "StatusCode.NOT_FOUND"),
    ],
)
def test_grpc_and_rest_give_equivalent_errors(
    client: Any, http: httpx.Client, label: str, status: int, code: str
) -> None:
    body = codec.build_request([HOUSE])
    inputs = _inputs([HOUSE])
    name = MODEL_NAME
    if label == "missing input":
        body = _without(body, "parking")
        inputs = [i for i in inputs if i.name() != "parking"]
    elif label == "bad category":
        body = _replace(body, "mainroad", data=["maybe"])
        inputs = _inputs([{**HOUSE, "mainroad": "maybe"}])
    elif label == "wrong datatype":
        body = _replace(body, "area", datatype="BYTES", data=["1200"])
        inputs = _inputs([{**HOUSE, "area": "1200"}], area="BYTES")
    elif label == "duplicate input":
        body = {"inputs": [*body["inputs"], body["inputs"][0]]}
        inputs = [*inputs, inputs[0]]
    elif label == "rows differ":
        body = _replace(body, "area", shape=[2], data=[1200, 900])
        two = _inputs([HOUSE, HOUSE])
        inputs = [two[0], *inputs[1:]]
    else:
        name = "no_such_model"
    rest = _rest_error(http, body, name)
    error = _grpc_error(client, inputs, name)
    assert rest.status_code == status
    assert error.status() == code
    assert error.message() == rest.json()["error"]  # the same message, word for word


def _raw_call(port: int, request: Any) -> grpc.RpcError:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            f"/{pb.SERVICE}/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=30)
    return caught.value


def _request(**tensor_changes: Any) -> Any:
    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    for name in schema.FEATURES:
        tensor = request.inputs.add(name=name, datatype=schema.V2_DATATYPE[name], shape=[1])
        value = HOUSE[name]
        if name in schema.CATEGORICAL:
            tensor.contents.bytes_contents.append(str(value).encode())
        elif schema.V2_DATATYPE[name] == "FP32":
            tensor.contents.fp32_contents.append(float(value))
        else:
            tensor.contents.int64_contents.append(int(value))
        if name in tensor_changes:
            tensor_changes[name](tensor)
    return request


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.contents.ClearField("fp32_contents") or t.contents.fp64_contents.append(1.0),
         "input 'area': FP32 values go in contents.fp32_contents, got contents.fp64_contents"),
        (lambda t: t.contents.fp32_contents.__setitem__(0, float("nan")),
         "input 'area': FP32 data must be finite numbers; got nan"),
        (lambda t: t.contents.fp32_contents.append(2.0),
         "input 'area': shape [1] needs 1 value(s) but 'data' has 2"),
    ],
)  # fmt: skip
def test_contents_that_disagree_with_the_tensor_are_refused(
    server: ModelServerProcess, grpc_port: int, change: Any, message: str
) -> None:
    error = _raw_call(grpc_port, _request(area=change))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == message


def test_raw_contents_must_be_one_per_input_and_add_up(
    server: ModelServerProcess, grpc_port: int
) -> None:
    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    for name in schema.FEATURES:
        request.inputs.add(name=name, datatype="FP64" if name == "area" else "INT64", shape=[1])
    request.raw_input_contents.append(b"\x00" * 8)
    error = _raw_call(grpc_port, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "raw_input_contents has 1 entries for 12 inputs: send one per input, or use contents"
    )
    non_utf8 = _request(mainroad=lambda t: t.contents.bytes_contents.__setitem__(0, b"\xff"))
    error = _raw_call(grpc_port, non_utf8)
    assert error.details() == "input 'mainroad': BYTES element b'\\xff' is not valid UTF-8 text"


def test_the_repository_extension_is_unimplemented(client: Any) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.load_model(MODEL_NAME)
    assert caught.value.status() == "StatusCode.UNIMPLEMENTED"
