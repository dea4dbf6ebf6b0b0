"""Writes prediction-log rows to the database in batches, off the request path, losing none.

Request handlers call :meth:`LogWriter.submit`, which only appends to an in-memory queue. One
writer thread wakes every ``flush_interval`` (or as soon as a batch is full), and writes the
queue to the database in multi-row inserts. When the database is unreachable, the batch goes to
the durable :class:`~bridgeai.service.spool.Spool` instead and the writer probes the database
every ``retry_interval``; once it answers, the spool is replayed, oldest first. A clean stop
writes (or spools) everything still queued.

What can still be lost: rows queued in memory (at most ``flush_interval`` of traffic) when the
process is killed with SIGKILL or the machine loses power. Rows that the database rejects as
data errors (they cannot be, after validation; this is a last line of defence) are not retried
forever: they are written to ``rejected.jsonl`` in the spool directory and reported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from bridgeai.service import prediction_log
from bridgeai.service.spool import Spool

logger = logging.getLogger("bridgeai.service.log_writer")

#: Errors meaning "the database is not there right now", as opposed to a bad row.
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, OSError)


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated


def _reason(exc: BaseException) -> str:
    """A one-line reason without SQL, parameters or credentials."""
    original = getattr(exc, "orig", None) or exc
    first_line = (str(original).strip().splitlines() or [""])[0]
    return f"{type(original).__name__}: {first_line[:200]}"


class LogWriter:
    """The prediction log's batched, durable writer; see the module docstring."""

    def __init__(
        self,
        database_url: str,
        spool: Spool,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.1,
        queue_limit: int = 50_000,
        connect_timeout: float = 3.0,
        retry_interval: float = 1.0,
    ) -> None:
        self.database_url = database_url
        self.redacted_url = prediction_log.redacted(prediction_log.sqlalchemy_url(database_url))
        self.spool = spool
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.queue_limit = queue_limit
        self.connect_timeout = connect_timeout
        self.retry_interval = retry_interval
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: sa.Engine | None = None
        self._migrated = False
        self._next_probe = 0.0
        self._last_failure_log = -1e9
        self.db_up = False
        self.last_error: str | None = None
        self.rows_written = 0
        self.batches_written = 0
        self.rows_spooled = 0
        self.rows_rejected = 0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            raise RuntimeError("LogWriter.start() was not called")
        return self._engine

    def start(self) -> None:
        """Open the spool, connect (creating/migrating the table) and start the thread."""
        self.spool.open()
        self._engine = prediction_log.create_log_engine(
            self.database_url, connect_timeout=self.connect_timeout, pool_size=3, max_overflow=2
        )
        if not self._database_ready():
            logger.warning(
                "the prediction log database %s is unreachable (%s); predictions will be "
                "served and their log rows spooled to %s until it returns",
                self.redacted_url,
                self.last_error,
                self.spool.directory,
            )
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer")
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write or spool everything queued, then stop (a clean shutdown loses nothing)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error(
                    "the prediction log writer did not finish within %.0fs; %d rows are "
                    "still queued in memory",
                    timeout,
                    len(self._queue),
                )
                return
        self.spool.close()
        if self._engine is not None:
            self._engine.dispose()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    # -- the request side ------------------------------------------------------------------
    def submit(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue rows for writing; never blocks and never touches the database."""
        self._queue.extend(rows)  # type: ignore[arg-type]
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    def check_database(self) -> tuple[bool, str]:
        """Run ``SELECT 1`` now (blocking; for readiness checks)."""
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except Exception as exc:
            return False, f"{self.redacted_url} is unreachable ({_reason(exc)})"
        return True, f"{self.redacted_url} reachable"

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._cycle(final=False)
        self._cycle(final=True)

    def _cycle(self, *, final: bool) -> None:
        # Only what was queued when the cycle began (everything, when stopping): rows arriving
        # meanwhile wait for the next flush, so batches stay full under steady traffic instead
        # of shrinking to a few rows per commit.
        remaining = len(self._queue)
        while self._queue and (final or remaining > 0):
            batch = self._take(self.batch_size if final else min(self.batch_size, remaining))
            remaining -= len(batch)
            try:
                if len(self._queue) > self.queue_limit:
                    # The database cannot keep up: put the backlog on disk, not in memory.
                    batch += self._take(len(self._queue))
                    self._spool(batch)
                else:
                    self._write_or_spool(batch)
            except Exception:
                # Neither the database nor the disk took the rows (a full disk?): keep them
                # queued and try again next cycle rather than drop them.
                self._queue.extendleft(reversed(batch))
                self._report_failure()
                return
        try:
            if self.spool.depth and self._database_ready():
                self._replay(deadline=time.monotonic() + (5.0 if final else 0.5))
        except Exception:
            self._report_failure()

    def _report_failure(self) -> None:
        now = time.monotonic()
        if now - self._last_failure_log > 10.0:
            self._last_failure_log = now
            logger.exception("the prediction log writer could not store rows; will retry")

    def _take(self, n: int) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        popleft = self._queue.popleft
        try:
            for _ in range(n):
                batch.append(popleft())
        except IndexError:
            pass
        return batch

    def _write_or_spool(self, batch: list[dict[str, Any]]) -> None:
        if self._database_ready():
            try:
                with self.engine.begin() as connection:
                    prediction_log.insert_rows(connection, batch)
                self.rows_written += len(batch)
                self.batches_written += 1
                return
            except Exception as exc:
                if _unavailable(exc):
                    self._mark_down(exc)
                else:
                    done = self._write_one_by_one(batch, exc)
                    batch = batch[done:]
        if batch:
            self._spool(batch)

    def _spool(self, batch: list[dict[str, Any]]) -> None:
        self.rows_spooled += self.spool.append(batch)

    def _write_one_by_one(self, rows: list[dict[str, Any]], first: BaseException) -> int:
        """Insert rows singly, setting aside those the database rejects.

        Returns how many rows were handled; fewer than ``len(rows)`` when the database went
        away part-way (the caller keeps the rest).
        """
        logger.error(
            "the database rejected a batch (%s); writing its rows one by one", _reason(first)
        )
        for i, row in enumerate(rows):
            try:
                with self.engine.begin() as connection:
                    prediction_log.insert_rows(connection, [row])
                self.rows_written += 1
            except Exception as exc:
                if _unavailable(exc):
                    self._mark_down(exc)
                    return i
                self._reject(row, exc)
        return len(rows)

    def _reject(self, row: Mapping[str, Any], exc: BaseException) -> None:
        path: Path = self.spool.directory / "rejected.jsonl"
        with open(path, "ab") as handle:
            handle.write(orjson.dumps({"error": _reason(exc), "row": row}) + b"\n")
        self.rows_rejected += 1
        logger.error(
            "prediction log row %s/%s rejected by the database (%s); kept in %s",
            row.get("request_id"),
            row.get("batch_index"),
            _reason(exc),
            path,
        )

    def _replay(self, deadline: float) -> None:
        for segment, rows in self.spool.drain():
            try:
                with self.engine.begin() as connection:
                    for start in range(0, len(rows), self.batch_size):
                        prediction_log.insert_rows(
                            connection, rows[start : start + self.batch_size]
                        )
                self.rows_written += len(rows)
            except Exception as exc:
                if _unavailable(exc):
                    self._mark_down(exc)
                    return
                if self._write_one_by_one(rows, exc) < len(rows):
                    return  # the database went away: keep the segment for the next replay
            self.spool.done(segment)
            logger.info("replayed %d spooled prediction-log rows from %s", len(rows), segment.name)
            if time.monotonic() > deadline:
                return

    def _database_ready(self) -> bool:
        if self.db_up:
            return True
        now = time.monotonic()
        if now < self._next_probe:
            return False
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            if not self._migrated:
                prediction_log.migrate(self.engine)
                self._migrated = True
        except Exception as exc:
            self._mark_down(exc)
            return False
        if self.last_error is not None:
            logger.info("the prediction log database %s is reachable again", self.redacted_url)
        self.db_up = True
        self.last_error = None
        return True

    def _mark_down(self, exc: BaseException) -> None:
        reason = _reason(exc)
        if self.db_up or self.last_error is None:
            logger.warning(
                "prediction log database %s unavailable (%s); spooling rows to %s",
                self.redacted_url,
                reason,
                self.spool.directory,
            )
        self.db_up = False
        self.last_error = reason
        self._next_probe = time.monotonic() + self.retry_interval
