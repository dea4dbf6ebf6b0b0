"""Property-based fuzzing of the OpenAPI document (schemathesis): no input gives a 5xx.

Runs against the real service (real model server, real PostgreSQL), with the API key, so the
generated bodies reach validation and the model rather than stopping at 401.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.support.service import (
    API_KEY,
    RunningService,
    drop_database,
    fresh_database,
    run_service,
    service_settings,
)


@pytest.fixture(scope="module")
def fuzzed_service(model_server, postgres_cluster, tmp_path_factory) -> Iterator[RunningService]:
    url = fresh_database(postgres_cluster)
    settings = service_settings(
        model_server.url, url, tmp_path_factory.mktemp("spool"), api_key=API_KEY, max_batch_rows=20
    )
    try:
        with run_service(settings) as running:
            yield running
    finally:
        drop_database(postgres_cluster, url)


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
    fuzzed_service: RunningService, method: str, path: str, mode: GenerationMode
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

    check()
    assert statuses and all(status < 500 for status in statuses)
    if method == "POST" and mode is NEGATIVE:
        assert 422 in statuses  # the fuzzer did reach validation
