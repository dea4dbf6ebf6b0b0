"""The pooled v2 client: the original's encoding (lower-cased), against a real model server."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bridgeai import procs, schema
from bridgeai.service.errors import ModelFailed, ModelUnavailable
from bridgeai.service.model_client import (
    ModelClient,
    parse_binary_response,
    parse_v2_response,
    v2_binary_request,
    v2_request,
)
from tests.support.model_server import MODEL_NAME, reference_prices

HOUSE = dict(schema.EXAMPLE_HOUSE)


def test_request_is_the_originals_encoding_with_categoricals_lower_cased() -> None:
    upper = {k: v.upper() if isinstance(v, str) else v for k, v in HOUSE.items()}
    doc = orjson.loads(v2_request([upper, HOUSE], request_id="r-1"))
    assert doc["id"] == "r-1"
    assert [i["name"] for i in doc["inputs"]] == list(schema.FEATURES)
    by_name = {i["name"]: i for i in doc["inputs"]}
    for name in schema.FEATURES:
        assert by_name[name]["datatype"] == schema.V2_DATATYPE[name]
        assert by_name[name]["shape"] == [2]
    assert by_name["mainroad"]["data"] == ["yes", "yes"]
    assert by_name["furnishingstatus"]["data"] == ["furnished", "furnished"]
    assert by_name["area"]["data"] == [1200.0, 1200.0]
    assert by_name["bedrooms"]["data"] == [3, 3]
    assert by_name["area"]["datatype"] == "FP32" and by_name["bedrooms"]["datatype"] == "INT64"


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"{}", b'{"outputs": []}', b'{"outputs": [{"name": "price", "data": ["x"]}]}'],
)
def test_unreadable_responses_are_a_clear_502(payload: bytes) -> None:
    with pytest.raises(ModelFailed, match="not an OIP v2 inference response"):
        parse_v2_response(payload, 1)


def test_a_response_with_the_wrong_number_of_prices_is_refused() -> None:
    payload = orjson.dumps({"outputs": [{"name": "price", "data": [1.0, 2.0]}]})
    with pytest.raises(ModelFailed, match="2 prices for 1 houses"):
        parse_v2_response(payload, 1)


def test_price_output_found_by_name_and_version_read() -> None:
    payload = orjson.dumps(
        {
            "model_version": 4,
            "outputs": [{"name": "other", "data": [0.0]}, {"name": "price", "data": [9.5]}],
        }
    )
    result = parse_v2_response(payload, 1)
    assert result.prices == [9.5] and result.model_version == "4"


async def _with_client(url: str, coro, **kwargs):  # type: ignore[no-untyped-def]
    client = ModelClient(url, kwargs.pop("name", MODEL_NAME), **kwargs)
    await client.open()
    try:
        return await coro(client)
    finally:
        await client.close()


@pytest.mark.integration
def test_prices_match_the_model_and_categoricals_count(model_server, local_model) -> None:
    houses = [
        HOUSE,
        {**HOUSE, "airconditioning": "NO", "prefarea": "Yes"},
        {**HOUSE, "furnishingstatus": "UNFURNISHED", "mainroad": "no", "basement": "no"},
    ]

    async def call(client: ModelClient):
        return await client.infer(houses, request_id="abc")

    result = asyncio.run(_with_client(model_server.url, call))
    expected = reference_prices(local_model, houses)
    assert result.prices == pytest.approx(expected.tolist(), rel=1e-9)
    # The original upper-cased categoricals and its model ignored them; here they move prices.
    assert len(set(result.prices)) == 3
    assert result.model_version == "unversioned"


@pytest.mark.integration
def test_ready_state_reports_the_version(model_server) -> None:
    async def call(client: ModelClient):
        return await client.state(timeout=5)

    state = asyncio.run(_with_client(model_server.url, call))
    assert state.ok and state.version == "unversioned"


def test_unreachable_server_is_503_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{procs.free_port()}"

    async def call(client: ModelClient):
        with pytest.raises(ModelUnavailable) as caught:
            await client.infer([HOUSE])
        state = await client.state(timeout=2)
        return caught.value, state

    error, state = asyncio.run(_with_client(url, call, retries=2, backoff=0.01))
    assert "unreachable" in error.message and "after 3 attempts" in error.message
    assert "BRIDGEAI_MODEL_URL" in error.message
    assert error.status_code == 503 and error.transient
    assert not state.ok and "unreachable" in state.detail


@pytest.mark.integration
def test_wrong_model_name_says_which_setting_to_fix(model_server) -> None:
    async def call(client: ModelClient):
        with pytest.raises(ModelUnavailable) as caught:
            await client.infer([HOUSE])
        return caught.value

    error = asyncio.run(_with_client(model_server.url, call, name="no_such_model"))
    assert "no_such_model" in error.message and "BRIDGEAI_MODEL_NAME" in error.message


@pytest.mark.integration
def test_values_the_server_rejects_are_a_502_with_its_reason(model_server) -> None:
    async def call(client: ModelClient):
        with pytest.raises(ModelFailed) as caught:
            await client.infer([{**HOUSE, "mainroad": "maybe"}])
        return caught.value

    error = asyncio.run(_with_client(model_server.url, call))
    assert "HTTP 400" in error.message and "mainroad" in error.message


@pytest.mark.integration
@pytest.mark.slow
def test_a_hung_server_times_out_and_a_restarted_one_is_reconnected(
    own_model_server, caplog: pytest.LogCaptureFixture
) -> None:
    server = own_model_server
    caplog.set_level("DEBUG", logger="bridgeai.service.model")

    def retries_logged() -> int:
        return sum("retry" in r.getMessage() for r in caplog.records)

    async def scenario(client: ModelClient):
        first = await client.infer([HOUSE])  # opens a pooled keep-alive connection
        server.pause()
        with pytest.raises(ModelUnavailable) as caught:
            await client.infer([HOUSE])
        retries_after_timeout = retries_logged()
        server.resume()
        await asyncio.to_thread(server.stop)
        with pytest.raises(ModelUnavailable):
            await client.infer([HOUSE])
        retries_after_refusal = retries_logged()
        await asyncio.to_thread(server.start)
        # The pooled connection died with the old process: the retry must absorb that.
        again = await client.infer([HOUSE])
        return first, caught.value, again, retries_after_timeout, retries_after_refusal

    first, error, again, after_timeout, after_refusal = asyncio.run(
        _with_client(server.url, scenario, timeout=1.0, retries=2, backoff=0.01)
    )
    assert error.message == (
        f"The model server at {server.url} did not answer within 1s (BRIDGEAI_MODEL_TIMEOUT)"
    )
    assert after_timeout == 0  # one timeout, not one per retry
    assert after_refusal == 2  # a refused connection is retried (twice here)
    assert again.prices == first.prices


# -- binary tensors on the batch path -------------------------------------------------------
def test_the_binary_request_carries_the_same_tensors_as_the_json_one() -> None:
    from bridgeai.serving import codec

    houses = [HOUSE, {**HOUSE, "mainroad": "NO", "area": 2500.5, "parking": 3}]
    body, json_length = v2_binary_request(houses, request_id="r-2")
    binary = codec.decode_request(body, json_length)
    plain = codec.decode_request(v2_request(houses, request_id="r-2"))
    assert binary.id == plain.id == "r-2" and binary.rows == plain.rows == 2
    assert binary.binary_output  # the answer is asked for in binary too
    for name in schema.FEATURES:
        got = binary.rows_between()[name]
        want = plain.rows_between()[name]
        if name in schema.CATEGORICAL:
            assert [v.decode() for v in got] == list(want)
        else:
            assert list(got) == [float(v) for v in want]


@pytest.mark.integration
def test_batches_go_binary_to_our_model_server_with_the_same_prices(
    model_server, local_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridgeai.service import model_client

    sent = []
    original = model_client.v2_binary_request
    monkeypatch.setattr(
        model_client,
        "v2_binary_request",
        lambda *a, **k: sent.append(len(a[0])) or original(*a, **k),
    )
    houses = [
        HOUSE,
        {**HOUSE, "airconditioning": "NO"},
        {**HOUSE, "furnishingstatus": "unfurnished"},
    ]

    async def call(client: ModelClient):
        batch = await client.infer(houses)
        single = [await client.infer([house]) for house in houses]  # JSON: one house each
        return client.binary, batch, single

    binary, batch, single = asyncio.run(_with_client(model_server.url, call))
    assert binary is True and sent == [3]  # only the batch went binary
    assert batch.prices == [s.prices[0] for s in single]  # bit for bit
    assert batch.prices == pytest.approx(reference_prices(local_model, houses).tolist(), rel=1e-12)
    assert batch.model_version == "unversioned"


def test_another_v2_server_gets_json() -> None:
    from http.server import BaseHTTPRequestHandler

    from tests.support.http import serve

    bodies: list[bytes] = []

    class OtherServer(BaseHTTPRequestHandler):  # says it is MLServer, answers JSON
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, doc: object) -> None:
            payload = orjson.dumps(doc)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._send({"name": "mlserver", "version": "1.7", "extensions": []})

        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self._send({"outputs": [{"name": "price", "data": [1.0, 2.0]}]})

    async def call(client: ModelClient):
        return await client.infer([HOUSE, HOUSE]), client.binary

    with serve(OtherServer) as url:
        result, binary = asyncio.run(_with_client(url, call))
    assert binary is False and result.prices == [1.0, 2.0]
    assert orjson.loads(bodies[0])["inputs"][0]["data"] == [1200.0, 1200.0]  # plain JSON


_SHORT = b'{"outputs": [{"name": "price", "parameters": {"binary_data_size": 16}}]}'


@pytest.mark.parametrize(
    ("payload", "header"),
    [
        (_SHORT + b"\0" * 8, str(len(_SHORT))),  # 16 bytes declared, 8 sent
        (b'{"outputs": []}', "15"),
        (b"{}", "x"),
    ],
)  # fmt: skip
def test_unreadable_binary_responses_are_a_clear_502(payload: bytes, header: str) -> None:
    with pytest.raises(ModelFailed, match="binary response"):
        parse_binary_response(payload, header, 2)
