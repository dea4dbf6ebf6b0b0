"""Helpers for the prediction service's tests: fresh databases on the session's PostgreSQL
cluster, reading the prediction log back, and the service itself under uvicorn.

The fixtures built on these live in ``tests/bridgeai/service/conftest.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from bridgeai import procs
from tests.support.model_server import MODEL_NAME as MODEL_NAME

T = TypeVar("T")

API_KEY = "test-key-" + "x" * 8


# -- databases ------------------------------------------------------------------------------
def count_rows(url: str, where: str = "TRUE") -> int:
    """Rows in prediction_logs (0 when the table does not exist yet)."""
    import sqlalchemy as sa

    from bridgeai.service import prediction_log

    engine = prediction_log.create_log_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("prediction_logs"):
                return 0
            return int(
                connection.execute(
                    sa.text(f"SELECT count(*) FROM prediction_logs WHERE {where}")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def logged(url: str) -> list[dict[str, Any]]:
    """Every row of prediction_logs, as dicts, in id order."""
    import sqlalchemy as sa

    from bridgeai.service import prediction_log

    engine = prediction_log.create_log_engine(url)
    try:
        with engine.connect() as connection:
            table = prediction_log.prediction_logs
            rows = connection.execute(sa.select(table).order_by(table.c.id)).mappings().all()
            return [dict(row) for row in rows]
    finally:
        engine.dispose()


def wait_for(check: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``check()`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout:.0f}s (last value {value!r})")
        time.sleep(interval)


# -- the service ----------------------------------------------------------------------------
def service_settings(model_url: str, database_url: str, spool_dir: Path, **overrides: Any):
    """Settings for a test service: quick flushes and reconnects, short timeouts."""
    from bridgeai.service import ServiceSettings

    values: dict[str, Any] = {
        "model_url": model_url,
        "database_url": database_url,
        "spool_dir": spool_dir,
        "log_flush_interval": 0.05,
        "db_retry_interval": 0.2,
        "db_connect_timeout": 2.0,
        "model_timeout": 3.0,
        "shutdown_timeout": 60.0,
    }
    values.update(overrides)
    return ServiceSettings(**values)


@dataclass
class RunningService:
    """A service running under uvicorn in a background thread of the test process."""

    url: str
    app: Any
    server: Any
    thread: threading.Thread

    @property
    def state(self) -> Any:
        return self.app.state.service

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0, **kwargs)

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the service's event loop (its pools live there) and wait."""
        loop = self.server.servers[0].get_loop()
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)

    def stop(self) -> None:
        """A clean shutdown (as on SIGTERM): uvicorn drains, then the lifespan flushes."""
        self.server.should_exit = True
        self.thread.join(120)
        assert not self.thread.is_alive(), "the service did not shut down"


@contextmanager
def run_service(settings: Any) -> Iterator[RunningService]:
    """Start the service app under uvicorn on a free port; stop it cleanly afterwards."""
    import uvicorn

    from bridgeai.service import create_app

    app = create_app(settings)
    port = procs.free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"service-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the prediction service failed to start (see the log above)")
        if time.monotonic() > deadline:
            raise RuntimeError("the prediction service did not start within 60s")
        time.sleep(0.02)
    running = RunningService(f"http://127.0.0.1:{port}", app, server, thread)
    try:
        yield running
    finally:
        if thread.is_alive():
            running.stop()
