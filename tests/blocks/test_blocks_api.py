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
    prefect_server_configured,
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


def test_embedded_mode_uses_the_defaults_without_asking_prefect() -> None:
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE,
        temporary_settings,
    )

    # No server configured, and none may be started: any call to Prefect would fail.
    with temporary_settings(
        updates={PREFECT_SERVER_ALLOW_EPHEMERAL_MODE: False}, restore_defaults={PREFECT_API_URL}
    ):
        assert not prefect_server_configured()
        storage = load_block(ObjectStorage, DEFAULT_BLOCK_NAME)
        assert storage.is_local
        assert load_block(MLflowServer).resolved_tracking_uri().startswith("sqlite:///")
        with pytest.raises(BlockNotFoundError, match="no Prefect server is configured"):
            load_block(ObjectStorage, "chosen-name")


def test_against_a_server_a_missing_block_is_an_error_that_says_how_to_create_it() -> None:
    assert prefect_server_configured()
    with pytest.raises(BlockNotFoundError) as missing:
        load_block(ObjectStorage, "no-such-block")
    message = str(missing.value)
    assert "ObjectStorage block (type bridgeai-object-storage) named 'no-such-block'" in message
    assert "bridgeai up" in message and ".save('no-such-block')" in message
    # The default name is no exception: without a saved block there are no defaults.
    saved = load_block(ContainerRegistry)
    ContainerRegistry.delete(DEFAULT_BLOCK_NAME)
    try:
        with pytest.raises(BlockNotFoundError, match=r"ContainerRegistry block .* 'bridgeai'"):
            load_block(ContainerRegistry)
    finally:
        saved.save(DEFAULT_BLOCK_NAME, overwrite=True)


def test_saved_default_block_is_what_the_flows_load() -> None:
    before = load_block(MLflowServer)
    MLflowServer(tracking_uri="http://127.0.0.1:5999").save(DEFAULT_BLOCK_NAME, overwrite=True)
    try:
        assert load_block(MLflowServer).tracking_uri == "http://127.0.0.1:5999"
    finally:
        before.save(DEFAULT_BLOCK_NAME, overwrite=True)
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
