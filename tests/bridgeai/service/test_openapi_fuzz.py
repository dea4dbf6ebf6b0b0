"""Property-based fuzzing of the OpenAPI document (schemathesis): no input gives a 5xx.

Runs against the real service (real model server, real PostgreSQL), with the API key, so the
generated bodies reach validation and the model rather than stopping at 401. The model server is
this module's own, with its access log on, so the tests can see that valid bodies reached it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from bridgeai import procs
from tests.support.model_server import ModelServerProcess
from tests.support.service import (
    API_KEY,
    RunningService,
    run_service,
    service_settings,
)


@pytest.fixture(scope="module")
def fuzzed_model_server(model_dir: Path, tmp_path_factory) -> Iterator[ModelServerProcess]:
    server = ModelServerProcess(str(model_dir), tmp_path_factory.mktemp("fuzz") / "model.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _inferences_answered(server: ModelServerProcess) -> int:
    """Inference requests the model server answered 200, from its JSON access log."""
    lines = [json.loads(line) for line in server.log_file.read_text().splitlines() if line]
    return sum(
        line.get("message") == "request"
        and line["path"].endswith("/infer")
        and line["status"] == 200
        for line in lines
    )


@pytest.fixture(scope="module")
def fuzzed_service(
    fuzzed_model_server: ModelServerProcess, postgres_cluster, tmp_path_factory
) -> Iterator[RunningService]:
    url = postgres_cluster.create_database()
    settings = service_settings(
        fuzzed_model_server.url,
        url,
        tmp_path_factory.mktemp("spool"),
        api_key=API_KEY,
        max_batch_rows=20,
    )
    try:
        with run_service(settings) as running:
            yield running
    finally:
        postgres_cluster.drop_database(url)


POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# Negative cases exist only where there is input to break: the bodies of the POSTs.
CASES = [
    ("POST", "/predict", POSITIVE),
    ("POST", "/predict", NEGATIVE),
    ("POST", "/predict/batch", POSITIVE),
    ("POST", "/predict/batch", NEGATIVE),
    ("GET", "/health", POSITIVE),
    ("GET", "/ready", POSITIVE),
    ("GET", "/metrics", POSITIVE),
]


# Schemathesis' own pytest plugin (``from_fixture``) does not load under pytest 9, so the cases
# come from the operation's Hypothesis strategy directly.
@pytest.mark.integration
@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_generated_request_gets_a_server_error(
    fuzzed_service: RunningService,
    fuzzed_model_server: ModelServerProcess,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    api = schemathesis.openapi.from_url(f"{fuzzed_service.url}/openapi.json")
    operation = api[path][method]
    statuses: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=30 if method == "POST" else 5,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers={"X-API-Key": API_KEY}, timeout=30)
        case.validate_response(response, checks=[not_a_server_error])
        assert "Traceback" not in response.text
        statuses.append(response.status_code)

    answered_before = _inferences_answered(fuzzed_model_server)
    check()
    assert statuses and all(status < 500 for status in statuses)
    if method == "POST" and mode is NEGATIVE:
        assert 422 in statuses  # the fuzzer did reach validation
    if method == "POST" and mode is POSITIVE:
        # Valid bodies were priced: 200s here, and inference calls the model server answered.
        # (Every one: integral numbers such as 4.0 are integers for the counts, as JSON Schema
        # says; tests/conformance/test_schemathesis.py checks this with all of its checks.)
        assert statuses and all(status == 200 for status in statuses), statuses
        procs.wait_until(  # its access log is written in batches, every 50 ms
            lambda: _inferences_answered(fuzzed_model_server) > answered_before,
            timeout=10,
            service="the model server's access log",
        )
