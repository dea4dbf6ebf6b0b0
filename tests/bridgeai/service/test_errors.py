"""The service's errors: one base class, the status they carry, and the one body they become."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from bridgeai.model.errors import BridgeAIError
from bridgeai.procs import free_port
from bridgeai.service import errors, prediction_log


@pytest.mark.parametrize(
    ("kind", "status", "transient"),
    [
        (errors.Unauthorized, 401, False),
        (errors.BodyTooLarge, 413, False),
        (errors.BatchTooLarge, 422, False),
        (errors.ModelFailed, 502, False),
        (errors.ModelUnavailable, 503, True),
    ],
)
def test_each_error_carries_its_status_and_retry_hint(kind, status, transient) -> None:
    error = kind("what to fix", headers={"Retry-After": "1"})
    assert isinstance(error, errors.ServiceError) and isinstance(error, BridgeAIError)
    assert (error.status_code, error.transient, error.message) == (status, transient, "what to fix")
    response = errors.error_response(error, {"state": {"request_id": "r-9"}})
    assert response.status_code == status
    assert response.headers["retry-after"] == "1"
    assert orjson.loads(response.body) == {
        "status": status,
        "message": "what to fix",
        "request_id": "r-9",
    }


def test_an_unexpected_error_is_a_500_naming_only_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scope = {"method": "POST", "path": "/predict", "state": {"request_id": "r-1"}}
    response = errors.error_response(KeyError("secret internals"), scope)
    body = orjson.loads(response.body)
    assert response.status_code == 500 and body["status"] == 500
    assert body["message"] == (
        "Internal error in the prediction service; it has been logged under request id r-1"
    )
    assert "secret internals" not in response.body.decode()
    assert "unhandled error in POST /predict (request r-1)" in caplog.text
    assert "secret internals" in caplog.text  # the traceback is in the log


def test_the_prediction_log_error_is_transient_only_when_the_database_is_unreachable(
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    with pytest.raises(prediction_log.PredictionLogError) as unreachable:
        prediction_log.read_window(f"postgresql://u:p@127.0.0.1:{free_port()}/x", now, now)
    with pytest.raises(prediction_log.PredictionLogError) as no_table:
        prediction_log.read_window(f"sqlite:///{tmp_path / 'empty.db'}", now, now)
    assert isinstance(unreachable.value, BridgeAIError)
    assert unreachable.value.transient is True
    assert no_table.value.transient is False
