"""Writes prediction-log rows to the database in batches, off the request path, losing none.

Requests hand their rows to the :class:`~bridgeai.service.journal.Journal`: in ``durable`` mode
(the default) they are answered only once the rows are in the spool and ``fsync``'d (group
commit); in ``async`` mode they are only queued in memory. One writer thread wakes every
``flush_interval`` (or as soon as a batch is full), seals what accumulated, and writes each
batch to the database in one transaction; a batch's spool segment is deleted only after its
commit. When the database is unreachable the batches wait on disk (``async`` mode first
spills its memory there) and the writer probes the database every ``retry_interval``; once it
answers, everything is written, oldest first.

At start the writer creates this process's own spool directory and adopts every spool whose
process died (:func:`bridgeai.service.spool.adopt_orphans`), replaying it before the service
reports ready; it looks for orphans again every ``adopt_interval``. Replays are idempotent: the
table ignores a ``(request_id, batch_index)`` it already holds.

Rows the database rejects as data errors (they cannot be, after validation; this is a last line
of defence) are not retried forever: they go to ``rejected.jsonl`` in the spool root.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bridgeai.service import prediction_log
from bridgeai.service.journal import DURABLE, SEGMENT_BYTES, Batch, Journal
from bridgeai.service.spool import Spool, adopt_orphans, append_rejected

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
    """The prediction log's batched, durable writer; see the module docstring.

    Args:
        database_url: the prediction log's database (``BRIDGEAI_DATABASE_URL``).
        spool_root: the spool root (``BRIDGEAI_SPOOL_DIR``); this process makes its own
            directory in it.
        durability: ``durable`` (answer after fsync) or ``async`` (answer at once).
    """

    def __init__(
        self,
        database_url: str,
        spool_root: Path,
        *,
        durability: str = DURABLE,
        batch_size: int = 500,
        flush_interval: float = 0.1,
        queue_limit: int = 50_000,
        connect_timeout: float = 3.0,
        retry_interval: float = 1.0,
        commit_window: float = 0.0,
        adopt_interval: float = 30.0,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.database_url = database_url
        self.redacted_url = prediction_log.redacted(prediction_log.sqlalchemy_url(database_url))
        self.spool_root = spool_root
        self.durable = durability == DURABLE
        self.durability = durability
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.queue_limit = queue_limit
        self.connect_timeout = connect_timeout
        self.retry_interval = retry_interval
        self.commit_window = commit_window
        self.adopt_interval = adopt_interval
        self.segment_bytes = segment_bytes
        self._journal: Journal | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: sa.Engine | None = None
        self._migrated = False
        self._next_probe = 0.0
        self._next_adoption = 0.0
        self._last_failure_log = -1e9
        self.db_up = False
        self.last_error: str | None = None
        self.rows_written = 0
        self.batches_written = 0
        self.rows_rejected = 0
        self.rows_adopted = 0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            raise RuntimeError("LogWriter.start() was not called")
        return self._engine

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("LogWriter.start() was not called")
        return self._journal

    @property
    def spool(self) -> Spool:
        """This process's own spool directory."""
        return self.journal.spool

    def start(self) -> None:
        """Create this process's spool, adopt dead ones, connect, and start the threads.

        Raises:
            SpoolError: the spool root cannot be created or written.
        """
        journal = Journal(
            Spool.create(self.spool_root),
            durable=self.durable,
            commit_window=self.commit_window,
            segment_bytes=self.segment_bytes,
        )
        journal.batch_size = self.batch_size
        journal.on_rows = self._wake.set
        self._journal = journal
        self._adopt()
        journal.start()
        self._engine = prediction_log.create_log_engine(
            self.database_url, connect_timeout=self.connect_timeout, pool_size=3, max_overflow=2
        )
        if not self._database_ready():
            logger.warning(
                "the prediction log database %s is unreachable (%s); predictions will be "
                "served and their log rows kept in the spool %s until it returns",
                self.redacted_url,
                self.last_error,
                self.spool.directory,
            )
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer")
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything still waiting (or leave it in the spool), then stop.

        A clean shutdown loses nothing: rows the database cannot take now stay on disk for the
        next process to replay.
        """
        journal = self._journal
        if journal is not None:
            journal.stop()
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error(
                    "the prediction log writer did not finish within %.0fs; %d rows are still "
                    "in memory, %d in the spool %s",
                    timeout,
                    journal.memory_depth if journal else 0,
                    journal.disk_depth if journal else 0,
                    self.spool_root,
                )
                return
        if journal is not None:
            journal.release_adopted()
            if journal.spool.release():
                logger.debug("removed the empty spool directory %s", journal.spool.directory)
            elif journal.disk_depth:
                logger.warning(
                    "%d prediction-log rows stay in the spool %s; the next service process "
                    "replays them",
                    journal.disk_depth,
                    journal.spool.directory,
                )
        if self._engine is not None:
            self._engine.dispose()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queue_depth(self) -> int:
        """Rows in memory only (``async`` mode) waiting for the database."""
        return self._journal.memory_depth if self._journal else 0

    @property
    def spool_depth(self) -> int:
        """Rows in the spool (this process's and adopted ones) not yet in the database."""
        return self._journal.disk_depth if self._journal else 0

    @property
    def rows_spooled(self) -> int:
        return self._journal.rows_spooled if self._journal else 0

    @property
    def rows_torn(self) -> int:
        return self._journal.torn_records if self._journal else 0

    # -- the request side ------------------------------------------------------------------
    async def log(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store rows: durably before returning (``durable``), or queued in memory (``async``).

        Raises:
            LogUnavailable: ``durable`` mode and the spool cannot be written.
        """
        if self.durable:
            await self.journal.commit(rows)
        else:
            self.journal.submit(rows)

    def submit(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store rows from a thread without an event loop (blocking in ``durable`` mode)."""
        if self.durable:
            self.journal.commit_sync(list(rows))  # type: ignore[arg-type]
        else:
            self.journal.submit(list(rows))  # type: ignore[arg-type]

    def check_database(self) -> tuple[bool, str]:
        """Run ``SELECT 1`` now (blocking; for readiness checks)."""
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except Exception as exc:
            return False, f"{self.redacted_url} is unreachable ({_reason(exc)})"
        return True, f"{self.redacted_url} reachable"

    def check_spool(self) -> tuple[bool, str]:
        """Whether requests can be answered as the durability mode promises (for ``/ready``).

        Probes the disk when the last write failed. In ``durable`` mode a spool that cannot be
        written, or a start-up replay of a dead process's spool still under way, is not ready.
        """
        journal = self.journal
        writable = journal.probe()
        where = f"{self.durability} log, spool {journal.spool.directory}"
        adopted = journal.adopted_rows()
        if not writable:
            detail = f"{where} cannot be written ({journal.error})"
            return (not self.durable), detail
        if adopted:
            return False, f"{where}: replaying {adopted} rows left by a process that died"
        return True, f"{where} writable"

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        self._cycle()  # at once: a dead process's spool is replayed before /ready says yes
        while not self._stopping.is_set():
            # While adopted rows wait (the database was down), retry at the probe's pace.
            interval = self.flush_interval
            if self.journal.adopted_rows():
                interval = min(interval, self.retry_interval)
            self._wake.wait(interval)
            self._wake.clear()
            self._cycle()
        self._cycle()

    def _cycle(self) -> None:
        journal = self.journal
        try:
            if time.monotonic() >= self._next_adoption:
                self._adopt()
            if self._database_ready():
                journal.seal()
                for batch in journal.batches():
                    if not self._write(batch):
                        break  # the database went away: the rest waits
                    journal.done(batch)
            if not self.durable and (not self.db_up or journal.memory_depth > self.queue_limit):
                # Nothing in memory is durable: put the backlog on disk.
                journal.spill()
            journal.trim(self.queue_limit)  # a long outage's backlog waits on disk, not in RAM
        except Exception:
            # A full disk in async mode, say: the rows stay where they are; try again.
            self._report_failure()

    def _adopt(self) -> None:
        self._next_adoption = time.monotonic() + self.adopt_interval
        for orphan in adopt_orphans(self.spool_root, own=self.journal.spool):
            rows = self.journal.adopt(orphan)
            if rows:
                self.rows_adopted += rows
                logger.warning(
                    "adopted the spool %s of a service process that is gone: %d prediction-log "
                    "rows to replay",
                    orphan.directory,
                    rows,
                )
            elif orphan.directory != self.spool_root:
                orphan.release()

    def _report_failure(self) -> None:
        now = time.monotonic()
        if now - self._last_failure_log > 10.0:
            self._last_failure_log = now
            logger.exception("the prediction log writer could not store rows; will retry")

    def _write(self, batch: Batch) -> bool:
        """Commit one batch in one transaction; False when the database went away."""
        rows = self.journal.rows_of(batch)
        try:
            with self.engine.begin() as connection:
                for start in range(0, len(rows), self.batch_size):
                    prediction_log.insert_rows(connection, rows[start : start + self.batch_size])
                    self.batches_written += 1
            self.rows_written += len(rows)
            return True
        except Exception as exc:
            if _unavailable(exc):
                self._mark_down(exc)
                return False
            return self._write_one_by_one(rows, exc) == len(rows)

    def _write_one_by_one(self, rows: list[dict[str, Any]], first: BaseException) -> int:
        """Insert rows singly, setting aside those the database rejects.

        Returns how many rows were handled; fewer than ``len(rows)`` when the database went
        away part-way (the batch is then written again later, idempotently).
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
        path = append_rejected(self.spool_root, {"error": _reason(exc), "row": dict(row)})
        self.rows_rejected += 1
        logger.error(
            "prediction log row %s/%s rejected by the database (%s); kept in %s",
            row.get("request_id"),
            row.get("batch_index"),
            _reason(exc),
            path,
        )

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
                "prediction log database %s unavailable (%s); keeping rows in the spool %s",
                self.redacted_url,
                reason,
                self.spool_root,
            )
        self.db_up = False
        self.last_error = reason
        self._next_probe = time.monotonic() + self.retry_interval
