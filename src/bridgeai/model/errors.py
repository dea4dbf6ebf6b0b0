"""The one error base of the project: a message that says what to fix, an HTTP status, a retry hint.

Every error BridgeAI raises on purpose derives from :class:`BridgeAIError` (as MLServer's errors
derive from ``MLServerError(msg, status_code)``). A subclass only sets what differs:

* ``status_code``: what a server answers when the error reaches a client (each app has one
  handler that maps the base class, so every route answers the same body for the same error);
* ``transient``: whether trying again later may succeed (a server that did not answer) or not
  (a wrong password, a missing model). Flows retry on this attribute, never on message text.

It lives in :mod:`bridgeai.model`, the package every stage already depends on (the model server
may import nothing but ``bridgeai.model``, ``bridgeai.schema`` and ``bridgeai.paths``).
"""

from __future__ import annotations


class BridgeAIError(Exception):
    """An error this project raises on purpose.

    Args:
        message: what went wrong and what to do about it.
        status_code: overrides the class's HTTP status for this instance.
        transient: overrides the class's retry hint for this instance.
    """

    status_code: int = 500
    transient: bool = False

    def __init__(
        self, message: str, *, status_code: int | None = None, transient: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if transient is not None:
            self.transient = transient


class InvalidInput(BridgeAIError, ValueError):
    """The caller sent something this code cannot use (400); the message names it."""

    status_code = 400


class NotFound(BridgeAIError, LookupError):
    """What the caller named does not exist (404): a model, a version, an alias, a data tag."""

    status_code = 404


class Unavailable(BridgeAIError, ConnectionError):
    """A server this code depends on did not answer or is not ready (503); worth retrying."""

    status_code = 503
    transient = True


#: Exception class names that mean "try again later" wherever they come from (urllib3,
#: requests, botocore, aiohttp, SQLAlchemy, MLflow's REST client), matched along the cause chain.
#: Third-party errors carry no ``transient`` attribute, so their class is what says it.
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
#: HTTP statuses a server answers when it is overloaded or restarting.
RETRY_STATUS = frozenset({429, 502, 503, 504})


def is_transient(exc: BaseException | None) -> bool:
    """True when ``exc`` or anything in its cause chain may succeed if tried again.

    That is: an error whose ``transient`` attribute is true (ours say so themselves), a
    connection error or timeout, one of :data:`TRANSIENT_NAMES`, or an MLflow answer with a
    status in :data:`RETRY_STATUS`. An error of ours that says ``transient=False`` ends the
    search: it was classified where it was raised.
    """
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, BridgeAIError):
            return exc.transient
        if getattr(exc, "transient", False) or isinstance(exc, ConnectionError | TimeoutError):
            return True
        if type(exc).__name__ in TRANSIENT_NAMES:
            return True
        status = getattr(exc, "get_http_status_code", None)
        if callable(status) and status() in RETRY_STATUS:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
