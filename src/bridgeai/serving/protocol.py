"""uvicorn's httptools protocol with the two timeouts it lacks: request headers and request body.

uvicorn closes idle keep-alive connections but has no limit on how long a client may take to
send a request: a client that opens connections and trickles header bytes (or declares a body
and never sends it) holds them, and the server's file descriptors, for ever. Here:

* the headers of each request must arrive within ``header_timeout`` seconds of the connection
  opening (or of the request's first byte, on a kept-alive connection);
* its body within ``read_timeout`` seconds of the headers.

Either way the client gets a 408 with an ``{"error": ...}`` body and the connection is closed.
A request the HTTP parser refuses gets a 400 with the same kind of body (uvicorn's is text).
The timers cost nothing on the hot path: the header timer is armed per connection and cancelled
by the headers, the body timer only when a body did not arrive with its headers.
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
        self._body_pending = False
        self._timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout, self._too_slow, "headers", self.header_timeout
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._body_pending and self._timer is None and not self.transport.is_closing():
            self._timer = self.loop.call_later(
                self.read_timeout, self._too_slow, "body", self.read_timeout
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:  # the next request on a kept-alive connection
            self._timer = self.loop.call_later(
                self.header_timeout, self._too_slow, "headers", self.header_timeout
            )

    def on_headers_complete(self) -> None:
        self._cancel()
        self._body_pending = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_pending = False
        self._cancel()
        super().on_message_complete()

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

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self, part: str, seconds: float) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
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
