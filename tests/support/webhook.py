"""A webhook receiver on loopback: what a Prefect notification block sends, recorded for tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.http import serve


@dataclass
class WebhookReceiver:
    """The receiver's URL and every request it got (method, path, JSON body)."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posts(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)


@contextmanager
def webhook_receiver(status: int = 200) -> Iterator[WebhookReceiver]:
    """Serve a receiver that answers ``status`` to every request and records it."""
    receiver = WebhookReceiver(url="", status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            with receiver.lock:
                receiver.received.append({"method": "POST", "path": self.path, "body": body})
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serve(Handler) as base:
        receiver.url = f"{base}/hook"
        yield receiver
