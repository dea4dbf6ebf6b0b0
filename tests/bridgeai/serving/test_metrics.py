"""``GET /metrics``: Prometheus text that counts what was sent, on one worker and summed over two.

Parsed with prometheus_client's own parser, so the format is checked by Prometheus' code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridgeai import procs, schema
from bridgeai.model.house_price import HousePriceModel
from bridgeai.serving import codec
from tests.support.model_server import MODEL_NAME, model_server, save_with_info

pytestmark = pytest.mark.integration

INFER = f"/v2/models/{MODEL_NAME}/infer"
HOUSE = dict(schema.EXAMPLE_HOUSE)


def _samples(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _send(http: httpx.Client, ok: int, bad: int, rows: int) -> None:
    good = codec.build_request([HOUSE] * rows)
    for _ in range(ok):
        assert http.post(INFER, json=good).status_code == 200
    for _ in range(bad):
        assert http.post(INFER, json={"inputs": []}).status_code == 400
    assert http.get(f"/v2/models/{MODEL_NAME}").status_code == 200
    assert http.get("/v2/models/nope").status_code == 404


def test_metrics_count_what_was_sent(http: httpx.Client) -> None:
    before = _samples(http)
    _send(http, ok=5, bad=3, rows=4)
    after = _samples(http)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    rest = {"protocol": "rest"}
    requests = "bridgeai_model_server_requests_total"
    assert delta(requests, **rest, endpoint="infer", status="200") == 5
    assert delta(requests, **rest, endpoint="infer", status="400") == 3
    assert delta(requests, **rest, endpoint="model_metadata", status="200") == 1
    assert delta(requests, **rest, endpoint="model_metadata", status="404") == 1
    errors = "bridgeai_model_server_request_errors_total"
    assert delta(errors, **rest, endpoint="infer", status="400") == 3
    assert delta(errors, **rest, endpoint="infer", status="200") == 0
    latency = "bridgeai_model_server_request_duration_seconds"
    assert delta(f"{latency}_count", **rest, endpoint="infer") == 8
    assert delta(f"{latency}_bucket", **rest, endpoint="infer", le="+Inf") == 8
    assert delta(f"{latency}_sum", **rest, endpoint="infer") > 0
    # rows per request: 5 requests of 4 rows (the 400s predicted nothing)
    assert delta("bridgeai_model_server_request_rows_count", **rest) == 5
    assert delta("bridgeai_model_server_request_rows_sum", **rest) == 20
    assert delta("bridgeai_model_server_request_rows_bucket", **rest, le="2") == 0
    assert delta("bridgeai_model_server_request_rows_bucket", **rest, le="4") == 5
    info = _value(
        after,
        "bridgeai_model_server_model_info",
        model_name=MODEL_NAME,
        model_version="7",
        run_id="0123456789abcdef",
    )
    assert info == 1
    assert _value(after, "bridgeai_model_server_workers") == 1


def test_grpc_requests_are_counted_under_their_status_code(
    http: httpx.Client, grpc_port: int
) -> None:
    import tritonclient.grpc as triton

    before = _samples(http)
    with triton.InferenceServerClient(f"127.0.0.1:{grpc_port}") as client:
        assert client.is_server_live()
        with pytest.raises(Exception, match="is not served here"):
            client.get_model_metadata("nope")
    after = _samples(http)
    name = "bridgeai_model_server_requests_total"
    grpc = {"protocol": "grpc"}
    live = {**grpc, "endpoint": "server_live", "status": "OK"}
    missing = {**grpc, "endpoint": "model_metadata", "status": "NOT_FOUND"}
    assert _value(after, name, **live) - _value(before, name, **live) == 1
    assert _value(after, name, **missing) - _value(before, name, **missing) == 1


@pytest.fixture(scope="module")
def two_workers(model: HousePriceModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("two-workers")
    model_dir = save_with_info(model, root / "model", version="7", run_id="r")
    env = {"BRIDGEAI_MODEL_SERVER_WORKERS": "2", "BRIDGEAI_MODEL_SERVER_ACCESS_LOG": "false"}
    with model_server(str(model_dir), root / "server.log", env=env) as server:
        yield server


def test_metrics_are_summed_over_the_workers(two_workers: Any) -> None:
    sent = 40
    name = "bridgeai_model_server_requests_total"
    labels = {"protocol": "rest", "endpoint": "infer", "status": "200"}
    body = codec.build_request([HOUSE])
    for _ in range(sent):  # a new connection each: the kernel hands them to either worker
        with httpx.Client(base_url=two_workers.url, timeout=30) as fresh:
            assert fresh.post(INFER, json=body).status_code == 200
    with httpx.Client(base_url=two_workers.url, timeout=30) as http:
        # Another worker's counts reach a scrape within its snapshot interval (0.25 s).
        procs.wait_until(
            lambda: _value(_samples(http), name, **labels) == sent,
            timeout=30,
            service="the summed request count",
        )
        samples = _samples(http)
    assert _value(samples, "bridgeai_model_server_workers") == 2
    assert _value(samples, "bridgeai_model_server_request_rows_sum", protocol="rest") == sent


def test_metrics_can_be_turned_off(model: HousePriceModel, tmp_path: Path) -> None:
    model_dir = save_with_info(model, tmp_path / "model", version="1")
    env = {"BRIDGEAI_MODEL_SERVER_METRICS": "false", "BRIDGEAI_MODEL_SERVER_ACCESS_LOG": "false"}
    with (
        model_server(str(model_dir), tmp_path / "server.log", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        answer = http.get("/metrics")
    assert answer.status_code == 404 and "BRIDGEAI_MODEL_SERVER_METRICS" in answer.json()["error"]
