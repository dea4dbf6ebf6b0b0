"""Fixtures for the prediction service's tests: fresh databases, a real model server process
(``bridgeai serve-model`` on a tiny LightGBM model), and the service itself under uvicorn.

Import the fixtures a test module needs by name::

    from tests.support.service import model_server, pg_database_url  # noqa: F401
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridgeai import procs
from bridgeai.model.house_price import HousePriceModel
from bridgeai.testing.models import tiny_model
from bridgeai.testing.postgres import PostgresCluster

MODEL_NAME = "house_price_prediction_prod"
API_KEY = "test-key-" + "x" * 8


# -- databases ------------------------------------------------------------------------------
def fresh_database(cluster: PostgresCluster) -> str:
    """Create an empty database in ``cluster`` and return its ``postgresql://`` URL."""
    name = f"svc_{secrets.token_hex(5)}"
    cluster.psql(f"CREATE DATABASE {name}")
    return cluster.url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(cluster: PostgresCluster, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    cluster.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_database_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the session's cluster, dropped afterwards."""
    url = fresh_database(postgres_cluster)
    try:
        yield url
    finally:
        drop_database(postgres_cluster, url)


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


# -- the model server -----------------------------------------------------------------------
@dataclass
class ModelServerProcess:
    """A real ``bridgeai serve-model`` process on a fixed loopback port (restartable)."""

    model_dir: Path
    log_file: Path
    port: int = field(default_factory=procs.free_port)
    process: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        command = [
            sys.executable, "-m", "bridgeai.cli", "serve-model",
            "--model-uri", str(self.model_dir), "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        env = {"BRIDGEAI_MODEL_SERVER_ACCESS_LOG": "false"}
        self.process = procs.start_process(command, log_file=self.log_file, env=env)
        procs.wait_until(
            lambda: procs.http_ok(f"{self.url}/v2/models/{MODEL_NAME}/ready"),
            timeout=timeout,
            service="bridgeai serve-model",
            log_file=self.log_file,
            process=self.process,
        )

    def stop(self) -> None:
        if self.process is not None:
            procs.stop_process(self.process.pid)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a hung server)."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained model saved as a model directory (what the model server loads)."""
    return tiny_model().save(tmp_path_factory.mktemp("service-model") / "model")


@pytest.fixture(scope="session")
def local_model(model_dir: Path) -> HousePriceModel:
    """The same model loaded in-process, to compute the prices the service must return."""
    return HousePriceModel.load(model_dir)


@pytest.fixture(scope="session")
def model_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real model server shared by the session's service tests (never stopped by them)."""
    server = ModelServerProcess(model_dir, tmp_path_factory.mktemp("ms") / "model-server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_model_server(model_dir: Path, tmp_path: Path):
    """A model server this test may stop, pause and restart."""
    server = ModelServerProcess(model_dir, tmp_path / "model-server.log")
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.resume()
        server.stop()


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
