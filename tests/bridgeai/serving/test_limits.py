"""The server's limits on what a client may make it hold: request headers and bodies that
arrive too slowly (408) and bodies that are too large (413, refused before they are read)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from bridgeai.model.house_price import HousePriceModel
from tests.support.model_server import MODEL_NAME, ModelServerProcess, model_server, save_with_info

pytestmark = pytest.mark.integration

LIMITS = {
    "BRIDGEAI_MODEL_SERVER_HEADER_TIMEOUT": "1",
    "BRIDGEAI_MODEL_SERVER_READ_TIMEOUT": "1",
    "BRIDGEAI_MODEL_SERVER_MAX_BODY_BYTES": "10000",
    "BRIDGEAI_MODEL_SERVER_ACCESS_LOG": "false",
}


@pytest.fixture(scope="module")
def limited(
    model: HousePriceModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelServerProcess]:
    root = tmp_path_factory.mktemp("limits")
    model_dir = save_with_info(model, root / "model", version="1")
    with model_server(str(model_dir), root / "server.log", env=LIMITS) as server:
        yield server


def _connect(server: ModelServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.settimeout(30)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_response(sock: socket.socket) -> bytes:
    """One response: its head, then as many body bytes as its content-length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)["error"]


def test_headers_that_never_finish_get_a_408_and_the_connection_is_closed(
    limited: ModelServerProcess,
) -> None:
    with _connect(limited) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and nothing more
        answer = _read_all(sock)  # returns once the server closes the connection
    status, error = _status_and_error(answer)
    assert status == 408
    assert "request headers did not arrive within 1s" in error
    assert "BRIDGEAI_MODEL_SERVER_HEADER_TIMEOUT" in error


def test_a_silent_connection_is_closed_too(limited: ModelServerProcess) -> None:
    with _connect(limited) as sock:
        status, _ = _status_and_error(_read_all(sock))
    assert status == 408


def test_a_body_that_never_arrives_gets_a_408(limited: ModelServerProcess) -> None:
    path = f"/v2/models/{MODEL_NAME}/infer"
    with _connect(limited) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n".encode() + b'{"in'
        )
        status, error = _status_and_error(_read_all(sock))
    assert status == 408
    assert "request body did not arrive within 1s" in error
    assert "BRIDGEAI_MODEL_SERVER_READ_TIMEOUT" in error


def test_a_slow_but_steady_keep_alive_client_is_served(limited: ModelServerProcess) -> None:
    with _connect(limited) as sock:
        for _ in range(3):  # three requests on one connection, each well within the limits
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
            time.sleep(0.3)
            sock.sendall(b"\r\n")
            answer = b""
            while not answer.endswith(b'{"live":true}'):
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            time.sleep(0.7)  # idle between requests: the keep-alive timeout (30 s) applies


def test_a_declared_body_over_the_limit_is_413_before_it_is_sent(
    limited: ModelServerProcess,
) -> None:
    path = f"/v2/models/{MODEL_NAME}/infer"
    with _connect(limited) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n".encode())
        answer = _read_response(sock)  # answered without waiting for the 20,000 bytes
    status, error = _status_and_error(answer)
    assert status == 413 and "request body larger than 10000 bytes" in error


def test_a_chunked_body_over_the_limit_is_413(limited: ModelServerProcess) -> None:
    import httpx

    def chunks() -> Iterator[bytes]:
        for _ in range(30):
            yield b" " * 1000

    with httpx.Client(base_url=limited.url, timeout=30) as http:
        answer = http.post(f"/v2/models/{MODEL_NAME}/infer", content=chunks())
    assert answer.status_code == 413


def test_a_request_the_http_parser_refuses_is_a_json_400(limited: ModelServerProcess) -> None:
    with _connect(limited) as sock:
        sock.sendall(b"POST /v2 HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        status, error = _status_and_error(_read_response(sock))
    assert status == 400 and error.startswith("invalid HTTP request")
