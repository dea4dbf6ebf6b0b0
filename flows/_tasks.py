"""What every flow's tasks share: which errors are worth a retry, and the task options.

Only I/O tasks retry (3 times, exponential back-off with jitter) and only on errors that may go
away by themselves; a wrong password or a missing model fails at once. Tasks that hand frames,
models or clients to the next task keep them in process: never hashed for a cache key, never
persisted as results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect.cache_policies import NONE as NO_CACHE
from prefect.tasks import exponential_backoff

#: Exception class names that mean "try again later" wherever they come from (urllib3,
#: requests, botocore, aiohttp, SQLAlchemy, MLflow's REST client); checked along the cause chain.
TRANSIENT_NAMES = frozenset(
    {
        "ClientOSError",
        "ConnectionClosedError",
        "ConnectionError",
        "ConnectTimeout",
        "ConnectTimeoutError",
        "EndpointConnectionError",
        "MaxRetryError",
        "NewConnectionError",
        "OperationalError",
        "ProtocolError",
        "ReadTimeout",
        "ReadTimeoutError",
        "RemoteDisconnected",
        "ServerDisconnectedError",
        "Timeout",
    }
)
_RETRY_STATUS = (429, 502, 503, 504)


def is_transient(exc: BaseException | None) -> bool:
    """True when ``exc`` or anything in its cause chain may succeed if tried again.

    That is: an error marked ``transient=True`` by this project, a connection error or timeout,
    one of :data:`TRANSIENT_NAMES`, or an MLflow answer of 429/502/503/504.
    """
    seen = 0
    while exc is not None and seen < 10:
        if getattr(exc, "transient", False) or isinstance(exc, ConnectionError | TimeoutError):
            return True
        if type(exc).__name__ in TRANSIENT_NAMES:
            return True
        status = getattr(exc, "get_http_status_code", None)
        if callable(status) and status() in _RETRY_STATUS:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def io_retries(transient: Callable[[BaseException], bool] = is_transient) -> dict[str, Any]:
    """``@task`` options for an I/O task: retried only when ``transient`` says so."""

    def retry_condition(task: Any, task_run: Any, state: Any) -> bool:
        try:
            state.result()
        except Exception as exc:  # classified here, re-raised by Prefect when not retried
            return transient(exc)
        return False

    return {
        "retries": 3,
        "retry_delay_seconds": exponential_backoff(backoff_factor=2),
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": retry_condition,
    }


#: ``@task`` options for tasks whose inputs or results are frames, models or clients.
IN_PROCESS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
