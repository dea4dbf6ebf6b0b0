"""Request limits of ``bridgeai serve`` (a real process): header and read deadlines, header
and body sizes. uvicorn alone bounds none of the deadlines (it only closes idle kept-alive
connections); :mod:`bridgeai.service.protocol` adds them."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgeai import schema
from tests.faults.support import ServiceProcess
from tests.support.service import count_rows

pytestmark = pytest.mark.integration

BODY = json.dumps(schema.EXAMPLE_HOUSE).encode()


@pytest.fixture(scope="module")
def limited(model_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("limits")
    service = ServiceProcess(
        {
            "BRIDGEAI_MODEL_URL": model_server.url,
            "BRIDGEAI_DATABASE_URL": f"sqlite:///{root / 'log.db'}",
            "BRIDGEAI_SPOOL_DIR": str(root / "spool"),
            "BRIDGEAI_HEADER_TIMEOUT": "1",
            "BRIDGEAI_READ_TIMEOUT": "1",
            "BRIDGEAI_LOG_FLUSH_INTERVAL": "0.05",
        },
        root / "service.log",
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


def _connect(service: ServiceProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=30)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails after 30 s)."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and its Content-Length of body) on a kept-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if b"content-length" in line]
    length = int(lengths[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _request(body: bytes = BODY, extra: bytes = b"") -> bytes:
    return (
        b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        + body
    )  # fmt: skip


def _database(service: ServiceProcess) -> str:
    return service.env["BRIDGEAI_DATABASE_URL"]


def test_a_connection_that_sends_nothing_is_closed_with_408(limited: ServiceProcess) -> None:
    with _connect(limited) as sock:
        response = _read_all(sock)
    assert _status(response) == 408
    assert b"BRIDGEAI_HEADER_TIMEOUT" in response and b"connection: close" in response


def test_trickled_headers_get_408(limited: ServiceProcess) -> None:
    with _connect(limited) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\n")
        try:
            for _ in range(60):  # one header byte at a time, never finishing
                sock.sendall(b"X")
                time.sleep(0.1)
        except OSError:
            pass  # closed on us: the point
        response = _read_all(sock)
    assert _status(response) == 408 and b"headers not received" in response


def test_a_stalled_body_gets_408_and_nothing_is_predicted_or_logged(
    limited: ServiceProcess,
) -> None:
    before = count_rows(_database(limited))
    with _connect(limited) as sock:
        sock.sendall(_request()[: -len(BODY) + 10])  # headers, then 10 of the body's bytes
        response = _read_all(sock)
    assert _status(response) == 408
    doc = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert doc["status"] == 408 and "BRIDGEAI_READ_TIMEOUT" in doc["message"]
    assert count_rows(_database(limited)) == before


def test_prompt_requests_on_a_kept_alive_connection_are_unaffected(
    limited: ServiceProcess,
) -> None:
    with _connect(limited) as sock:
        for _ in range(3):
            sock.sendall(_request())
            response = _read_response(sock)
            assert _status(response) == 200, response
            time.sleep(1.5)  # idle longer than both deadlines, within keep-alive (5 s)


def test_a_large_valid_batch_sent_at_once_is_answered(limited: ServiceProcess) -> None:
    body = json.dumps({"houses": [schema.EXAMPLE_HOUSE] * 1000}).encode()  # ~250 KB
    with _connect(limited) as sock:
        sock.sendall(_request(body).replace(b"/predict ", b"/predict/batch "))
        response = _read_response(sock)
    assert _status(response) == 200, response[:300]
    assert len(json.loads(response.split(b"\r\n\r\n", 1)[1])["response"]["predictions"]) == 1000


def test_headers_trickled_past_the_size_limit_are_refused(limited: ServiceProcess) -> None:
    with _connect(limited) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\n")
        try:
            for _ in range(40):  # 40 x 4 KB of one header, in separate reads, never finished
                sock.sendall(b"X-Junk-" + b"a" * 4096)
                time.sleep(0.005)
        except OSError:
            pass
        response = _read_all(sock)
    assert _status(response) in (408, 431)


def test_oversized_headers_and_bodies_are_refused(limited: ServiceProcess) -> None:
    with _connect(limited) as sock:
        sock.sendall(_request(extra=b"X-Junk: " + b"a" * 70_000 + b"\r\n"))
        response = _read_all(sock)
    assert _status(response) == 431 and b"larger than 64 KB" in response
    with _connect(limited) as sock:  # a body declared larger than any batch: refused unread
        sock.sendall(
            b"POST /predict/batch HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 3000000\r\n\r\n{"
        )
        response = _read_response(sock)
    assert _status(response) == 413 and b"fewer houses" in response


def test_the_deadline_settings_are_validated(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from bridgeai.service import ServiceSettings

    with pytest.raises(ValidationError, match="header_timeout"):
        ServiceSettings(header_timeout=0)
    assert ServiceSettings().read_timeout == 30 and ServiceSettings().header_timeout == 10
