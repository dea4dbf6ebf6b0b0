"""Fixtures for the training and registry tests: MLflow stores, real and embedded.

``mlflow_server`` is a real ``mlflow server`` process (SQLite backend) whose artifacts go through
``--serve-artifacts`` into a SeaweedFS bucket, the local stack's set-up. ``mlflow_store`` is an
embedded SQLite store shared by a module's tests (creating one costs seconds of migrations).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class MLflowProcess:
    """A running MLflow tracking server with S3 (SeaweedFS) artifacts."""

    url: str
    storage: Any  # blocks.ObjectStorage of the artifacts bucket
    log_file: Path

    def block(self, **overrides: Any) -> Any:
        from blocks import MLflowServer

        return MLflowServer(tracking_uri=self.url, **overrides)


@dataclass
class EmbeddedStore:
    """An embedded MLflow store (SQLite + local artifacts) and an experiment in it."""

    block: Any  # blocks.MLflowServer
    client: Any  # mlflow.MlflowClient
    experiment_id: str

    @property
    def tracking_uri(self) -> str:
        return str(self.block.resolved_tracking_uri())


def unique_name(prefix: str = "house_price_test") -> str:
    """A registered-model name no other test uses."""
    return f"{prefix}_{secrets.token_hex(4)}"
