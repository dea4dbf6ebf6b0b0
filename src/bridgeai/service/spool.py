"""The write-ahead spool: prediction-log rows on local disk, ``fsync``'d, one directory per process.

``BRIDGEAI_SPOOL_DIR`` is a root. Each service process creates its own subdirectory in it,
``<host>-<pid>-<token>``, and holds an exclusive ``flock`` on its ``.lock`` for as long as it runs;
the kernel releases the lock when the process dies, even by SIGKILL. A starting process (and a
running one, periodically) *adopts* every sibling directory whose lock it can take, since its
owner is dead, replays its rows and removes it. Two live processes therefore never share a
directory, and no spool is left behind for good by a crash.

A segment is a file of JSON lines, one row each, appended with ``write`` and made durable with
``fsync`` (the file; the directory when a segment is created) before anyone is told the rows are
stored. A write that fails part-way (a full disk) is cut back to the last whole record, so a
segment only ever ends in a torn record when the process died mid-write, and that record was
never acknowledged: :meth:`Spool.read` keeps every complete record and reports the torn ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger("bridgeai.service.spool")

SUFFIX = ".jsonl"
LOCK = ".lock"
#: Rows the database refused (kept for a human, never replayed), in the spool root.
REJECTED = "rejected.jsonl"
_CLAIMING = ".claiming-"


class SpoolError(OSError):
    """The spool cannot be created or written; the message says where and why."""


class SpoolLockedError(SpoolError):
    """Another live process holds the spool directory."""


@dataclass
class SegmentRead:
    """The rows of one segment file, and the line numbers of records that could not be read."""

    rows: list[dict[str, Any]]
    torn: list[int] = field(default_factory=list)
    #: True when the unreadable records are only the last line (a crash mid-write).
    torn_tail_only: bool = True


class SegmentFile:
    """A segment open for appending: :meth:`append` returns once the bytes are on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = 0
        self.count = 0

    def append(self, data: bytes, count: int) -> None:
        """Write and ``fsync`` ``data`` (``count`` whole records), or raise leaving none of it.

        Raises:
            OSError: the write or the fsync failed (ENOSPC, EROFS, EIO, ...).
        """
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            # fdatasync: the data and the size that reaches it (half an fsync's cost here).
            _datasync(self._fd)
        except OSError:
            # Cut the file back to its last whole record: an unacknowledged partial record must
            # not be replayed, nor sit between acknowledged ones.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self.size)
                os.fsync(self._fd)
            raise
        self.size += len(data)
        self.count += count

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Spool:
    """One spool directory, locked by this process while it is open; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock_fd = -1
        self._sequence = 0
        #: False for the spool root itself (segments an older version left there).
        self.removable = True

    def __str__(self) -> str:
        return str(self.directory)

    # -- ownership -------------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path) -> Spool:
        """Make and lock a new directory of this process's own under ``root``.

        The directory is created under a temporary name and renamed once locked, so another
        process's adoption scan never sees it unlocked.

        Raises:
            SpoolError: the root cannot be created or written.
        """
        ensure_root(root)
        name = f"{_host()}-{os.getpid()}-{secrets.token_hex(3)}"
        claiming = root / f"{_CLAIMING}{name}"
        try:
            claiming.mkdir()
            spool = cls(claiming)
            spool.lock()
            claiming.rename(root / name)
            _fsync_directory(root)
        except OSError as exc:
            raise SpoolError(f"cannot create a spool directory in {root}: {_why(exc)}") from None
        spool.directory = root / name
        return spool

    def lock(self) -> None:
        """Take the directory's exclusive lock, without waiting.

        Raises:
            SpoolLockedError: a live process holds it.
        """
        # Read-only: an idle service holds no file open for writing (a volume can be remounted).
        fd = os.open(self.directory / LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolLockedError(
                f"the spool directory {self.directory} is in use by another live service process"
            ) from None
        self._lock_fd = fd

    @property
    def locked(self) -> bool:
        return self._lock_fd >= 0

    def release(self, *, remove_if_empty: bool = True) -> bool:
        """Unlock; remove the directory when it holds no segment. Returns True if removed."""
        if not self.locked:
            return False
        removed = False
        if remove_if_empty and self.removable and not self.segments():
            with contextlib.suppress(OSError):
                # Unlinked while still locked, so no scan can adopt a half-removed directory.
                (self.directory / LOCK).unlink()
                self.directory.rmdir()
                removed = True
        os.close(self._lock_fd)
        self._lock_fd = -1
        return removed

    # -- segments --------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        """Segment files, oldest first."""
        try:
            return sorted(self.directory.glob(f"*{SUFFIX}"))
        except OSError:
            return []

    def new_segment(self) -> SegmentFile:
        """Create an empty segment (its directory entry made durable first).

        Raises:
            OSError: the file cannot be created.
        """
        self._sequence += 1
        name = f"{time.time_ns():020d}-{self._sequence:06d}{SUFFIX}"
        segment = SegmentFile(self.directory / name)
        try:
            _fsync_directory(self.directory)
        except OSError:
            segment.close()
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()
            raise
        return segment

    def remove(self, segment: Path) -> None:
        """Delete a segment whose rows are committed (a lost unlink only means a replay)."""
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()

    def read(self, segment: Path) -> SegmentRead:
        """Every complete record of ``segment``; torn or unreadable ones are listed, not fatal."""
        try:
            data = segment.read_bytes()
        except FileNotFoundError:
            return SegmentRead([])
        lines = data.split(b"\n")
        last = len(lines)
        result = SegmentRead([])
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
            except ValueError:
                result.torn.append(number)
                if number != last:  # only the final, unterminated line can be a torn write
                    result.torn_tail_only = False
                continue
            if isinstance(row.get("created_at"), str):
                row["created_at"] = datetime.fromisoformat(row["created_at"])
            result.rows.append(row)
        return result

    def count(self, segment: Path) -> int:
        """Rows in a segment (complete records only)."""
        return len(self.read(segment).rows)

    def probe(self) -> None:
        """Write, ``fsync`` and delete a small file: raises when the spool cannot be written."""
        path = self.directory / ".probe"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()


def ensure_root(root: Path) -> None:
    """Create the spool root if needed and check that this process may write there.

    Raises:
        SpoolError: it cannot be created, is not a directory, or is not writable.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpoolError(f"cannot create the spool directory {root}: {_why(exc)}") from None
    if not root.is_dir() or not os.access(root, os.W_OK | os.X_OK):
        raise SpoolError(
            f"the spool directory {root} is not a writable directory (BRIDGEAI_SPOOL_DIR)"
        )


def adopt_orphans(root: Path, own: Spool | None = None) -> list[Spool]:
    """Lock and return every spool directory under ``root`` whose owner is dead.

    Also adopts segments left directly in ``root`` by a version that used one directory for
    every process (its ``.lock`` is the root's). Directories still being created by another
    process are skipped.
    """
    found: list[Spool] = []
    for candidate in _candidates(root):
        if own is not None and candidate == own.directory:
            continue
        spool = Spool(candidate)
        spool.removable = candidate != root
        try:
            spool.lock()
        except (SpoolLockedError, FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        except OSError as exc:
            logger.warning("cannot inspect the spool directory %s: %s", candidate, _why(exc))
            continue
        if candidate != root or spool.segments():
            found.append(spool)
        else:
            spool.release(remove_if_empty=False)
    return found


def _candidates(root: Path) -> Iterator[Path]:
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return
    if any(entry.suffix == SUFFIX and entry.name != REJECTED for entry in entries):
        yield root
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if (entry / LOCK).exists():
            yield entry


def append_rejected(root: Path, record: dict[str, Any]) -> Path:
    """Append one record to ``rejected.jsonl`` in the root (one ``write``: atomic on appends)."""
    path = root / REJECTED
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, orjson.dumps(record) + b"\n")
    finally:
        os.close(fd)
    return path


def _host() -> str:
    name = socket.gethostname() or "host"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


_datasync = getattr(os, "fdatasync", os.fsync)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
