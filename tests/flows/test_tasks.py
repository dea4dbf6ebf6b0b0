"""Which errors the flows' I/O tasks retry, and that Prefect really retries only those."""

from __future__ import annotations

import pytest
from prefect import flow, task

from bridgeai.data.dvc_store import DataRepoError
from flows._tasks import IO_RETRIES, is_transient


def test_only_transient_errors_are_retried() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

    def chained(outer: Exception, inner: BaseException) -> Exception:
        outer.__cause__ = inner
        return outer

    assert is_transient(ConnectionRefusedError("refused"))
    assert is_transient(chained(RuntimeError("upload failed"), TimeoutError()))
    assert is_transient(DataRepoError("S3 is down", transient=True))
    assert is_transient(MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE))
    try:  # how MLflow's REST client reports a server that is down
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError:
            raise MlflowException("API request to http://mlflow failed with exception")  # noqa: B904
    except MlflowException as exc:
        down = exc
    assert is_transient(down)
    assert not is_transient(DataRepoError("no data version 'x'"))
    assert not is_transient(ValueError("the test split is empty"))
    assert not is_transient(MlflowException("bad", error_code=INVALID_PARAMETER_VALUE))


@pytest.mark.usefixtures("prefect_harness")
def test_an_io_task_retries_a_transient_error_and_not_a_user_error() -> None:
    attempts = {"transient": 0, "user": 0}

    @task(**{**IO_RETRIES, "retry_delay_seconds": 0})
    def flaky() -> str:
        attempts["transient"] += 1
        if attempts["transient"] < 3:
            raise ConnectionRefusedError("S3 is restarting")
        return "ok"

    @task(**{**IO_RETRIES, "retry_delay_seconds": 0})
    def wrong_password() -> None:
        attempts["user"] += 1
        raise PermissionError("Access Denied")

    @flow
    def both() -> str:
        answer = flaky()
        with pytest.raises(PermissionError):
            wrong_password()
        return answer

    assert both() == "ok"
    assert attempts == {"transient": 3, "user": 1}
