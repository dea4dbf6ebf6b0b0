"""The running service's state: pools, writer, metrics, built in the app's lifespan."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridgeai.service.batching import InferenceBatcher
from bridgeai.service.log_writer import LogWriter
from bridgeai.service.metrics import ServiceMetrics
from bridgeai.service.model_client import ModelClient
from bridgeai.service.settings import ServiceSettings


class RequestIds:
    """Random (version 4) UUIDs drawn from a buffer: one ``getrandom`` call per 256 ids."""

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self._reset)  # a forked worker must not reuse ids

    def _reset(self) -> None:
        self._buffer, self._offset = b"", 0

    def next(self) -> str:
        if self._offset + 16 > len(self._buffer):
            self._buffer, self._offset = os.urandom(16 * 256), 0
        raw = self._buffer[self._offset : self._offset + 16]
        self._offset += 16
        return uuid.UUID(bytes=raw, version=4).hex


@dataclass
class ServiceState:
    """Everything the endpoints need, kept on ``app.state.service`` while the app runs."""

    settings: ServiceSettings
    model: ModelClient
    batcher: InferenceBatcher
    writer: LogWriter
    metrics: ServiceMetrics
    request_ids: RequestIds

    async def log(
        self,
        request_id: str,
        houses: Sequence[dict[str, Any]],
        prices: Sequence[float] | None,
        status: int,
        model_version: str | None,
        started: float,
    ) -> None:
        """Store one log row per house, as ``BRIDGEAI_LOG_DURABILITY`` promises.

        ``durable``: returns once the rows are in the spool and fsync'd (group commit).
        ``async``: only queues them in memory.

        Raises:
            LogUnavailable: ``durable`` mode and the spool cannot be written.
        """
        latency_ms = (time.perf_counter() - started) * 1000.0
        now = datetime.now(UTC)
        name = self.settings.model_name
        await self.writer.log(
            [
                {
                    **house,
                    "prediction": prices[i] if prices is not None else None,
                    "model_name": name,
                    "model_version": model_version,
                    "request_id": request_id,
                    "batch_index": i,
                    "latency_ms": latency_ms,
                    "status": status,
                    "created_at": now,
                }
                for i, house in enumerate(houses)
            ]
        )


def build_state(settings: ServiceSettings, metrics: ServiceMetrics) -> ServiceState:
    """Create (but not yet open) the model pool, the batcher and the log writer."""
    model = ModelClient(
        settings.model_url,
        settings.model_name,
        timeout=settings.model_timeout,
        retries=settings.model_retries,
        backoff=settings.model_retry_backoff,
        max_connections=settings.model_max_connections,
    )
    writer = LogWriter(
        settings.resolved_database_url(),
        settings.resolved_spool_dir(),
        durability=settings.log_durability,
        commit_window=settings.log_commit_window,
        batch_size=settings.log_batch_size,
        flush_interval=settings.log_flush_interval,
        queue_limit=settings.log_queue_limit,
        connect_timeout=settings.db_connect_timeout,
        retry_interval=settings.db_retry_interval,
    )
    batcher = InferenceBatcher(
        model, max_rows=settings.model_batch_rows, max_wait=settings.model_batch_wait
    )
    return ServiceState(
        settings=settings,
        model=model,
        batcher=batcher,
        writer=writer,
        metrics=metrics,
        request_ids=RequestIds(),
    )
