"""JSON logs for the model server: one object per line, and a batched access log.

Kept apart from the server so the hot path's logging is one small, testable piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

ACCESS_LOGGER = "bridgeai.serving.app.access"


class AccessLog:
    """One JSON line per request, the same shape as the other logs, written in batches.

    Going through :mod:`logging` (record, handler lock, formatter, a flushed write per line)
    costs about a third of the CPU of answering a single-row request, so lines are buffered and
    written to stderr in one call at most every ``interval`` seconds, from the event loop.
    """

    def __init__(self, stream: Any = None, interval: float = 0.05) -> None:
        self.stream = stream
        self.interval = interval
        self._lines: list[bytes] = []
        self._scheduled = False

    def record(self, fields: dict[str, Any]) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        head = {"time": now, "level": "info", "logger": ACCESS_LOGGER, "message": "request"}
        self._lines.append(orjson.dumps({**head, **fields}) + b"\n")
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(self.interval, self.flush)
            except RuntimeError:  # no loop (called from a thread): write now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines.clear()
        stream = self.stream or sys.stderr
        with contextlib.suppress(OSError, ValueError):  # a closed stderr must not fail requests
            buffer = getattr(stream, "buffer", None)
            if buffer is not None:
                stream.flush()
                buffer.write(data)
                buffer.flush()
            else:
                stream.write(data.decode())
                stream.flush()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra={"fields": ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(fields)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(level: str = "info") -> None:
    """Send this process's logs (uvicorn's included) to stderr as JSON lines."""
    # The logging HOWTO's "Optimization" knobs: nobody reads caller/thread/process fields here,
    # and looking them up costs more than formatting an access-log line.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
