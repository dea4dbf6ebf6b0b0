"""The OIP v2 model server, tested as a real ``bridgeai serve-model`` process over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bridgeai import procs, schema
from bridgeai.model.house_price import HousePriceModel
from bridgeai.serving import codec as v2
from bridgeai.testing.synthetic import housing_frame
from tests.support.model_server import (
    MODEL_NAME,
    RunningServer,
    model_server,
    register,
    save_with_info,
    serve_command,
)
from tests.support.models import tiny_model

pytestmark = pytest.mark.integration

VERSION = "7"
RUN_ID = "0123456789abcdef"
# Small thresholds so a 1,000-row request takes the offloaded, pipelined path.
SERVER_ENV = {
    "BRIDGEAI_MODEL_SERVER_BATCH_ROWS": "64",
    "BRIDGEAI_MODEL_SERVER_CHUNK_ROWS": "256",
    "BRIDGEAI_MODEL_SERVER_OFFLOAD_BYTES": "4096",
    "BRIDGEAI_MODEL_SERVER_MAX_BODY_BYTES": "2000000",
}


@pytest.fixture(scope="module")
def model() -> HousePriceModel:
    return tiny_model()


@pytest.fixture(scope="module")
def server(
    model: HousePriceModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("model-server")
    model_dir = save_with_info(model, root / "model", version=VERSION, run_id=RUN_ID)
    with model_server(str(model_dir), root / "server.log", env=SERVER_ENV) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def _houses(rows: int, seed: int = 11) -> list[dict[str, Any]]:
    frame = housing_frame(rows, seed=seed).select(schema.FEATURES)
    return frame.to_dicts()


def _expected(model: HousePriceModel, houses: list[dict[str, Any]]) -> np.ndarray:
    return model.predict({f: [h[f] for h in houses] for f in schema.FEATURES})


def _infer(http: httpx.Client, body: Any, **kwargs: Any) -> httpx.Response:
    return http.post(f"/v2/models/{MODEL_NAME}/infer", json=body, **kwargs)


# -- health and metadata ------------------------------------------------------------------------
def test_health_and_server_metadata(http: httpx.Client) -> None:
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    meta = http.get("/v2").json()
    assert meta["name"] == "bridgeai-model-server"
    assert meta["version"]


@pytest.mark.parametrize("suffix", ["", f"/versions/{VERSION}"])
def test_model_metadata_and_readiness(http: httpx.Client, suffix: str) -> None:
    meta = http.get(f"/v2/models/{MODEL_NAME}{suffix}").json()
    assert meta["name"] == MODEL_NAME
    assert meta["versions"] == [VERSION]
    assert meta["platform"] == "lightgbm"
    assert [i["name"] for i in meta["inputs"]] == list(schema.FEATURES)
    assert meta["outputs"] == [{"name": "price", "datatype": "FP64", "shape": [-1]}]
    assert meta["parameters"]["mlflow_run_id"] == RUN_ID
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
    body = v2.build_request([schema.EXAMPLE_HOUSE])
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
    http: httpx.Client, model: HousePriceModel
) -> None:
    # The original service upper-cased categoricals and sent area as FP32, counts as INT64.
    house = {k: v.upper() if isinstance(v, str) else v for k, v in schema.EXAMPLE_HOUSE.items()}
    body = v2.build_request([house], request_id="req-1")
    assert {i["name"]: i["datatype"] for i in body["inputs"]} == schema.V2_DATATYPE
    response = _infer(http, body, headers={"x-request-id": "trace-42"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-42"
    doc = response.json()
    assert doc["model_name"] == MODEL_NAME
    assert doc["model_version"] == VERSION
    assert doc["id"] == "req-1"
    [output] = doc["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("price", "FP64", [1])
    assert output["data"][0] == pytest.approx(_expected(model, [house])[0], rel=1e-12)


def test_versioned_infer(http: httpx.Client, model: HousePriceModel) -> None:
    houses = _houses(3)
    response = http.post(
        f"/v2/models/{MODEL_NAME}/versions/{VERSION}/infer", json=v2.build_request(houses)
    )
    assert response.status_code == 200
    np.testing.assert_allclose(
        v2.prices_from(response.json()), _expected(model, houses), rtol=1e-12
    )


def test_yes_and_YES_give_identical_predictions(http: httpx.Client) -> None:
    lower = _houses(20, seed=5)
    spellings = (str.upper, str.capitalize, lambda s: f"  {s.upper()} ")
    variants = [
        [{k: spell(v) if isinstance(v, str) else v for k, v in h.items()} for h in lower]
        for spell in spellings
    ]
    baseline = v2.prices_from(_infer(http, v2.build_request(lower)).json())
    for houses in variants:
        assert v2.prices_from(_infer(http, v2.build_request(houses)).json()) == baseline
    # ...and the categoricals matter: flipping one changes some prediction.
    flipped = [
        {**h, "airconditioning": "no" if h["airconditioning"] == "yes" else "yes"} for h in lower
    ]
    assert v2.prices_from(_infer(http, v2.build_request(flipped)).json()) != baseline


def test_large_batch_in_every_accepted_encoding_matches_the_model(
    http: httpx.Client, model: HousePriceModel
) -> None:
    houses = _houses(1000, seed=21)  # > chunk_rows: decoded off the loop, pipelined
    body = v2.build_request(houses)
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
    prices = v2.prices_from(response.json())
    assert response.json()["outputs"][0]["shape"] == [1000]
    np.testing.assert_allclose(prices, _expected(model, houses), rtol=1e-12)


def test_a_large_request_in_the_original_clients_form_matches_the_model(
    http: httpx.Client, model: HousePriceModel
) -> None:
    houses = _houses(5_000, seed=23)
    for i, house in enumerate(houses):  # any case, as clients send them
        house["mainroad"] = house["mainroad"].upper() if i % 2 else house["mainroad"]
        house["furnishingstatus"] = house["furnishingstatus"].title() if i % 3 else "UNFURNISHED"
    response = _infer(http, v2.build_request(houses))
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        v2.prices_from(response.json()), _expected(model, houses), rtol=1e-12
    )
    # A bad value deep in a large request gets the same 400 as in a small one.
    houses[4_321]["furnishingstatus"] = "palace"
    response = _infer(http, v2.build_request(houses))
    assert response.status_code == 400
    assert "furnishingstatus: 'palace' is not one of" in response.json()["error"]


def _request_with(input_name: str, **changes: Any) -> dict[str, Any]:
    body = v2.build_request(_houses(2))
    for tensor in body["inputs"]:
        if tensor["name"] == input_name:
            tensor.update(changes)
    return body


def _without(name: str) -> dict[str, Any]:
    body = v2.build_request(_houses(2))
    body["inputs"] = [t for t in body["inputs"] if t["name"] != name]
    return body


def _renamed(old: str, new: str) -> dict[str, Any]:
    return _request_with(old, name=new)


def _duplicated(name: str) -> dict[str, Any]:
    body = v2.build_request(_houses(2))
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
        {**v2.build_request(_houses(1)), "outputs": [{"name": "log_price"}]},
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
    body = v2.build_request(_houses(40_000, seed=1))  # ~2.4 MB > the 2,000,000-byte limit
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


def test_logs_are_json_lines_with_request_ids(http: httpx.Client, server: RunningServer) -> None:
    _infer(http, v2.build_request([schema.EXAMPLE_HOUSE]), headers={"x-request-id": "log-me-7"})
    procs.wait_until(  # access lines are written in batches, every 50 ms
        lambda: "log-me-7" in server.log_file.read_text(), timeout=10, service="access log"
    )
    records = [json.loads(line) for line in server.log_file.read_text().splitlines() if line]
    loaded = next(r for r in records if r["message"] == "model loaded")
    assert (loaded["model_version"], loaded["run_id"]) == (VERSION, RUN_ID)
    access = next(r for r in records if r.get("request_id") == "log-me-7")
    assert access["logger"] == "bridgeai.serving.app.access"
    assert (access["status"], access["method"]) == (200, "POST")
    assert access["duration_ms"] > 0


# -- loading --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_registered_model_serves_the_pyfunc_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    model = tiny_model(housing_frame(400, seed=8), rounds=40)
    registered = register(model)
    houses = _houses(200, seed=13)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{registered.version}")
    frame = housing_frame(200, seed=13).select(schema.FEATURES).to_pandas()
    frame["area"] = frame["area"].astype(np.float64)  # the signature's type for area
    expected = np.asarray(pyfunc.predict(frame), dtype=np.float64).reshape(-1)

    env = {"MLFLOW_TRACKING_URI": registered.tracking_uri}
    uri = f"models:/{MODEL_NAME}@champion"
    with model_server(uri, tmp_path / "server.log", env=env) as running:
        meta = httpx.get(f"{running.url}/v2/models/{MODEL_NAME}", timeout=30).json()
        response = httpx.post(running.infer_url(), json=v2.build_request(houses), timeout=60)
    assert meta["versions"] == [registered.version]
    assert meta["parameters"]["mlflow_run_id"] == registered.run_id
    assert response.json()["model_version"] == registered.version
    np.testing.assert_allclose(v2.prices_from(response.json()), expected, rtol=1e-12)

    # An alias nobody set: the server refuses to start, saying why (no traceback).
    failed = _serve_and_fail(f"models:/{MODEL_NAME}@no-such-alias", env)
    assert failed.returncode == 2
    assert "cannot be resolved in MLflow" in failed.stderr
    assert "no-such-alias" in failed.stderr
    assert "Traceback" not in failed.stderr


def _serve_and_fail(
    uri: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [*serve_command(), "--model-uri", uri, "--port", "9"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def test_missing_model_directory_exits_with_a_message(tmp_path: Path) -> None:
    result = _serve_and_fail(str(tmp_path / "no-such-model"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_serving_a_directory_imports_neither_prefect_nor_mlflow(
    model: HousePriceModel, tmp_path: Path
) -> None:
    model_dir = save_with_info(model, tmp_path / "model", version="1")
    script = (
        "import sys\n"
        "from bridgeai import model_server\n"
        f"s = model_server.ModelServerSettings(model_uri={str(model_dir)!r})\n"
        "app = model_server.create_app(s, model_server.load_served_model(s))\n"
        # (lightgbm itself imports pandas and sklearn when they are installed, as here.)
        "heavy = {'prefect', 'mlflow', 'blocks', 'polars', 'fastapi', 'evidently'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"
