"""Blocks saved to and loaded from a real (temporary) Prefect API."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from blocks import (
    DEFAULT_BLOCK_NAME,
    BlockNotFoundError,
    ContainerRegistry,
    MLflowServer,
    ObjectStorage,
    load_block,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_blocks_round_trip_with_secrets_masked_in_the_api() -> None:
    from prefect.client.orchestration import get_client

    ObjectStorage(
        endpoint_url="http://127.0.0.1:9000",
        access_key_id="minio-user",
        secret_access_key=SecretStr("minio-secret-value"),
    ).save("roundtrip-storage", overwrite=True)
    MLflowServer(
        tracking_uri="http://127.0.0.1:5080", username="u", password=SecretStr("mlflow-pw")
    ).save("roundtrip-mlflow", overwrite=True)
    ContainerRegistry(username="r", password=SecretStr("registry-token")).save(
        "roundtrip-registry", overwrite=True
    )

    with get_client(sync_client=True) as client:
        for slug, name, secret in (
            ("bridgeai-object-storage", "roundtrip-storage", "minio-secret-value"),
            ("bridgeai-mlflow-server", "roundtrip-mlflow", "mlflow-pw"),
            ("bridgeai-container-registry", "roundtrip-registry", "registry-token"),
        ):
            doc = client.read_block_document_by_name(
                name=name, block_type_slug=slug, include_secrets=False
            )
            dumped = json.dumps(doc.data)
            assert secret not in dumped, f"{slug} leaked its secret through the API"
            assert "********" in dumped

    storage = ObjectStorage.load("roundtrip-storage")
    assert storage.secret_access_key is not None
    assert storage.secret_access_key.get_secret_value() == "minio-secret-value"
    registry = ContainerRegistry.load("roundtrip-registry")
    assert registry.auth_config() == {
        "username": "r",
        "password": "registry-token",
        "serveraddress": "localhost:5000",
    }


def test_default_name_falls_back_to_embedded_defaults_but_a_chosen_name_must_exist() -> None:
    storage = load_block(ObjectStorage, DEFAULT_BLOCK_NAME)
    assert storage.is_local
    server = load_block(MLflowServer)
    assert server.resolved_tracking_uri().startswith("sqlite:///")
    with pytest.raises(BlockNotFoundError, match="no-such-block"):
        load_block(ObjectStorage, "no-such-block")


def test_saved_default_block_wins_over_the_embedded_default() -> None:
    MLflowServer(tracking_uri="http://127.0.0.1:5999").save(DEFAULT_BLOCK_NAME, overwrite=True)
    try:
        assert load_block(MLflowServer).tracking_uri == "http://127.0.0.1:5999"
    finally:
        MLflowServer.delete(DEFAULT_BLOCK_NAME)
    assert load_block(MLflowServer).tracking_uri is None


def test_blocks_module_registers_with_the_prefect_cli() -> None:
    import subprocess
    import sys
    from pathlib import Path

    from prefect.settings import PREFECT_API_URL

    prefect = Path(sys.executable).parent / "prefect"
    env = {**__import__("os").environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    out = subprocess.run(
        [str(prefect), "block", "register", "-m", "blocks"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Successfully registered" in out.stdout
    for block_cls in (ObjectStorage, MLflowServer, ContainerRegistry):
        assert block_cls.get_block_type_name() in out.stdout


def test_load_block_is_synchronous_inside_a_running_event_loop() -> None:
    # A notebook cell runs inside an event loop, where Prefect's load would return a coroutine.
    import asyncio

    async def in_a_notebook_cell() -> object:
        return load_block(ObjectStorage)

    loaded = asyncio.run(in_a_notebook_cell())
    assert isinstance(loaded, ObjectStorage)
    assert loaded.is_local
