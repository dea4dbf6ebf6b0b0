"""The model server's settings: read from BRIDGEAI_MODEL_SERVER_* variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bridgeai.model import CHAMPION_URI
from bridgeai.serving.settings import ModelServerSettings


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGEAI_MODEL_SERVER_BATCH_ROWS", "5")
    monkeypatch.setenv("BRIDGEAI_MODEL_SERVER_ACCESS_LOG", "false")
    settings = ModelServerSettings()
    assert (settings.batch_rows, settings.access_log) == (5, False)
    assert settings.model_uri == CHAMPION_URI
    assert ModelServerSettings(batch_rows=7).batch_rows == 7


def test_chunks_smaller_than_256_rows_are_refused() -> None:
    with pytest.raises(ValidationError, match="chunk_rows"):
        ModelServerSettings(chunk_rows=10)
