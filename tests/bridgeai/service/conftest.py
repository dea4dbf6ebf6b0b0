"""Fixtures of the prediction service's tests: a real model server process serving a tiny
LightGBM model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgeai.model.house_price import HousePriceModel
from bridgeai.testing.models import tiny_model
from tests.support.model_server import ModelServerProcess

#: The model server's own knobs for these tests: no access log (the service is under test).
MODEL_SERVER_ENV = {"BRIDGEAI_MODEL_SERVER_ACCESS_LOG": "false"}


@pytest.fixture(scope="session")
def local_model() -> HousePriceModel:
    """The model the service's model server serves, in-process."""
    return tiny_model()


@pytest.fixture(scope="session")
def model_dir(local_model: HousePriceModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """That model saved as a model directory (what the model server loads)."""
    return local_model.save(tmp_path_factory.mktemp("service-model") / "model")


@pytest.fixture(scope="session")
def model_server(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelServerProcess]:
    """A real model server shared by the session's service tests (never stopped by them)."""
    log_file = tmp_path_factory.mktemp("ms") / "model-server.log"
    server = ModelServerProcess(str(model_dir), log_file, env=MODEL_SERVER_ENV)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_model_server(model_dir: Path, tmp_path: Path) -> Iterator[ModelServerProcess]:
    """A model server this test may stop, pause and restart."""
    server = ModelServerProcess(str(model_dir), tmp_path / "model-server.log", env=MODEL_SERVER_ENV)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.resume()
        server.stop()
