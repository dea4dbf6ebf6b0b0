"""The fast lane: ``POST /predict`` and ``POST /predict/batch`` without FastAPI's request machinery.

FastAPI's routing, dependency resolution, request objects and exception middleware cost about
as much CPU per request as everything else the service does together (~0.4 ms of ~0.9 ms here),
and this service is meant to sustain 1,000+ predictions/s in one process. So the two prediction
endpoints are served by this pure-ASGI lane in front of the app: it validates the body with the
same pydantic models (``House``, ``BatchRequest``, in Python mode after ``orjson`` decoding, as
FastAPI does), calls the same :func:`bridgeai.service.prediction.predict` and answers errors with
the same :func:`bridgeai.service.errors.error_response` as the FastAPI routes, which remain for
the OpenAPI document and serve when the lane is off (``BRIDGEAI_FAST_LANE=false``). The tests run
the contract through both and compare the bytes.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from bridgeai.service import models
from bridgeai.service.errors import error_response
from bridgeai.service.metrics import ServiceMetrics
from bridgeai.service.prediction import check_batch_size, predict

_JSON = [(b"content-type", b"application/json")]


class _ClientGone(Exception):
    """The client disconnected before its body arrived."""


class PredictionLane:
    """Serve the prediction endpoints directly; pass everything else to ``app``.

    Every request it takes is counted in ``metrics.lane_requests`` (``/metrics``:
    ``bridgeai_fast_lane_requests_total``), so a lane that stopped taking them shows.
    """

    def __init__(self, app: Any, fastapi_app: Any, metrics: ServiceMetrics) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path not in ("/predict", "/predict/batch"):
            await self.app(scope, receive, send)
            return
        self.metrics.lane_requests += 1
        state = self.fastapi_app.state.service
        scope_state = scope.setdefault("state", {})
        try:
            data = _parse(await _read_body(receive))
            try:
                if path == "/predict":
                    house = models.House.model_validate(data, from_attributes=True)
                    houses = [house.model_dump()]  # type: ignore[attr-defined]
                else:
                    request = models.BatchRequest.model_validate(data, from_attributes=True)
                    houses = [house.model_dump() for house in request.houses]  # type: ignore[attr-defined]
            except ValidationError as exc:
                # FastAPI locates body errors under "body"; keep the responses identical.
                errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
                raise RequestValidationError(errors) from None
            if path != "/predict":
                check_batch_size(state, len(houses))
            request_id, payload = await predict(
                state, houses, scope_state, batch=path != "/predict"
            )
        except _ClientGone:
            return
        except Exception as exc:
            await error_response(exc, scope)(scope, receive, send)
            return
        raw_headers = [
            *_JSON,
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})


def _parse(body: bytes) -> Any:
    """Decode JSON as FastAPI does (so errors match): empty is "missing", junk "json_invalid"."""
    if not body:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required"}
        raise RequestValidationError([missing])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error"}
        raise RequestValidationError([error]) from None


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
