"""A durable on-disk spool for prediction-log rows the database could not take.

Rows are appended as JSON lines to the active segment file and ``fsync``'d (the file, and the
directory when a segment is created) before :meth:`Spool.append` returns, so a spooled row
survives a crash or power loss. Segments are drained oldest first once the database is back;
a segment is deleted only after its rows are committed. Replays are idempotent because the
table ignores a ``(request_id, batch_index)`` it already holds.

One service process owns a spool directory at a time (an exclusive ``flock`` on ``.lock``), so
two processes never replay each other's segments.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

logger = logging.getLogger("bridgeai.service.spool")

SUFFIX = ".jsonl"
#: Rotate the active segment beyond this size so draining proceeds in bounded pieces.
SEGMENT_BYTES = 8 * 1024 * 1024


class SpoolLockedError(RuntimeError):
    """Another process holds the spool directory."""


class Spool:
    """The spool directory of one service process; see the module docstring."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._active: BinaryIO | None = None
        self._active_path: Path | None = None
        self._lock_file: BinaryIO | None = None
        self._depth = 0
        self._counts: dict[Path, int] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        """Take the directory's lock and count rows left by an earlier run.

        Raises:
            SpoolLockedError: another live process uses this directory.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = open(self.directory / ".lock", "ab")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise SpoolLockedError(
                f"the spool directory {self.directory} is in use by another service process; "
                "give each process its own BRIDGEAI_SPOOL_DIR"
            ) from None
        self._lock_file = lock
        for segment in self._segments():
            self._counts[segment] = sum(1 for _ in self._lines(segment))
        self._depth = sum(self._counts.values())
        if self._depth:
            logger.warning(
                "%d prediction-log rows were left in the spool %s; they will be written "
                "when the database is reachable",
                self._depth,
                self.directory,
            )

    def close(self) -> None:
        self._close_active()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # -- writing ---------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Rows on disk waiting for the database."""
        return self._depth

    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Durably append rows; returns how many were written."""
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        if not data:
            return 0
        count = data.count(b"\n")
        handle = self._ensure_active()
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        assert self._active_path is not None
        self._counts[self._active_path] = self._counts.get(self._active_path, 0) + count
        self._depth += count
        if handle.tell() >= self.segment_bytes:
            self._close_active()
        return count

    def _ensure_active(self) -> BinaryIO:
        if self._active is None:
            name = f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
            self._active_path = self.directory / name
            self._active = open(self._active_path, "ab")  # noqa: SIM115 - kept open for appends
            self._fsync_directory()
        return self._active

    def _close_active(self) -> None:
        if self._active is not None:
            self._active.close()
            self._active = None
            self._active_path = None

    # -- draining --------------------------------------------------------------------------
    def drain(self) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
        """Yield ``(segment, rows)`` oldest first; call :meth:`done` after committing them.

        The active segment is closed first so new appends go to a fresh segment.
        """
        self._close_active()
        for segment in self._segments():
            yield segment, list(self._lines(segment))

    def done(self, segment: Path) -> None:
        """Forget a segment whose rows are committed to the database."""
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()
        self._fsync_directory()
        self._depth -= self._counts.pop(segment, 0)

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def _lines(self, segment: Path) -> Iterator[dict[str, Any]]:
        with open(segment, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError:
                    # Only a crash mid-write leaves a torn line, and only as the last one;
                    # that row was never acknowledged as spooled.
                    logger.warning("skipping a torn line %d in %s", number, segment)
                    continue
                if isinstance(row.get("created_at"), str):
                    row["created_at"] = datetime.fromisoformat(row["created_at"])
                yield row

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
