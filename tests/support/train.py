"""Fixtures for the training and registry tests: MLflow stores, real and embedded.

``mlflow_server`` is a real ``mlflow server`` process (SQLite backend) whose artifacts go through
``--serve-artifacts`` into a SeaweedFS bucket, the local stack's set-up. ``mlflow_store`` is an
embedded SQLite store shared by a module's tests (creating one costs seconds of migrations).
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from bridgeai.data.split import split_frame
from bridgeai.testing.synthetic import housing_frame


@dataclass
class MLflowProcess:
    """A running MLflow tracking server with S3 (SeaweedFS) artifacts."""

    url: str
    storage: Any  # blocks.ObjectStorage of the artifacts bucket
    log_file: Path

    def block(self, **overrides: Any) -> Any:
        from blocks import MLflowServer

        return MLflowServer(tracking_uri=self.url, **overrides)


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
    process = procs.start_process(command, log_file=log_file, env=env, cwd=root)
    url = f"http://{procs.LOOPBACK}:{port}"
    try:
        procs.wait_until(
            lambda: procs.http_ok(f"{url}/health"),
            timeout=180,
            service="mlflow server",
            log_file=log_file,
            process=process,
        )
        yield MLflowProcess(url=url, storage=storage, log_file=log_file)
    finally:
        procs.stop_process(process.pid)


@dataclass
class EmbeddedStore:
    """An embedded MLflow store (SQLite + local artifacts) and an experiment in it."""

    block: Any  # blocks.MLflowServer
    client: Any  # mlflow.MlflowClient
    experiment_id: str

    def use(self) -> Any:
        """Point MLflow's fluent API at this store again (another test may have moved it)."""
        return self.block.client()


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


def unique_name(prefix: str = "house_price_test") -> str:
    """A registered-model name no other test uses."""
    return f"{prefix}_{secrets.token_hex(4)}"
