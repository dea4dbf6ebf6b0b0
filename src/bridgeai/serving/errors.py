"""The model server's errors and the one map from an error to its response.

Every error the server or the codec raises on purpose derives from
:class:`bridgeai.model.errors.BridgeAIError` and carries its HTTP status; a subclass only sets
what differs (as MLServer's ``MLServerError(msg, status_code)`` subclasses do). The inference lane
and the Starlette routes both answer through :func:`error_response`, so the same error gets the
same bytes whichever path served it: ``{"error": "<message>"}``, the Open Inference Protocol's
error shape.

Imports nothing heavy: the codec (used by clients too) takes its error classes from here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import orjson

from bridgeai.model.errors import BridgeAIError, InvalidInput, NotFound, Unavailable

#: Where :class:`bridgeai.serving.app.ModelServerApp` leaves the request id in the ASGI scope.
REQUEST_ID_KEY: Final = "bridgeai.request_id"
JSON_HEADERS: Final = [(b"content-type", b"application/json")]


class ProtocolError(InvalidInput):
    """A request the protocol or the model cannot accept; the message names the input (400)."""


class ModelNotFoundError(NotFound):
    """The request names a model or version this server does not serve (404)."""


class BodyTooLargeError(InvalidInput):
    """The request body exceeds ``BRIDGEAI_MODEL_SERVER_MAX_BODY_BYTES`` (413)."""

    status_code = 413


class ModelNotReadyError(Unavailable):
    """A request arrived before the model finished loading (503)."""


def error_response(exc: BaseException, request_id: str) -> tuple[int, bytes]:
    """Status and body for ``exc``: its own status for a BridgeAIError, else a 500.

    The 500 names the request id and nothing else (the traceback goes to the server log), so an
    internal error never leaks the server's internals to a client.
    """
    if isinstance(exc, BridgeAIError):
        return exc.status_code, error_body(exc.message)
    return 500, error_body(f"internal error; see the server log for request {request_id}")


def error_body(message: str) -> bytes:
    """``{"error": message}`` as JSON bytes."""
    return orjson.dumps({"error": message})


def request_id(scope: MutableMapping[str, Any]) -> str:
    """The id :class:`~bridgeai.serving.app.ModelServerApp` gave this request ('' outside it)."""
    return str(scope.get(REQUEST_ID_KEY, ""))


Handler = Callable[[Any, Exception], Awaitable[Any]]


def exception_handlers() -> dict[Any, Handler]:
    """Starlette's ``exception_handlers``: the lane's bodies, plus routing's 404 and 405."""
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response

    def respond(status: int, body: bytes, headers: Any = None) -> Response:
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    async def domain_error(request: Request, exc: Exception) -> Response:
        return respond(*error_response(exc, request_id(request.scope)))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return respond(exc.status_code, error_body(message), exc.headers)  # 405 keeps its Allow

    # ``Exception`` goes to Starlette's outermost middleware, which answers with this handler
    # and then re-raises, so uvicorn still logs the traceback.
    return {BridgeAIError: domain_error, HTTPException: http_error, Exception: domain_error}
