"""What ``/predict`` and ``/predict/batch`` do, shared by the FastAPI routes and the fast lane.

Both transports call :func:`predict` and send the bytes it returns, so a response is the same
whichever path served it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import MutableMapping
from typing import Any

import orjson

from bridgeai.service import models
from bridgeai.service.errors import BatchTooLarge, LogUnavailable, ServiceError
from bridgeai.service.state import ServiceState


def check_batch_size(state: ServiceState, rows: int) -> None:
    """Raise :class:`BatchTooLarge` past ``BRIDGEAI_MAX_BATCH_ROWS``."""
    limit = state.settings.max_batch_rows
    if rows > limit:
        raise BatchTooLarge(
            f"houses: {rows} rows exceed the limit of {limit} per request "
            "(BRIDGEAI_MAX_BATCH_ROWS); split the batch"
        )


async def predict(
    state: ServiceState,
    houses: list[dict[str, Any]],
    scope_state: MutableMapping[str, Any],
    *,
    batch: bool,
) -> tuple[str, bytes]:
    """Price validated houses, queue their log rows, and return ``(request_id, body)``.

    ``scope_state`` is the ASGI scope's ``state``: the request id and model version are left
    there for the error handler and the metrics middleware.

    Raises:
        ServiceError: the model server is unreachable (503) or failed (502); the failed
            request is logged with that status before this raises.
        LogUnavailable: ``durable`` mode and the rows cannot be stored durably (503).
    """
    request_id = state.request_ids.next()
    scope_state["request_id"] = request_id
    started = scope_state.get("started") or time.perf_counter()
    try:
        inference = await state.batcher.infer(houses)
    except ServiceError as exc:
        scope_state["model_version"] = state.model.model_version
        with contextlib.suppress(LogUnavailable):  # the client needs the model's error
            await state.log(
                request_id, houses, None, exc.status_code, state.model.model_version, started
            )
        raise
    version = inference.model_version
    scope_state["model_version"] = version
    # In durable mode this returns once the rows are fsync'd: no 200 without a durable log.
    await state.log(request_id, houses, inference.prices, 200, version, started)
    if batch:
        response: dict[str, Any] = {"predictions": inference.prices, "unit": models.UNIT}
        message = models.BATCH_MESSAGE
    else:
        response = {"prediction": inference.prices[0], "unit": models.UNIT}
        message = models.MESSAGE
    body = {
        "status": 200,
        "message": message,
        "response": response,
        "model_name": state.settings.model_name,
        "model_version": version,
        "request_id": request_id,
    }
    return request_id, orjson.dumps(body)
