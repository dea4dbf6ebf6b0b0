"""The prediction log's journal: every row between a request and the database, in batches.

Two durability modes (``BRIDGEAI_LOG_DURABILITY``):

``durable`` (the default)
    :meth:`Journal.commit` returns only once the request's rows are appended to the spool and
    ``fsync``'d. It uses *group commit*, as PostgreSQL and Kafka do: one committer thread takes
    every row that arrived while the previous ``fsync`` ran (plus an optional short window,
    ``BRIDGEAI_LOG_COMMIT_WINDOW``), writes them with one ``write`` and makes them durable with
    one ``fsync``, then wakes all their requests at once. A request whose rows cannot be written
    gets :class:`LogUnavailable` (503), never a 200.
``async``
    :meth:`Journal.submit` only appends to memory; the rows reach the disk spool only when the
    database is down or too slow. A SIGKILL or power loss loses what is in memory (at most
    ``BRIDGEAI_LOG_FLUSH_INTERVAL`` of traffic, more while the database is slow).

The writer (:mod:`bridgeai.service.log_writer`) calls :meth:`seal` to close what has
accumulated into a :class:`Batch`, writes each batch to the database in one transaction, and
calls :meth:`done` once it is committed, which deletes its segment file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bridgeai.service.errors import LogUnavailable
from bridgeai.service.spool import SegmentFile, Spool

logger = logging.getLogger("bridgeai.service.journal")

DURABLE = "durable"
ASYNC = "async"
#: Rotate the open segment beyond this size, so a replay proceeds in bounded pieces.
SEGMENT_BYTES = 8 * 1024 * 1024

_Waiter = asyncio.Future[None] | concurrent.futures.Future[None]


@dataclass(eq=False)
class Batch:
    """Rows the writer takes in one go: in memory (``rows``), on disk (``path``), or both."""

    count: int
    rows: list[dict[str, Any]] | None = None
    path: Path | None = None
    #: The spool the file belongs to (this process's, or an adopted one).
    spool: Spool | None = None
    adopted: bool = False


class Journal:
    """See the module docstring.

    Args:
        spool: this process's spool directory (created and locked).
        durable: ``durable`` mode (group commit before answering) or ``async``.
        commit_window: seconds the committer waits for company after the first waiting row.
        segment_bytes: rotate the open segment beyond this size.
    """

    def __init__(
        self,
        spool: Spool,
        *,
        durable: bool = True,
        commit_window: float = 0.0,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.spool = spool
        self.durable = durable
        self.commit_window = commit_window
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._memory: list[dict[str, Any]] = []
        self._open: SegmentFile | None = None
        self._open_rows: list[dict[str, Any]] = []
        self._sealed: deque[Batch] = deque()
        self._disk_rows = 0
        # Group commit.
        self._pending: list[tuple[Sequence[dict[str, Any]], _Waiter]] = []
        self._pending_lock = threading.Lock()
        self._pending_wake = threading.Event()
        self._stopping = False
        self._committer: threading.Thread | None = None
        #: Set when rows are waiting for the writer (it may wake early for a full batch).
        self.on_rows: Any = None
        self.batch_size = 500
        #: The last spool write failure (None while writes succeed).
        self.error: str | None = None
        self.rows_spooled = 0
        self.commits = 0
        #: Records found torn (cut mid-write by a crash) when segments were read back.
        self.torn_records = 0
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self.durable and self._committer is None:
            self._committer = threading.Thread(
                target=self._commit_loop, name="prediction-log-committer", daemon=True
            )
            self._committer.start()

    def stop(self) -> None:
        """Stop the committer once every waiting row is written (or refused)."""
        self._stopping = True
        self._pending_wake.set()
        if self._committer is not None:
            self._committer.join(60)
        with self._lock:
            self._seal_open()

    # -- depths ----------------------------------------------------------------------------
    @property
    def disk_depth(self) -> int:
        """Rows on disk that the database has not committed yet."""
        return self._disk_rows

    @property
    def memory_depth(self) -> int:
        """Rows only in memory (``async`` mode), waiting for the writer."""
        if self.durable:
            return 0  # and no lock: the committer holds it through each fsync
        with self._lock:
            sealed = sum(b.count for b in self._sealed if b.path is None)
            return len(self._memory) + sealed

    # -- the request side ------------------------------------------------------------------
    def submit(self, rows: Sequence[dict[str, Any]]) -> None:
        """``async`` mode: queue rows in memory (never blocks on I/O)."""
        with self._lock:
            self._memory.extend(rows)
            waiting = len(self._memory)
        if waiting >= self.batch_size and self.on_rows is not None:
            self.on_rows()

    async def commit(self, rows: Sequence[dict[str, Any]]) -> None:
        """``durable`` mode: return once ``rows`` are in the spool and ``fsync``'d.

        Raises:
            LogUnavailable: the spool cannot be written (disk full, read-only, permissions).
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(rows, waiter)
        await waiter

    def commit_sync(self, rows: Sequence[dict[str, Any]], timeout: float = 60.0) -> None:
        """:meth:`commit` for callers without an event loop."""
        waiter: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._enqueue(rows, waiter)
        waiter.result(timeout)

    def _enqueue(self, rows: Sequence[dict[str, Any]], waiter: _Waiter) -> None:
        with self._pending_lock:
            if self._closed or self._committer is None:
                raise LogUnavailable("the prediction log is not accepting rows (shutting down)")
            self._pending.append((rows, waiter))
        self._pending_wake.set()

    # -- the committer thread --------------------------------------------------------------
    def _commit_loop(self) -> None:
        while True:
            self._pending_wake.wait(0.5)
            if self.commit_window and not self._stopping:
                time.sleep(self.commit_window)
            self._pending_wake.clear()
            with self._pending_lock:
                group, self._pending = self._pending, []
                if not group and self._stopping:
                    self._closed = True  # checked under the lock: no waiter is left behind
                    return
            if group:
                self._commit_group(group)

    def _commit_group(self, group: list[tuple[Sequence[dict[str, Any]], _Waiter]]) -> None:
        dumps = orjson.dumps
        rows = [row for part, _ in group for row in part]
        data = b"".join([dumps(row) + b"\n" for row in rows])
        error: BaseException | None = None
        try:
            with self._lock:
                self._append(data, rows)
        except OSError as exc:
            error = self._failed(exc)
        else:
            if self.error is not None:
                logger.warning(
                    "the prediction log spool %s is writable again", self.spool.directory
                )
            self.error = None
            self.commits += 1
        _settle([waiter for _, waiter in group], error)
        if error is None and self.on_rows is not None and self._open_count() >= self.batch_size:
            self.on_rows()

    def _failed(self, exc: OSError) -> LogUnavailable:
        reason = exc.strerror or type(exc).__name__
        if self.error is None:
            logger.error(
                "cannot write the prediction log spool %s (%s): answering 503 until it can be "
                "written",
                self.spool.directory,
                reason,
            )
        self.error = reason
        return LogUnavailable(
            f"The prediction log spool {self.spool.directory} cannot be written ({reason}); "
            "no prediction is answered without a durable log. Free space or fix the volume "
            "(BRIDGEAI_SPOOL_DIR); the service recovers by itself"
        )

    def _open_count(self) -> int:
        segment = self._open
        return segment.count if segment is not None else 0

    # -- disk ------------------------------------------------------------------------------
    def _append(self, data: bytes, rows: list[dict[str, Any]]) -> None:
        """Append whole records to the open segment (caller holds ``_lock``).

        The rows are also kept in memory, so the writer need not read back what it just wrote
        (:meth:`trim` drops those copies when too many wait for the database).
        """
        if self._open is None:
            self._open = self.spool.new_segment()
            self._open_rows = []
        self._open.append(data, len(rows))
        self._open_rows.extend(rows)
        self._disk_rows += len(rows)
        self.rows_spooled += len(rows)
        if self._open.size >= self.segment_bytes:
            self._seal_open()

    def _seal_open(self) -> None:
        segment = self._open
        if segment is None:
            return
        segment.close()
        self._open = None
        rows, self._open_rows = self._open_rows, []
        if segment.count:
            self._sealed.append(
                Batch(segment.count, rows=rows, path=segment.path, spool=self.spool)
            )
        else:
            self.spool.remove(segment.path)

    def trim(self, limit: int) -> None:
        """Drop in-memory copies of on-disk batches beyond ``limit`` rows (oldest first)."""
        with self._lock:
            cached = [b for b in self._sealed if b.path is not None and b.rows is not None]
            total = sum(b.count for b in cached)
            for batch in cached:
                if total <= limit:
                    return
                batch.rows = None  # read back from its segment when the writer gets to it
                total -= batch.count

    def probe(self) -> bool:
        """Try a small durable write when the last one failed; True when the spool is writable."""
        if self.error is None:
            return True
        try:
            self.spool.probe()
        except OSError as exc:
            self.error = exc.strerror or type(exc).__name__
            return False
        logger.warning("the prediction log spool %s is writable again", self.spool)
        self.error = None
        return True

    # -- the writer side -------------------------------------------------------------------
    def seal(self) -> None:
        """Close what accumulated (memory rows, the open segment) into batches for the writer."""
        with self._lock:
            if self._memory:
                self._sealed.append(Batch(len(self._memory), rows=self._memory))
                self._memory = []
            self._seal_open()

    def batches(self) -> list[Batch]:
        """The sealed batches, oldest first."""
        with self._lock:
            return list(self._sealed)

    def rows_of(self, batch: Batch) -> list[dict[str, Any]]:
        """The rows of a batch, read back from its segment when they are not in memory."""
        if batch.rows is not None:
            return batch.rows
        assert batch.path is not None and batch.spool is not None
        read = batch.spool.read(batch.path)
        if read.torn:
            where = (
                "at its tail"
                if read.torn_tail_only
                else "at lines " + ", ".join(map(str, read.torn))
            )
            logger.warning(
                "spool segment %s: %d torn record(s) %s skipped (written by a process that died "
                "mid-write; never acknowledged); %d complete record(s) kept",
                batch.path,
                len(read.torn),
                where,
                len(read.rows),
            )
            self.torn_records += len(read.torn)
        return read.rows

    def done(self, batch: Batch) -> None:
        """The batch is committed to the database: forget it and delete its file.

        An adopted spool whose last batch this was is removed.
        """
        with self._lock:
            self._sealed.remove(batch)
            if batch.path is not None:
                self._disk_rows -= batch.count
            finished = batch.adopted and not any(b.spool is batch.spool for b in self._sealed)
        if batch.path is not None and batch.spool is not None:
            batch.spool.remove(batch.path)
        if finished and batch.spool is not None:
            batch.spool.release()
            logger.info("replayed and removed the orphaned spool %s", batch.spool.directory)

    def adopted_rows(self) -> int:
        """Rows of adopted spools not yet committed (the start-up replay still to do)."""
        with self._lock:
            return sum(b.count for b in self._sealed if b.adopted)

    def release_adopted(self) -> None:
        """Unlock adopted spools not fully replayed (at shutdown), for the next process."""
        with self._lock:
            spools = {id(b.spool): b.spool for b in self._sealed if b.adopted and b.spool}
        for spool in spools.values():
            spool.release(remove_if_empty=False)

    def spill(self) -> int:
        """``async`` mode: move the rows held only in memory to the spool (fsync'd).

        Returns the number of rows spilled.

        Raises:
            OSError: the spool cannot be written (the rows stay in memory).
        """
        with self._lock:
            if self._memory:
                self._sealed.append(Batch(len(self._memory), rows=self._memory))
                self._memory = []
            spilled = 0
            for batch in [b for b in self._sealed if b.path is None and b.rows is not None]:
                rows = batch.rows
                assert rows is not None
                self._append(b"".join([orjson.dumps(row) + b"\n" for row in rows]), rows)
                self._sealed.remove(batch)
                spilled += len(rows)
            return spilled

    def adopt(self, spool: Spool) -> int:
        """Queue the segments of an orphaned spool (oldest first, ahead of new rows)."""
        adopted = []
        for path in spool.segments():
            adopted.append(Batch(spool.count(path), path=path, spool=spool, adopted=True))
        with self._lock:
            self._sealed.extendleft(reversed(adopted))
            self._disk_rows += sum(b.count for b in adopted)
        return sum(b.count for b in adopted)


def _settle(waiters: list[_Waiter], error: BaseException | None) -> None:
    """Wake every request of a group: one thread-safe call per event loop, not per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for waiter in waiters:
        if isinstance(waiter, asyncio.Future):
            by_loop.setdefault(waiter.get_loop(), []).append(waiter)
        elif not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle_on_loop, futures, error)


def _settle_on_loop(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # cancelled: the client went away
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


__all__ = ["ASYNC", "DURABLE", "Batch", "Journal"]
