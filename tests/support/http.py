"""HTTP servers on loopback, to test download paths without the internet."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 from a thread and yield the base URL (no trailing slash)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_directory(
    directory: Path, handler: type[SimpleHTTPRequestHandler] | None = None
) -> Iterator[str]:
    """Serve ``directory`` (with a quiet ``SimpleHTTPRequestHandler`` unless ``handler`` is
    given) on 127.0.0.1 and yield its base URL (no trailing slash)."""
    with serve(functools.partial(handler or _QuietHandler, directory=str(directory))) as url:
        yield url
