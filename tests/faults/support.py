"""Helpers of the fault-matrix tests: a prediction service as a real process that can be
SIGKILLed, a load generator that records every answer, and prediction-log queries.

The fixtures built on these are in ``tests/faults/conftest.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bridgeai import procs, schema

HOUSE = dict(schema.EXAMPLE_HOUSE)


@dataclass
class ServiceProcess:
    """``bridgeai serve`` as a child process (what runs in production), restartable."""

    env: dict[str, str]
    log_file: Path
    port: int = field(default_factory=procs.free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, ready: bool = True, timeout: float = 180.0) -> None:
        """Start it; wait for ``/ready`` (or only ``/health`` with ``ready=False``)."""
        command = [sys.executable, "-m", "bridgeai.cli", "serve", "--host", "127.0.0.1"]
        self.process = procs.start_process(
            [*command, "--port", str(self.port)], log_file=self.log_file, env=self.env
        )
        path = "/ready" if ready else "/health"
        procs.wait_until(
            lambda: procs.http_ok(f"{self.url}{path}"),
            timeout=timeout,
            service="bridgeai serve",
            log_file=self.log_file,
            process=self.process,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            procs.stop_process(self.process.pid, timeout=60)
            self.process = None


@dataclass
class Answer:
    status: int
    request_id: str | None
    rows: int
    message: str = ""


class Load:
    """Concurrent clients posting ``/predict`` and ``/predict/batch`` (3 houses) in a loop.

    Runs in its own thread and event loop; every answer is recorded (status, request id, rows).
    Connection errors (the service was killed) are counted, and the clients keep trying.
    """

    def __init__(self, url: str, concurrency: int = 32, headers: dict[str, str] | None = None):
        self.url = url
        self.concurrency = concurrency
        self.headers = headers or {}
        self.answers: list[Answer] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def ok(self) -> list[Answer]:
        return [a for a in list(self.answers) if a.status == 200]

    def wait_for_answers(self, n: int, timeout: float = 120.0, status: int = 200) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for a in list(self.answers) if a.status == status) < n:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"fewer than {n} answers with status {status} within {timeout:.0f}s "
                    f"({len(self.answers)} answers, {self.errors} connection errors)"
                )
            time.sleep(0.05)

    async def _main(self) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=self.headers
        ) as session:
            await asyncio.gather(*(self._client(session, i) for i in range(self.concurrency)))

    async def _client(self, session: aiohttp.ClientSession, number: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            batch = (number + i) % 4 == 0
            body: Any
            if batch:
                path, rows = "/predict/batch", 3
                body = {"houses": [{**HOUSE, "area": 1000 + k + number} for k in range(3)]}
            else:
                path, rows = "/predict", 1
                body = {**HOUSE, "area": 1000 + i % 500}
            try:
                async with session.post(f"{self.url}{path}", json=body) as response:
                    doc = await response.json(content_type=None)
                    self.answers.append(
                        Answer(
                            response.status,
                            doc.get("request_id"),
                            rows,
                            str(doc.get("message", "")),
                        )
                    )
            except (TimeoutError, aiohttp.ClientError, ValueError):
                self.errors += 1
                await asyncio.sleep(0.05)


# -- the prediction log -----------------------------------------------------------------------
def logged_keys(url: str) -> list[tuple[str, int]]:
    """Every ``(request_id, batch_index)`` in prediction_logs, duplicates included."""
    import sqlalchemy as sa

    from bridgeai.service import prediction_log

    engine = prediction_log.create_log_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("prediction_logs"):
                return []
            table = prediction_log.prediction_logs
            query = sa.select(table.c.request_id, table.c.batch_index)
            return [(r, int(i)) for r, i in connection.execute(query).all()]
    finally:
        engine.dispose()


def missing_answers(answers: list[Answer], url: str) -> list[Answer]:
    """The answered-200 requests with a row missing from prediction_logs."""
    keys = set(logged_keys(url))
    return [
        a
        for a in answers
        if a.status == 200 and any((a.request_id, i) not in keys for i in range(a.rows))
    ]


def metric(url: str, name: str) -> float:
    """One unlabelled sample from the service's ``/metrics``."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
