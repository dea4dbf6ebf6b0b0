"""The prediction service end to end: a real model server process, a real PostgreSQL cluster,
the app under uvicorn, and a real HTTP client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from bridgeai import schema
from bridgeai.service.models import MESSAGE, UNIT
from tests.support.model_server import reference_prices
from tests.support.service import (
    API_KEY,
    MODEL_NAME,
    RunningService,
    count_rows,
    logged,
    run_service,
    service_settings,
    wait_for,
)

pytestmark = pytest.mark.integration

HOUSE = dict(schema.EXAMPLE_HOUSE)
KEY = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def service_db(postgres_cluster) -> Iterator[str]:
    url = postgres_cluster.create_database()
    try:
        yield url
    finally:
        postgres_cluster.drop_database(url)


@pytest.fixture(scope="module")
def service(model_server, service_db: str, tmp_path_factory) -> Iterator[RunningService]:
    """One service with an API key, shared by this module's read-mostly tests."""
    settings = service_settings(
        model_server.url,
        service_db,
        tmp_path_factory.mktemp("spool"),
        api_key=API_KEY,
        max_batch_rows=5,
    )
    with run_service(settings) as running:
        yield running


@pytest.fixture
def client(service: RunningService) -> Iterator[httpx.Client]:
    with service.client(headers=KEY) as http:
        yield http


def _settled(service: RunningService, url: str) -> int:
    """Row count once the writer has nothing queued."""
    wait_for(lambda: service.state.writer.queue_depth == 0)
    return count_rows(url)


def _rows_of(url: str, request_id: str, expected: int) -> list[dict] | None:
    rows = [r for r in logged(url) if r["request_id"] == request_id]
    return rows if len(rows) == expected else None


def _price(local_model, house: dict) -> float:
    return float(reference_prices(local_model, [house])[0])


# -- the original's contract ----------------------------------------------------------------
def test_example_body_returns_the_originals_response(client, service_db, local_model) -> None:
    response = client.post("/predict", json=HOUSE)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "status",
        "message",
        "response",
        "model_name",
        "model_version",
        "request_id",
    }
    assert (
        body["status"] == 200 and body["message"] == MESSAGE == "House price prediction successful"
    )
    assert body["response"]["unit"] == UNIT == "GBP(£)"
    assert body["response"]["prediction"] == pytest.approx(_price(local_model, HOUSE), rel=1e-9)
    assert body["model_name"] == MODEL_NAME and body["model_version"] == "unversioned"
    assert response.headers["X-Request-ID"] == body["request_id"]

    rows = wait_for(
        lambda: [r for r in logged(service_db) if r["request_id"] == body["request_id"]]
    )
    (row,) = rows
    assert row["status"] == 200 and row["prediction"] == pytest.approx(
        body["response"]["prediction"]
    )
    assert {f: row[f] for f in schema.FEATURES} == HOUSE
    assert row["model_version"] == "unversioned" and row["latency_ms"] > 0
    assert row["created_at"].tzinfo is not None


def test_yes_no_in_any_case_gives_identical_predictions(client) -> None:
    prices = set()
    for spell in (str.lower, str.upper, str.capitalize, lambda s: f"  {s.upper()} "):
        body = {k: spell(v) if isinstance(v, str) else v for k, v in HOUSE.items()}
        response = client.post("/predict", json=body)
        assert response.status_code == 200, response.text
        prices.add(response.json()["response"]["prediction"])
    assert len(prices) == 1


def test_batch_prices_match_single_predictions_and_log_one_row_each(client, service_db) -> None:
    houses = [HOUSE, {**HOUSE, "airconditioning": "no"}, {**HOUSE, "stories": 4, "area": 5000}]
    response = client.post("/predict/batch", json={"houses": houses})
    assert response.status_code == 200, response.text
    body = response.json()
    singles = [client.post("/predict", json=h).json()["response"]["prediction"] for h in houses]
    assert body["response"]["predictions"] == pytest.approx(singles, rel=1e-12)
    assert body["response"]["unit"] == UNIT and body["status"] == 200
    rows = wait_for(lambda: _rows_of(service_db, body["request_id"], expected=3))
    assert [r["batch_index"] for r in rows] == [0, 1, 2]


# -- every 422 path, each naming the field ------------------------------------------------------
def _without(field: str) -> dict:
    body = dict(HOUSE)
    del body[field]
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_without("parking"), "parking"),
        ({**HOUSE, "bedrooms": 99}, "bedrooms"),
        ({**HOUSE, "bedrooms": -1}, "bedrooms"),
        ({**HOUSE, "stories": 5}, "stories"),
        ({**HOUSE, "furnishingstatus": "palace"}, "furnishingstatus"),
        ({**HOUSE, "mainroad": "maybe"}, "mainroad"),
        ({**HOUSE, "area": "1200"}, "area"),
        ({**HOUSE, "area": 0}, "area"),
        ({**HOUSE, "bathrooms": 2.5}, "bathrooms"),
        ({**HOUSE, "garden": "yes"}, "garden"),
    ],
)
def test_invalid_houses_are_422_naming_the_field_and_not_logged(
    service, client, service_db, body, field
) -> None:
    before = _settled(service, service_db)
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    doc = response.json()
    assert doc["status"] == 422 and field in doc["message"]
    assert [d["field"] for d in doc["detail"]] == [field]
    assert "Traceback" not in response.text
    assert _settled(service, service_db) == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "JSON"),
        (b"", "body"),
        (b"[1, 2]", "body"),
        (b'"a house"', "body"),
    ],
)
def test_bodies_that_are_not_a_house_object_are_422(client, content, expected) -> None:
    response = client.post(
        "/predict", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert expected.lower() in response.json()["message"].lower()


def test_batch_validation_errors_name_the_row_and_field(client) -> None:
    response = client.post("/predict/batch", json={"houses": [HOUSE, {**HOUSE, "bedrooms": 99}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "houses.1.bedrooms"
    empty = client.post("/predict/batch", json={"houses": []})
    assert empty.status_code == 422 and empty.json()["detail"][0]["field"] == "houses"
    missing = client.post("/predict/batch", json={"rows": [HOUSE]})
    assert missing.status_code == 422 and "houses" in missing.json()["message"]


def test_batch_over_the_configured_limit_is_422_saying_how_to_fix(
    service, client, service_db
) -> None:
    before = _settled(service, service_db)
    response = client.post("/predict/batch", json={"houses": [HOUSE] * 6})
    assert response.status_code == 422
    message = response.json()["message"]
    assert "houses" in message and "limit of 5" in message and "BRIDGEAI_MAX_BATCH_ROWS" in message
    assert _settled(service, service_db) == before


def test_an_oversized_body_is_refused_before_it_is_read(client) -> None:
    response = client.post(
        "/predict/batch",
        content=b"{" + b" " * 200_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413 and "fewer houses" in response.json()["message"]


def test_a_chunked_body_over_the_limit_is_413(client) -> None:
    def chunks():
        yield b'{"houses": ['
        for _ in range(400):
            yield json.dumps(HOUSE).encode() + b","
        yield json.dumps(HOUSE).encode() + b"]}"

    response = client.post(
        "/predict/batch", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers  # really chunked
    assert response.status_code == 413 and "fewer houses" in response.json()["message"]


# -- every 401 path -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "Missing API key"),
        ({"X-API-Key": "wrong"}, "Invalid API key"),
        ({"X-API-Key": ""}, "Missing"),
    ],
)
def test_predictions_need_the_api_key_and_refusals_are_not_logged(
    service, service_db, path, headers, reason
) -> None:
    body = HOUSE if path == "/predict" else {"houses": [HOUSE]}
    before = _settled(service, service_db)
    with service.client() as anonymous:
        response = anonymous.post(path, json=body, headers=headers)
        invalid_too = anonymous.post(path, json={"bedrooms": 99}, headers=headers)
    assert response.status_code == 401
    assert reason in response.json()["message"] and "X-API-Key" in response.json()["message"]
    assert response.headers["WWW-Authenticate"].startswith("ApiKey")
    assert invalid_too.status_code == 401  # authentication first: nothing about the body leaks
    assert API_KEY not in response.text
    assert _settled(service, service_db) == before


def test_operations_endpoints_need_no_key(service) -> None:
    with service.client() as anonymous:
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/ready").status_code == 200
        assert anonymous.get("/metrics").status_code == 200
        assert anonymous.get("/swagger").status_code == 200


# -- operations ---------------------------------------------------------------------------------
def test_health_ready_and_metrics(service, client) -> None:
    client.post("/predict", json=HOUSE)
    client.post("/predict", json={**HOUSE, "bedrooms": 99})
    with service.client() as anonymous:
        anonymous.post("/predict", json=HOUSE)

        health = anonymous.get("/health")
        assert health.json() == {"status": "ok", "log_writer_alive": True}

        ready = anonymous.get("/ready").json()
        assert ready["ready"] is True and ready["database"]["ok"] is True
        assert ready["model"] == {
            "ok": True,
            "detail": "model ready",
            "url": service.state.model.base_url,
            "name": MODEL_NAME,
            "version": "unversioned",
        }
        assert "bridgeai-test" not in json.dumps(ready)  # the DB password is never shown
        assert "***" in ready["database"]["detail"]

        metrics = anonymous.get("/metrics")
    text = metrics.text
    assert metrics.headers["content-type"].startswith("text/plain")
    for status, version in (("200", "unversioned"), ("422", "none"), ("401", "none")):
        line = (
            "bridgeai_prediction_requests_total{"
            f'endpoint="/predict",model_version="{version}",status="{status}"'
            "}"
        )
        assert line in text
    assert 'bridgeai_prediction_request_duration_seconds_bucket{endpoint="/predict"' in text
    assert "bridgeai_prediction_log_spool_depth 0.0" in text
    assert "bridgeai_prediction_log_database_up 1.0" in text
    assert "bridgeai_model_calls_total" in text and "bridgeai_model_rows_total" in text


def test_docs_and_openapi_with_examples_limits_and_security(service) -> None:
    with service.client() as anonymous:
        assert "swagger-ui" in anonymous.get("/swagger").text.lower()
        assert "redoc" in anonymous.get("/api-docs").text.lower()
        spec = anonymous.get("/openapi.json").json()
    components = spec["components"]["schemas"]
    assert components["House"]["examples"] == [HOUSE]
    assert components["BatchRequest"]["properties"]["houses"]["maxItems"] == 5
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    assert spec["paths"]["/predict"]["post"]["security"] == [{"ApiKey": []}]
    assert "422" in spec["paths"]["/predict"]["post"]["responses"]
    assert "503" in spec["paths"]["/predict"]["post"]["responses"]


# -- load, outages and shutdown -----------------------------------------------------------------
async def _fire(url: str, n: int, headers: dict | None = None) -> list[tuple[int, dict]]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(i: int) -> tuple[int, dict]:
            body = {**HOUSE, "area": 1000 + i}
            async with session.post(f"{url}/predict", json=body) as response:
                return response.status, await response.json()

        return await asyncio.gather(*(one(i) for i in range(n)))


def test_500_concurrent_requests_give_500_rows_with_their_request_ids(service, service_db) -> None:
    before = _settled(service, service_db)
    results = asyncio.run(_fire(service.url, 500, KEY))
    assert [status for status, _ in results] == [200] * 500
    ids = {body["request_id"] for _, body in results}
    assert len(ids) == 500
    wait_for(lambda: count_rows(service_db) == before + 500, timeout=60)
    logged_ids = {r["request_id"] for r in logged(service_db)}
    assert ids <= logged_ids
    by_id = {r["request_id"]: r for r in logged(service_db)}
    for _, body in results[:20]:
        assert by_id[body["request_id"]]["prediction"] == body["response"]["prediction"]


@pytest.fixture
def own_db(postgres_cluster) -> Iterator[str]:
    url = postgres_cluster.create_database()
    try:
        yield url
    finally:
        postgres_cluster.drop_database(url)


def test_database_stopped_mid_run_predictions_continue_rows_appear_after_restart(
    model_server, postgres_cluster, own_db, tmp_path: Path
) -> None:
    settings = service_settings(model_server.url, own_db, tmp_path / "spool")
    with run_service(settings) as running:
        first = asyncio.run(_fire(running.url, 100))
        wait_for(lambda: count_rows(own_db) == 100)
        postgres_cluster.stop()
        try:
            during = asyncio.run(_fire(running.url, 200))
            assert [status for status, _ in during] == [200] * 200  # predictions continue
            wait_for(lambda: running.state.writer.spool_depth == 200)
            with running.client() as http:
                ready = http.get("/ready")
                assert ready.status_code == 503 and ready.json()["database"]["ok"] is False
                assert ready.json()["spool_depth"] == 200
        finally:
            postgres_cluster.start()
        wait_for(lambda: count_rows(own_db) == 300, timeout=60)
        wait_for(lambda: running.state.writer.spool_depth == 0)
    ids = {r["request_id"] for r in logged(own_db)}
    assert {b["request_id"] for _, b in first + during} == ids


@pytest.mark.slow
def test_model_server_stopped_gives_503_and_recovers_without_a_service_restart(
    own_model_server, own_db, tmp_path: Path
) -> None:
    settings = service_settings(own_model_server.url, own_db, tmp_path / "spool")
    with run_service(settings) as running, running.client() as http:
        assert http.post("/predict", json=HOUSE).status_code == 200
        own_model_server.stop()

        down = http.post("/predict", json=HOUSE)
        assert down.status_code == 503
        doc = down.json()
        assert doc["status"] == 503 and "unreachable" in doc["message"]
        assert own_model_server.url in doc["message"] and "Traceback" not in down.text
        ready = http.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False and ready.json()["model"]["ok"] is False
        assert ready.json()["database"]["ok"] is True

        own_model_server.start()
        assert http.post("/predict", json=HOUSE).status_code == 200
        assert http.get("/ready").json()["ready"] is True
        failed = doc["request_id"]
    statuses = {r["request_id"]: r["status"] for r in logged(own_db)}
    assert statuses[failed] == 503 and sorted(statuses.values()) == [200, 200, 503]


def test_a_clean_shutdown_flushes_every_queued_row(model_server, own_db, tmp_path: Path) -> None:
    settings = service_settings(
        model_server.url, own_db, tmp_path / "spool", log_flush_interval=3600, log_batch_size=10_000
    )
    with run_service(settings) as running:
        results = asyncio.run(_fire(running.url, 25))
        assert count_rows(own_db) == 0  # still queued in memory
        running.stop()
    assert {r["request_id"] for r in logged(own_db)} == {b["request_id"] for _, b in results}


def test_without_a_key_the_originals_open_contract_and_sqlite_by_default(
    model_server, bridgeai_home: Path, tmp_path: Path
) -> None:
    from bridgeai.service import ServiceSettings

    settings = ServiceSettings(model_url=model_server.url, log_flush_interval=0.05)
    assert settings.log_durability == "durable"
    with run_service(settings) as running, running.client() as http:
        response = http.post("/predict", json=HOUSE)
        assert response.status_code == 200
        assert "securitySchemes" not in http.get("/openapi.json").json()["components"]
        spool = running.state.writer.spool.directory
        assert spool.parent == bridgeai_home / "service" / "spool" and (spool / ".lock").exists()
    database = bridgeai_home / "service" / "predictions.db"
    assert count_rows(f"sqlite:///{database}") == 1
    assert not spool.exists()  # a clean stop with everything written leaves no spool behind


def test_secrets_never_reach_the_logs(
    model_server, postgres_cluster, own_db, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    settings = service_settings(model_server.url, own_db, tmp_path / "spool", api_key=API_KEY)
    with run_service(settings) as running, running.client(headers=KEY) as http:
        http.post("/predict", json=HOUSE)
        wait_for(lambda: count_rows(own_db) == 1)
        postgres_cluster.stop()  # the writer logs the outage, naming the database
        try:
            http.post("/predict", json=HOUSE)
            writer = running.state.writer
            wait_for(lambda: not writer.db_up and writer.spool_depth == 1)
        finally:
            postgres_cluster.start()
        wait_for(lambda: running.state.writer.spool_depth == 0, timeout=60)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "unavailable" in text and "127.0.0.1" in text  # the outage was logged...
    assert "bridgeai-test" not in text and API_KEY not in text  # ...without its secrets
