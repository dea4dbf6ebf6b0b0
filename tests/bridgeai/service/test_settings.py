"""Service settings: read from BRIDGEAI_* variables, secrets hidden, bad values explained."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bridgeai.service import ServiceSettings


def test_settings_come_from_the_environment_and_hide_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRIDGEAI_MODEL_URL", "http://model:8080/")
    monkeypatch.setenv("BRIDGEAI_DATABASE_URL", "postgresql://u:hunter2@db:5432/x")
    monkeypatch.setenv("BRIDGEAI_API_KEY", "k3y-value")
    monkeypatch.setenv("BRIDGEAI_MAX_BATCH_ROWS", "7")
    settings = ServiceSettings()
    assert settings.model_url == "http://model:8080"
    assert settings.max_batch_rows == 7
    assert settings.resolved_database_url() == "postgresql://u:hunter2@db:5432/x"
    shown = repr(settings) + str(settings.model_dump())
    assert "hunter2" not in shown and "k3y-value" not in shown


def test_embedded_defaults_live_under_bridgeai_home(bridgeai_home: Path) -> None:
    settings = ServiceSettings()
    assert settings.resolved_database_url().endswith("/service/predictions.db")
    assert str(bridgeai_home) in settings.resolved_database_url()
    assert settings.resolved_spool_dir() == bridgeai_home / "service" / "spool"
    assert not (bridgeai_home / "service" / "spool").exists()  # nothing created by reading


@pytest.mark.parametrize("url", ["model:8080", "ftp://model", ""])
def test_a_model_url_without_http_says_what_is_expected(url: str) -> None:
    with pytest.raises(ValidationError, match="http\\(s\\) base URL"):
        ServiceSettings(model_url=url)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_batch_rows", 0), ("model_timeout", 0), ("log_flush_interval", -1)],
)
def test_out_of_range_knobs_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        ServiceSettings(**{field: value})


def test_durable_is_the_default_and_async_is_a_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().log_durability == "durable"
    monkeypatch.setenv("BRIDGEAI_LOG_DURABILITY", "async")
    assert ServiceSettings().log_durability == "async"
    monkeypatch.setenv("BRIDGEAI_LOG_DURABILITY", "sometimes")
    with pytest.raises(ValidationError, match="log_durability"):
        ServiceSettings()
