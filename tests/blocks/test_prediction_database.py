"""The PredictionDatabase block: a URL without its password, the password as a secret, and the
one URL the library connects with; against a real PostgreSQL, drift's reader uses exactly it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from blocks import BlockNotFoundError, PredictionDatabase, load_block


def test_the_password_is_a_separate_secret_and_rejoined_only_for_the_library() -> None:
    block = PredictionDatabase.from_url("postgresql://bridgeai:s3cr%40t@db.example:5432/logs")
    assert block.url == "postgresql://bridgeai@db.example:5432/logs"
    assert block.password is not None and block.password.get_secret_value() == "s3cr@t"
    assert block.database_url() == "postgresql://bridgeai:s3cr%40t@db.example:5432/logs"
    assert "s3cr" not in block.redacted() and "***" in block.redacted()
    assert "s3cr" not in repr(block)


def test_a_url_carrying_a_password_is_refused_with_the_way_out() -> None:
    with pytest.raises(ValidationError, match="must not carry the password"):
        PredictionDatabase(url="postgresql://u:hunter2@db/x")
    with pytest.raises(ValidationError, match="postgresql://user@host"):
        PredictionDatabase(url="not a url")


def test_without_a_password_the_url_is_used_as_it_is() -> None:
    block = PredictionDatabase(url="postgresql://bridgeai@postgres:5432/predictions")
    assert block.database_url() == "postgresql://bridgeai@postgres:5432/predictions"


def test_the_default_is_the_local_services_database(
    monkeypatch: pytest.MonkeyPatch, bridgeai_home
) -> None:
    monkeypatch.delenv("BRIDGEAI_DATABASE_URL", raising=False)
    assert PredictionDatabase().database_url() == (
        f"sqlite:///{bridgeai_home / 'service' / 'predictions.db'}"
    )
    monkeypatch.setenv("BRIDGEAI_DATABASE_URL", "postgresql://a:b@h/x")
    assert PredictionDatabase().database_url() == "postgresql://a:b@h/x"


@pytest.mark.usefixtures("prefect_harness")
def test_saved_with_the_password_masked_and_strict_loading_names_it() -> None:
    from prefect.client.orchestration import get_client

    PredictionDatabase(
        url="postgresql://bridgeai@postgres:5432/predictions", password=SecretStr("pg-secret-1")
    ).save("pdb-roundtrip", overwrite=True)
    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name(
            name="pdb-roundtrip",
            block_type_slug="bridgeai-prediction-database",
            include_secrets=False,
        )
    assert "pg-secret-1" not in json.dumps(doc.data)
    loaded = load_block(PredictionDatabase, "pdb-roundtrip")
    assert loaded.database_url().endswith(":pg-secret-1@postgres:5432/predictions")
    with pytest.raises(BlockNotFoundError, match=r"PredictionDatabase block \(type "):
        load_block(PredictionDatabase, "never-saved-pdb")


@pytest.mark.integration
def test_the_block_reads_a_real_prediction_log_with_pgpassword(
    pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import make_url

    from bridgeai.service import prediction_log

    engine = prediction_log.create_log_engine(pg_database_url)
    prediction_log.migrate(engine)
    engine.dispose()
    full = make_url(pg_database_url)
    bare = PredictionDatabase(
        url=full._replace(password=None).render_as_string(hide_password=False)
    )
    now = datetime.now(UTC)
    monkeypatch.setenv("PGPASSWORD", "wrong-password")
    with pytest.raises(prediction_log.PredictionLogError):
        prediction_log.read_window(bare.database_url(), now - timedelta(hours=1), now)
    monkeypatch.setenv("PGPASSWORD", str(full.password))
    frame = prediction_log.read_window(bare.database_url(), now - timedelta(hours=1), now)
    assert frame.height == 0
