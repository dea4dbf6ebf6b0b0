"""Domain errors of the prediction service and the one function that turns errors into responses.

Domain code raises a :class:`ServiceError` subclass (a
:class:`~bridgeai.model.errors.BridgeAIError`) carrying its HTTP ``status_code`` and a message that
says what to fix; it never raises
``HTTPException``. Request validation errors get the same body shape with the offending fields
named. Unexpected exceptions become a plain 500 with the request id and no stack trace (the trace
goes to the server log). The FastAPI handlers, the fast lane and the ASGI middlewares all answer
through :func:`error_response`, so one error gets the same bytes on every path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from bridgeai.model.errors import BridgeAIError

logger = logging.getLogger("bridgeai.service")


class ServiceError(BridgeAIError):
    """An error a client sees: ``status_code`` and ``message`` go into the response body.

    Args:
        message: what went wrong and what to do about it.
        headers: extra response headers (e.g. ``WWW-Authenticate`` with a 401).
        status_code: overrides the class's HTTP status for this instance.
        transient: overrides the class's retry hint for this instance.
    """

    def __init__(
        self,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        status_code: int | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, transient=transient)
        self.headers = headers or {}


class Unauthorized(ServiceError):
    """The API key is missing or wrong."""

    status_code = 401


class BatchTooLarge(ServiceError):
    """More rows than ``BRIDGEAI_MAX_BATCH_ROWS`` in one batch."""

    status_code = 422


class BodyTooLarge(ServiceError):
    """The request body is larger than any valid request could be."""

    status_code = 413


class ModelUnavailable(ServiceError):
    """The model server cannot be reached, timed out, or is not ready."""

    status_code = 503
    transient = True


class LogUnavailable(ServiceError):
    """The prediction log cannot store the request's rows durably (the spool cannot be written).

    The service fails closed: it answers no prediction it cannot log.
    """

    status_code = 503
    transient = True


class ModelFailed(ServiceError):
    """The model server answered with an error or an unreadable response."""

    status_code = 502


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    """A JSON response serialised with orjson (fast, and strict about NaN)."""
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def error_response(exc: BaseException, scope: MutableMapping[str, Any]) -> Response:
    """The response to ``exc`` raised while serving the request of ``scope``: the one map.

    * a :class:`~bridgeai.model.errors.BridgeAIError` (every :class:`ServiceError`): its
      ``status_code``, message and headers;
    * a request validation error: 422 naming every offending field (:func:`validation_body`);
    * an ``HTTPException`` from routing (404, 405): its status and detail; one FastAPI raised
      because reading the body failed with a domain error (the body limit) answers that error;
    * anything else: a 500 that gives the request id and no internals (the traceback is logged).

    The request id is the one the request was given (``scope["state"]["request_id"]``), if any.
    """
    state = scope.get("state") or {}
    request_id = state.get("request_id")
    if isinstance(exc, StarletteHTTPException) and isinstance(exc.__cause__, BridgeAIError):
        exc = exc.__cause__
    if isinstance(exc, BridgeAIError):
        body = _body(exc.status_code, exc.message, request_id)
        return json_response(exc.status_code, body, getattr(exc, "headers", None))
    if isinstance(exc, RequestValidationError):
        return json_response(422, validation_body(exc.errors(), request_id))
    if isinstance(exc, StarletteHTTPException):
        body = _body(exc.status_code, str(exc.detail), request_id)
        return json_response(exc.status_code, body, dict(exc.headers or {}))
    logger.error(
        "unhandled error in %s %s (request %s)",
        scope.get("method"),
        scope.get("path"),
        request_id,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    message = "Internal error in the prediction service; it has been logged" + (
        f" under request id {request_id}" if request_id else ""
    )
    return json_response(500, _body(500, message, request_id))


def _body(status: int, message: str, request_id: str | None) -> dict[str, Any]:
    return {"status": status, "message": message, "request_id": request_id}


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


async def _error(request: Request, exc: Exception) -> Response:
    return error_response(exc, request.scope)


def install_error_handlers(app: FastAPI) -> None:
    """Register the one mapping from errors to responses."""
    for kind in (BridgeAIError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, _error)
