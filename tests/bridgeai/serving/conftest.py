"""Fixtures of the model server's tests: a tiny model and a real server process serving it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bridgeai import procs
from bridgeai.model.house_price import HousePriceModel
from bridgeai.model.source import ModelInfo
from bridgeai.testing.models import tiny_model
from tests.support.model_server import ModelServerProcess, model_server, save_with_info

# Small thresholds so a 1,000-row request takes the offloaded, pipelined path.
SERVER_ENV = {
    "BRIDGEAI_MODEL_SERVER_BATCH_ROWS": "64",
    "BRIDGEAI_MODEL_SERVER_CHUNK_ROWS": "256",
    "BRIDGEAI_MODEL_SERVER_OFFLOAD_BYTES": "4096",
    "BRIDGEAI_MODEL_SERVER_MAX_BODY_BYTES": "2000000",
}


@pytest.fixture(scope="session")
def model() -> HousePriceModel:
    return tiny_model()


@pytest.fixture(scope="session")
def identity() -> ModelInfo:
    """The registry identity the served model directory records (as an image bakes it)."""
    return ModelInfo(version="7", run_id="0123456789abcdef")


@pytest.fixture(scope="session")
def grpc_port() -> int:
    """The port the session's server serves gRPC on."""
    return procs.free_port()


@pytest.fixture(scope="session")
def server(
    model: HousePriceModel,
    identity: ModelInfo,
    grpc_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ModelServerProcess]:
    """``python -m bridgeai.serving`` (the image's entrypoint) serving ``model`` as ``identity``,
    over REST and (on ``grpc_port``) gRPC."""
    root = tmp_path_factory.mktemp("model-server")
    model_dir = save_with_info(model, root / "model", **identity.model_dump())
    env = {**SERVER_ENV, "BRIDGEAI_MODEL_SERVER_GRPC_PORT": str(grpc_port)}
    with model_server(str(model_dir), root / "server.log", env=env) as running:
        yield running


@pytest.fixture(scope="session")
def http(server: ModelServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
