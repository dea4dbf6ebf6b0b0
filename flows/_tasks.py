"""What every flow's tasks share: which errors are worth a retry, and the task options.

Only I/O tasks retry (3 times, exponential back-off with jitter) and only on errors that may go
away by themselves (:func:`bridgeai.model.errors.is_transient`: our errors' ``transient``
attribute, or a third-party connection error or timeout); a wrong password or a missing model
fails at once. Tasks that hand frames, models or clients to the next task keep them in process:
never hashed for a cache key, never persisted as results.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NONE as NO_CACHE
from prefect.tasks import exponential_backoff

from bridgeai.model.errors import is_transient

__all__ = ["IN_PROCESS", "IO_RETRIES", "is_transient"]


def _retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as exc:  # classified here, re-raised by Prefect when not retried
        return is_transient(exc)
    return False


#: ``@task`` options for an I/O task: 3 retries with exponential back-off and jitter, taken only
#: when the error is transient.
IO_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": _retry_condition,
}

#: ``@task`` options for tasks whose inputs or results are frames, models or clients.
IN_PROCESS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
