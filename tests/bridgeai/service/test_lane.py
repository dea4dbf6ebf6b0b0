"""The fast lane and the FastAPI routes answer every request identically."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgeai import schema
from tests.support.service import (
    API_KEY,
    RunningService,
    drop_database,
    fresh_database,
    run_service,
    service_settings,
)

pytestmark = pytest.mark.integration

HOUSE = dict(schema.EXAMPLE_HOUSE)
KEY = {"X-API-Key": API_KEY}
JSON = {"Content-Type": "application/json"}

REQUESTS = [
    ("/predict", HOUSE, KEY),
    ("/predict", {k: v.upper() if isinstance(v, str) else v for k, v in HOUSE.items()}, KEY),
    ("/predict/batch", {"houses": [HOUSE, {**HOUSE, "parking": 3}]}, KEY),
    ("/predict", {**HOUSE, "bedrooms": 99, "area": "1200", "furnishingstatus": "palace"}, KEY),
    ("/predict", {k: v for k, v in HOUSE.items() if k != "parking"}, KEY),
    ("/predict", {**HOUSE, "garden": True}, KEY),
    ("/predict", [HOUSE], KEY),
    ("/predict/batch", {"houses": []}, KEY),
    ("/predict/batch", {"houses": [HOUSE] * 4}, KEY),
    ("/predict/batch", {"houses": [HOUSE, {**HOUSE, "stories": 0}]}, KEY),
    ("/predict", HOUSE, {}),
    ("/predict", HOUSE, {"X-API-Key": "nope"}),
]


@pytest.fixture(scope="module")
def both(model_server, postgres_cluster, tmp_path_factory) -> Iterator[dict[bool, RunningService]]:
    urls = [fresh_database(postgres_cluster) for _ in range(2)]
    services: dict[bool, RunningService] = {}
    try:
        for lane, url in zip((True, False), urls, strict=True):
            settings = service_settings(
                model_server.url,
                url,
                Path(tmp_path_factory.mktemp("spool")),
                api_key=API_KEY,
                max_batch_rows=3,
                fast_lane=lane,
            )
            context = run_service(settings)
            services[lane] = context.__enter__()
            services[lane]._context = context  # type: ignore[attr-defined]
        yield services
    finally:
        for service in services.values():
            service._context.__exit__(None, None, None)  # type: ignore[attr-defined]
        for url in urls:
            drop_database(postgres_cluster, url)


def _normalised(response) -> tuple[int, object, str | None]:  # type: ignore[no-untyped-def]
    body = response.json()
    has_id = bool(body.get("request_id"))
    if has_id:
        assert response.headers.get("x-request-id", body["request_id"]) == body["request_id"]
        body["request_id"] = "<id>"
    return response.status_code, body, response.headers.get("www-authenticate")


@pytest.mark.parametrize(("path", "body", "headers"), REQUESTS)
def test_lane_and_routes_give_the_same_response(both, path, body, headers) -> None:
    answers = []
    for lane in (True, False):
        with both[lane].client() as http:
            answers.append(_normalised(http.post(path, json=body, headers=headers)))
    assert answers[0] == answers[1]


def test_malformed_json_is_422_on_both(both) -> None:
    for lane in (True, False):
        with both[lane].client() as http:
            response = http.post("/predict", content=b"{nope", headers={**KEY, **JSON})
        assert response.status_code == 422 and "JSON" in response.json()["message"]


def test_the_lane_actually_serves_predictions(both) -> None:
    lane_app = both[True].app.middleware_stack
    names = []
    while lane_app is not None:
        names.append(type(lane_app).__name__)
        lane_app = getattr(lane_app, "app", None)
    assert "PredictionLane" in names
    assert both[True].state.batcher.calls > 0
