"""Fixtures of the conformance tests: the real model server and the real prediction service,
checked by tools nobody here wrote (schemathesis, tritonclient, KServe's client).

The model server is ``python -m bridgeai.serving`` (the image's entrypoint) serving a tiny
LightGBM model, with gRPC on its own port; the service runs under uvicorn against it, logging
to SQLite, with an API key so that schemathesis' authentication checks have something to check.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgeai import procs
from bridgeai.model.house_price import HousePriceModel
from bridgeai.testing.models import tiny_model
from tests.support.model_server import ModelServerProcess, save_with_info
from tests.support.service import API_KEY, RunningService, run_service, service_settings


@pytest.fixture(scope="session")
def model() -> HousePriceModel:
    """The served model, in-process: what every answer is compared with."""
    return tiny_model()


@pytest.fixture(scope="session")
def grpc_port() -> int:
    return procs.free_port()


@pytest.fixture(scope="session")
def model_server(
    model: HousePriceModel, grpc_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelServerProcess]:
    """A real model server (REST and gRPC) serving ``model`` as registry version 7."""
    root = tmp_path_factory.mktemp("conformance-model")
    model_dir = save_with_info(model, root / "model", version="7", run_id="0123456789abcdef")
    env = {
        "BRIDGEAI_MODEL_SERVER_ACCESS_LOG": "false",
        "BRIDGEAI_MODEL_SERVER_GRPC_PORT": str(grpc_port),
    }
    server = ModelServerProcess(str(model_dir), root / "server.log", env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def service(
    model_server: ModelServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """The prediction service in front of that model server, with an API key."""
    root = tmp_path_factory.mktemp("conformance-service")
    settings = service_settings(
        model_server.url,
        f"sqlite:///{root / 'predictions.db'}",
        root / "spool",
        api_key=API_KEY,
        max_batch_rows=20,
    )
    with run_service(settings) as running:
        yield running


@pytest.fixture(scope="session")
def schemathesis_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("schemathesis")
