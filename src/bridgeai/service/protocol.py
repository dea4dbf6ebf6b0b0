"""The HTTP connection protocol: uvicorn's, plus deadlines for reading a request.

uvicorn (0.54, httptools) closes an *idle keep-alive* connection after ``timeout_keep_alive``,
but puts no limit on how long a client may take to send a request: a connection that sends
nothing, or trickles its headers or its body a byte at a time (slowloris), is held open for
ever, and a handler waiting for the body waits with it. This protocol adds two deadlines:

* ``header_timeout`` (``BRIDGEAI_HEADER_TIMEOUT``): from a new connection, or from the first
  byte of the next request on a kept-alive one, to the end of the request's headers;
* ``read_timeout`` (``BRIDGEAI_READ_TIMEOUT``): from the end of the headers to the end of the
  body.

A request that misses either gets ``408`` with the service's error body and the connection is
closed; a handler waiting for the body sees the client disconnect (nothing is predicted or
logged). Headers are limited to :data:`MAX_HEADER_BYTES` (``431``; uvicorn's httptools parser
has no limit), the body by :class:`~bridgeai.service.app.BodyLimitMiddleware` (``413``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

#: The most a request's line and headers may take (a browser sends a few KB).
MAX_HEADER_BYTES = 64 * 1024
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
_SETTINGS = {"headers": "BRIDGEAI_HEADER_TIMEOUT", "body": "BRIDGEAI_READ_TIMEOUT"}


def deadline_protocol(header_timeout: float, read_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol class with the two deadlines (pass it as ``http=``)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class DeadlineProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _waiting_for: str = ""
        _header_bytes = 0  # bytes received while this request's headers are incomplete
        _parsed_bytes = 0  # request line and headers, as parsed
        _too_large = False

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._waiting_for == "headers" and not self._too_large:
                # Still no end of headers: the parser buffers what came (asyncio reads at most
                # 256 KB at a time, so this is checked before it grows far).
                self._header_bytes += len(data)
                if self._header_bytes > 2 * MAX_HEADER_BYTES:
                    self._headers_too_large()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def _count(self, size: int) -> None:
            self._parsed_bytes += size
            if self._parsed_bytes > MAX_HEADER_BYTES:
                self._too_large = True

        def on_body(self, body: bytes) -> None:
            if not self._too_large:
                super().on_body(body)

        def _headers_too_large(self) -> None:
            self._too_large = True
            self._refuse(
                431,
                f"Request headers larger than {MAX_HEADER_BYTES // 1024} KB; send fewer or "
                "shorter headers",
            )

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm(header_timeout, "headers")

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._parsed_bytes = 0
            if self._waiting_for != "headers":
                self._arm(header_timeout, "headers")

        def on_headers_complete(self) -> None:
            if self._too_large:  # no handler runs for it
                self._headers_too_large()
                return
            super().on_headers_complete()
            self._arm(read_timeout, "body")

        def on_message_complete(self) -> None:
            if self._too_large:
                return
            super().on_message_complete()
            self._disarm()

        def _arm(self, seconds: float, what: str) -> None:
            self._disarm()
            self._waiting_for = what
            self._header_bytes = 0
            self._deadline = self.loop.call_later(seconds, self._expired, what, seconds)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._waiting_for = ""

        def _expired(self, what: str, seconds: float) -> None:
            self._deadline = None
            self._refuse(
                408,
                f"Request {what} not received within {seconds:g} s ({_SETTINGS[what]}); "
                "send the whole request at once",
            )

        def _refuse(self, status: int, message: str) -> None:
            """Answer ``status`` (unless a response started) and close the connection."""
            self._disarm()
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            cycle = self.cycle
            if cycle is None or not cycle.response_started:
                body = orjson.dumps({"status": status, "message": message, "request_id": None})
                transport.write(
                    b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
                    + b"content-type: application/json\r\n"
                    + b"content-length: " + str(len(body)).encode() + b"\r\n"
                    + b"connection: close\r\n\r\n"
                    + body
                )  # fmt: skip
            transport.close()

    return DeadlineProtocol
