"""The fast lane: ``POST /predict`` and ``POST /predict/batch`` without FastAPI's request machinery.

FastAPI's routing, dependency resolution, request objects and exception middleware cost about
as much CPU per request as everything else the service does together (~0.4 ms of ~0.9 ms here),
and this service is meant to sustain 1,000+ predictions/s in one process. So the two prediction
endpoints are served by this pure-ASGI lane in front of the app: it validates the body with the
same pydantic models (``House``, ``BatchRequest``, in Python mode after ``orjson`` decoding, as
FastAPI does), calls the same
:func:`bridgeai.service.prediction.predict` and formats errors with the same functions as the
FastAPI routes, which remain for the OpenAPI document and serve when the lane is off
(``BRIDGEAI_FAST_LANE=false``). The tests run the contract through both.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pydantic import ValidationError

from bridgeai.service import models
from bridgeai.service.errors import ServiceError, error_body, json_response, validation_body
from bridgeai.service.prediction import check_batch_size, predict

logger = logging.getLogger("bridgeai.service")

_JSON = [(b"content-type", b"application/json")]


class _ClientGone(Exception):
    """The client disconnected before its body arrived."""


class PredictionLane:
    """Serve the prediction endpoints directly; pass everything else to ``app``."""

    def __init__(self, app: Any, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path not in ("/predict", "/predict/batch"):
            await self.app(scope, receive, send)
            return
        state = self.fastapi_app.state.service
        scope_state = scope.setdefault("state", {})
        try:
            data = _parse(await _read_body(receive))
            if path == "/predict":
                house = models.House.model_validate(data, from_attributes=True)
                houses = [house.model_dump()]  # type: ignore[attr-defined]
            else:
                request = models.BatchRequest.model_validate(data, from_attributes=True)
                check_batch_size(state, len(request.houses))
                houses = [house.model_dump() for house in request.houses]  # type: ignore[attr-defined]
            request_id, payload = await predict(
                state, houses, scope_state, batch=path != "/predict"
            )
        except _ClientGone:
            return
        except _BadBody as exc:
            await json_response(422, validation_body([exc.error], None))(scope, receive, send)
            return
        except ValidationError as exc:
            # FastAPI locates body errors under "body"; keep the responses identical.
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            await json_response(422, validation_body(errors, None))(scope, receive, send)
            return
        except ServiceError as exc:
            status, doc, headers = error_body(exc, scope_state.get("request_id"))
            await json_response(status, doc, headers)(scope, receive, send)
            return
        except Exception:
            request_id = scope_state.get("request_id")
            logger.exception("unhandled error in POST %s (request %s)", path, request_id)
            doc = {
                "status": 500,
                "message": "Internal error in the prediction service; it has been logged",
                "request_id": request_id,
            }
            await json_response(500, doc)(scope, receive, send)
            return
        raw_headers = [
            *_JSON,
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})


class _BadBody(Exception):
    """The body is empty or not JSON; ``error`` is the validation error FastAPI would give."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["msg"])
        self.error = error


def _parse(body: bytes) -> Any:
    """Decode JSON as FastAPI does (so errors match): empty is "missing", junk "json_invalid"."""
    if not body:
        raise _BadBody({"type": "missing", "loc": ("body",), "msg": "Field required"})
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _BadBody(
            {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error"}
        ) from None


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
