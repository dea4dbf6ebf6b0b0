"""uvicorn's httptools protocol with the two timeouts it lacks: request headers and request body.

uvicorn closes idle keep-alive connections but has no limit on how long a client may take to
send a request: a client that opens connections and trickles header bytes (or declares a body
and never sends it) holds them, and the server's file descriptors, for ever. Here:

* the headers of each request must arrive within ``header_timeout`` seconds of the connection
  opening (or of the request's first byte, on a kept-alive connection);
* its body within ``read_timeout`` seconds of the headers.

Either way the client gets a 408 with an ``{"error": ...}`` body and the connection is closed.
A request the HTTP parser refuses gets a 400 with the same kind of body (uvicorn's is text).
One watchdog timer per connection checks the phase each request is in (headers, body, or with
the app) and when it began, so a request costs two attribute writes and a clock read.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that answers 408 to requests slower than its timeouts.

    The timeouts are class attributes (uvicorn builds one protocol per connection from the
    class); :func:`bridgeai.serving.app.create_app` sets them from the settings.
    """

    header_timeout: ClassVar[float] = 10.0
    read_timeout: ClassVar[float] = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # One watchdog per connection; each request only notes its phase and when it began
        # (a timer per request would cost more than the rest of this class together).
        self._phase = "headers"
        self._since = self.loop.time()
        self._watchdog: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout, self._check
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase, self._since = "headers", self.loop.time()

    def on_headers_complete(self) -> None:
        self._phase, self._since = "body", self.loop.time()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = "app"  # the app has the request; idle keep-alive is uvicorn's to close
        super().on_message_complete()

    def _check(self) -> None:
        self._watchdog = None
        if self.transport.is_closing():
            return
        limit = {"headers": self.header_timeout, "body": self.read_timeout}.get(self._phase)
        wait = self.header_timeout
        if limit is not None:
            left = self._since + limit - self.loop.time()
            if left <= 0:
                self._too_slow(self._phase, limit)
                return
            wait = left
        self._watchdog = self.loop.call_later(wait, self._check)

    def send_400_response(self, msg: str) -> None:
        """A request the HTTP parser refused: the same JSON error body as every other error."""
        self._answer(400, "Bad Request", f"invalid HTTP request: {msg}")

    def _answer(self, status: int, reason: str, message: str) -> None:
        body = orjson.dumps({"error": message})
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n".encode()
            + b"content-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
            + body
        )
        self.transport.close()

    def _too_slow(self, part: str, seconds: float) -> None:
        cycle: Any = self.cycle
        if cycle is not None and part == "body":
            if cycle.response_started:  # the app answered without waiting for the body
                self.transport.close()
                return
            cycle.disconnected = True  # the app's receive() now returns http.disconnect
            cycle.message_event.set()
        setting = "HEADER_TIMEOUT" if part == "headers" else "READ_TIMEOUT"
        message = (
            f"the request {part} did not arrive within {seconds:g}s "
            f"(BRIDGEAI_MODEL_SERVER_{setting})"
        )
        self._answer(408, "Request Timeout", message)
