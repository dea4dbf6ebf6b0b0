"""Domain errors of the prediction service and the one handler that turns them into responses.

Domain code raises a :class:`ServiceError` subclass carrying its HTTP status and a message that
says what to fix; it never raises ``HTTPException``. Request validation errors get the same body
shape with the offending fields named. Unexpected exceptions become a plain 500 with the request
id and no stack trace (the trace goes to the server log).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

logger = logging.getLogger("bridgeai.service")


class ServiceError(Exception):
    """An error a client sees: ``status`` and ``message`` go into the response body."""

    status: int = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class Unauthorized(ServiceError):
    """The API key is missing or wrong."""

    status = 401


class BatchTooLarge(ServiceError):
    """More rows than ``BRIDGEAI_MAX_BATCH_ROWS`` in one batch."""

    status = 422


class BodyTooLarge(ServiceError):
    """The request body is larger than any valid request could be."""

    status = 413


class ModelUnavailable(ServiceError):
    """The model server cannot be reached, timed out, or is not ready."""

    status = 503


class ModelFailed(ServiceError):
    """The model server answered with an error or an unreadable response."""

    status = 502


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    """A JSON response serialised with orjson (fast, and strict about NaN)."""
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_body(
    exc: ServiceError, request_id: str | None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, body and headers of the response to a domain error."""
    body = {"status": exc.status, "message": exc.message, "request_id": request_id}
    return exc.status, body, exc.headers


def validation_body(errors: Sequence[Mapping[str, Any]], request_id: str | None) -> dict[str, Any]:
    """The 422 body: a message naming every offending field, and the details."""
    details = []
    for error in errors:
        # ctx may hold exception objects; keep only what serialises and helps.
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        details.append(
            {
                "field": _field(error.get("loc", ())),
                "loc": list(error.get("loc", ())),
                "msg": message,
                "type": error.get("type", ""),
            }
        )
    summary = "; ".join(
        d["msg"] if d["msg"].startswith(f"{d['field']}: ") else f"{d['field']}: {d['msg']}"
        for d in details[:5]
    )
    if len(details) > 5:
        summary += f"; and {len(details) - 5} more"
    return {
        "status": 422,
        "message": f"Invalid request: {summary}",
        "detail": details,
        "request_id": request_id,
    }


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    status, body, headers = error_body(exc, _request_id(request))
    return json_response(status, body, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return json_response(422, validation_body(exc.errors(), _request_id(request)))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    body = {"status": exc.status_code, "message": str(exc.detail)}
    return json_response(exc.status_code, body, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = _request_id(request)
    logger.exception(
        "unhandled error in %s %s (request %s)", request.method, request.url.path, request_id
    )
    body = {
        "status": 500,
        "message": "Internal error in the prediction service; it has been logged"
        + (f" under request id {request_id}" if request_id else ""),
        "request_id": request_id,
    }
    return json_response(500, body)


def install_error_handlers(app: FastAPI) -> None:
    """Register the one mapping from errors to responses."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
