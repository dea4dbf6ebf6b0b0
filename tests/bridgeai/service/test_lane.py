"""The fast lane and the FastAPI routes answer every request with the same bytes.

Each request goes to two real services on the same model server, one with the lane
(``BRIDGEAI_FAST_LANE=true``, the default) and one without; their answers must be byte-identical
(the random request ids aside). The lane counts what it takes in ``/metrics``, so a lane that
stopped serving (and let everything through to FastAPI) fails here too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridgeai import procs, schema
from tests.support.model_server import ModelServerProcess
from tests.support.service import (
    API_KEY,
    RunningService,
    run_service,
    service_settings,
)

pytestmark = pytest.mark.integration

HOUSE = dict(schema.EXAMPLE_HOUSE)
KEY = {"X-API-Key": API_KEY}
JSON = {"Content-Type": "application/json"}
MAX_BATCH_ROWS = 3
# What BodyLimitMiddleware allows for MAX_BATCH_ROWS houses (2 KiB each, plus 64 KiB).
BODY_LIMIT = MAX_BATCH_ROWS * 2048 + 64 * 1024

Both = dict[bool, RunningService]


@contextmanager
def _both(model_url: str, databases: list[str], tmp_path: Path) -> Iterator[Both]:
    """Two services on ``model_url``, with the lane (True) and without it (False)."""
    with ExitStack() as stack:
        services: Both = {}
        for lane, url in zip((True, False), databases, strict=True):
            settings = service_settings(
                model_url,
                url,
                tmp_path / f"spool-{lane}",
                api_key=API_KEY,
                max_batch_rows=MAX_BATCH_ROWS,
                model_retries=0,
                fast_lane=lane,
            )
            services[lane] = stack.enter_context(run_service(settings))
        yield services


@pytest.fixture(scope="module")
def both(model_server, postgres_cluster, tmp_path_factory) -> Iterator[Both]:
    urls = [postgres_cluster.create_database() for _ in range(2)]
    try:
        with _both(model_server.url, urls, tmp_path_factory.mktemp("lane")) as services:
            yield services
    finally:
        for url in urls:
            postgres_cluster.drop_database(url)


def _sqlite(tmp_path: Path) -> list[str]:
    return [f"sqlite:///{tmp_path / f'log-{lane}.db'}" for lane in (True, False)]


def _answer(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    """Status, body bytes with the request id masked, and the headers a client relies on."""
    content = response.content
    request_id = json.loads(content).get("request_id")
    if request_id:
        assert response.headers.get("x-request-id", request_id) == request_id
        content = content.replace(request_id.encode(), b"<request-id>")
    headers = {
        name: response.headers[name]
        for name in ("content-type", "www-authenticate")
        if name in response.headers
    }
    return response.status_code, content, headers


def _same_answer(services: Both, send: Any) -> tuple[int, bytes, dict[str, str]]:
    answers = []
    for lane in (True, False):
        with services[lane].client() as http:
            answers.append(_answer(send(http)))
    assert answers[0] == answers[1]
    return answers[0]


def _post(path: str, *, headers: dict[str, str] = KEY, **kwargs: Any) -> Any:
    """A request to send to both services."""
    return lambda http: http.post(path, headers=headers, **kwargs)


def _lane_count(service: RunningService) -> float:
    with service.client() as http:
        text = http.get("/metrics").text
    match = re.search(r"^bridgeai_fast_lane_requests_total (\S+)$", text, re.MULTILINE)
    assert match, "the lane's counter is missing from /metrics"
    return float(match.group(1))


def _chunks(n: int) -> Iterator[bytes]:
    yield b'{"houses": ['
    for _ in range(n):
        yield json.dumps(HOUSE).encode() + b","
    yield json.dumps(HOUSE).encode() + b"]}"


# (path, json body, headers, expected status); every error class the routes can answer.
REQUESTS = [
    ("/predict", HOUSE, KEY, 200),
    ("/predict", {k: v.upper() if isinstance(v, str) else v for k, v in HOUSE.items()}, KEY, 200),
    ("/predict/batch", {"houses": [HOUSE, {**HOUSE, "parking": 3}]}, KEY, 200),
    # Integral JSON numbers are integers (JSON Schema); non-integral ones and text are not.
    ("/predict", {**HOUSE, "stories": 1.0, "bathrooms": 6.0}, KEY, 200),
    ("/predict/batch", {"houses": [HOUSE, {**HOUSE, "parking": 2.0}]}, KEY, 200),
    ("/predict", {**HOUSE, "stories": 1.5}, KEY, 422),
    ("/predict", {**HOUSE, "stories": "2"}, KEY, 422),
    ("/predict", {**HOUSE, "bedrooms": 99, "area": "1200", "furnishingstatus": "palace"}, KEY, 422),
    ("/predict", {k: v for k, v in HOUSE.items() if k != "parking"}, KEY, 422),
    ("/predict", {**HOUSE, "garden": True}, KEY, 422),
    ("/predict", [HOUSE], KEY, 422),
    ("/predict/batch", {"houses": []}, KEY, 422),
    ("/predict/batch", {"houses": [HOUSE] * (MAX_BATCH_ROWS + 1)}, KEY, 422),  # too many rows
    ("/predict/batch", {"houses": [HOUSE, {**HOUSE, "stories": 0}]}, KEY, 422),
    ("/predict", HOUSE, {}, 401),
    ("/predict", HOUSE, {"X-API-Key": "nope"}, 401),
]


@pytest.mark.parametrize(("path", "body", "headers", "status"), REQUESTS)
def test_lane_and_routes_give_the_same_bytes(both: Both, path, body, headers, status) -> None:
    answer = _same_answer(both, _post(path, json=body, headers=headers))
    assert answer[0] == status


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"{nope", 422), (b"", 422), (b'"a house"', 422), (b" " * (BODY_LIMIT + 1), 413)],
)
def test_bodies_that_are_not_json_or_too_large_give_the_same_bytes(
    both: Both, content: bytes, status: int
) -> None:
    send = _post("/predict", content=content, headers={**KEY, **JSON})
    assert _same_answer(both, send)[0] == status


def test_a_chunked_body_over_the_limit_gives_the_same_413(both: Both) -> None:
    def send(http: httpx.Client) -> httpx.Response:
        response = http.post("/predict/batch", content=_chunks(400), headers={**KEY, **JSON})
        assert "content-length" not in response.request.headers  # really chunked
        return response

    status, content, _ = _same_answer(both, send)
    assert status == 413 and b"fewer houses" in content


def test_an_unexpected_error_gives_the_same_500(both: Both) -> None:
    # The model client used after it was closed: a bug, not a domain error.
    for service in both.values():
        service.on_loop(service.state.model.close())
    try:
        status, content, _ = _same_answer(both, _post("/predict", json=HOUSE))
    finally:
        for service in both.values():
            service.on_loop(service.state.model.open())
    assert status == 500
    message = json.loads(content)["message"]
    assert message == (
        "Internal error in the prediction service; it has been logged under request id <request-id>"
    )


def test_a_model_server_that_rejects_every_call_gives_the_same_502(
    model_dir: Path, tmp_path: Path
) -> None:
    # A real model server whose body limit no request fits under: it answers 413 to the service.
    env = {
        "BRIDGEAI_MODEL_SERVER_MAX_BODY_BYTES": "64",
        "BRIDGEAI_MODEL_SERVER_ACCESS_LOG": "false",
    }
    rejecting = ModelServerProcess(str(model_dir), tmp_path / "model-server.log", env=env)
    rejecting.start()
    try:
        with _both(rejecting.url, _sqlite(tmp_path), tmp_path) as services:
            for path, body in (("/predict", HOUSE), ("/predict/batch", {"houses": [HOUSE]})):
                status, content, _ = _same_answer(services, _post(path, json=body))
                assert status == 502
                assert b"rejected the request with HTTP 413" in content
    finally:
        rejecting.stop()


def test_an_unreachable_model_server_gives_the_same_503(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{procs.free_port()}"
    with _both(nowhere, _sqlite(tmp_path), tmp_path) as services:
        status, content, _ = _same_answer(services, _post("/predict", json=HOUSE))
    assert status == 503
    assert b"unreachable" in content and nowhere.encode() in content


def test_the_lane_takes_the_prediction_requests_and_only_when_enabled(both: Both) -> None:
    before = {lane: _lane_count(service) for lane, service in both.items()}
    for service in both.values():
        with service.client(headers=KEY) as http:
            for _ in range(3):
                assert http.post("/predict", json=HOUSE).status_code == 200
            assert http.post("/predict/batch", json={"houses": [HOUSE]}).status_code == 200
            assert http.post("/predict", json={**HOUSE, "bedrooms": 99}).status_code == 422
            assert http.get("/health").status_code == 200  # not a prediction: not the lane's
    assert _lane_count(both[True]) - before[True] == 5
    assert _lane_count(both[False]) == before[False] == 0
