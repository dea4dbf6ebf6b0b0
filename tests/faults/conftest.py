"""Fixtures of the fault matrix: real processes the tests kill, stop, fill up or cut off.

Each fault is injected into a real process (SIGKILL, a full or read-only tmpfs, a stopped
server); nothing is mocked. Every test here is marked ``faults`` (``pytest -m faults`` runs the
matrix alone; ``make test`` runs it with everything else).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridgeai.testing import postgres as pg
from bridgeai.testing.models import tiny_model
from tests.faults.support import ServiceProcess
from tests.support.env import require
from tests.support.model_server import ModelServerProcess

MODEL_SERVER_ENV = {"BRIDGEAI_MODEL_SERVER_ACCESS_LOG": "false"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def fault_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LightGBM model saved as a model directory."""
    return tiny_model().save(tmp_path_factory.mktemp("fault-model") / "model")


@pytest.fixture(scope="session")
def fault_model_server(
    fault_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelServerProcess]:
    """A model server the fault tests share and never stop."""
    server = ModelServerProcess(
        str(fault_model_dir), tmp_path_factory.mktemp("ms") / "ms.log", env=MODEL_SERVER_ENV
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def killable_model_server(fault_model_dir: Path, tmp_path: Path) -> Iterator[ModelServerProcess]:
    """A model server this test may SIGKILL and start again (same port)."""
    server = ModelServerProcess(str(fault_model_dir), tmp_path / "ms.log", env=MODEL_SERVER_ENV)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_postgres() -> Iterator[pg.PostgresCluster]:
    """A PostgreSQL cluster of this test's own (it may be SIGKILLed), with
    ``synchronous_commit=on``: a commit it acknowledged survives a SIGKILL of PostgreSQL (the OS
    keeps written pages across a process crash; only a power loss would need fsync). The
    session cluster's ``synchronous_commit=off`` loses the last acknowledged commits."""
    require(pg.available(), "PostgreSQL server binaries (initdb, pg_ctl)")
    cluster = pg.PostgresCluster(durability="committing")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(params=["postgresql", "sqlite"])
def log_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The prediction log's database: a fresh PostgreSQL database, or a SQLite file."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'predictions.db'}"
        return
    cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database()
    try:
        yield url
    finally:
        cluster.drop_database(url)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Make ``bridgeai serve`` processes (stopped at the end); env overrides per call."""
    made: list[ServiceProcess] = []

    def make(model_url: str, database_url: str, spool_dir: Path, **env: str) -> ServiceProcess:
        values = {
            "BRIDGEAI_MODEL_URL": model_url,
            "BRIDGEAI_DATABASE_URL": database_url,
            "BRIDGEAI_SPOOL_DIR": str(spool_dir),
            "BRIDGEAI_DB_RETRY_INTERVAL": "0.2",
            "BRIDGEAI_LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        service = ServiceProcess(values, tmp_path / f"service-{len(made)}.log")
        made.append(service)
        return service

    try:
        yield make
    finally:
        for service in made:
            service.stop()


class Tmpfs:
    """A small tmpfs mounted for one test: a disk that can really fill up or turn read-only."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.size = size

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0777", "tmpfs", str(self.path)],
            check=True,
            capture_output=True,
            text=True,
        )

    def remount(self, options: str) -> None:
        subprocess.run(
            ["mount", "-o", f"remount,{options}", str(self.path)], check=True, capture_output=True
        )

    def fill(self) -> Path:
        """Write a file until the tmpfs is full; returns it (delete it to free the space)."""
        ballast = self.path / "ballast"
        with open(ballast, "wb") as handle, contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        return ballast

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)


def _can_mount(probe: Path) -> tuple[bool, str]:
    if shutil.which("mount") is None:
        return False, "no mount command"
    if os.geteuid() != 0:
        return False, "not root"
    probe.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return False, result.stderr.strip()
    subprocess.run(["umount", str(probe)], capture_output=True, check=False)
    return True, ""


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    """A 2 MB tmpfs (CI runs the tests as root, so ``mount`` works there: this fails in CI,
    never skips, when it does not)."""
    ok, why = _can_mount(tmp_path / "probe")
    require(ok, f"mounting a tmpfs for the disk-full fault ({why})")
    fs = Tmpfs(tmp_path / "tmpfs", "2m")
    fs.mount()
    try:
        yield fs
    finally:
        fs.unmount()
