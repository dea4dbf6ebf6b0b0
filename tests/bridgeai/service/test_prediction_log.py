"""The prediction log's table, migrations and read_window contract (SQLite and real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bridgeai import schema
from bridgeai.service import prediction_log

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _row(request_id: str, created_at: datetime, *, status: int = 200, index: int = 0) -> dict:
    house = {
        name: (schema.normalize_category(v) if isinstance(v, str) else v)
        for name, v in schema.EXAMPLE_HOUSE.items()
    }
    return {
        **house,
        "prediction": 123_456.0 if status == 200 else None,
        "model_name": "house_price_prediction_prod",
        "model_version": "3",
        "request_id": request_id,
        "batch_index": index,
        "latency_ms": 4.2,
        "status": status,
        "created_at": created_at,
    }


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return request.getfixturevalue("pg_database_url")


def _migrated(url: str) -> sa.Engine:
    engine = prediction_log.create_log_engine(url)
    prediction_log.migrate(engine)
    return engine


def test_migrations_build_exactly_the_declared_table_and_are_idempotent(database_url: str) -> None:
    engine = _migrated(database_url)
    prediction_log.migrate(engine)  # a second start-up is a no-op
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "version_table": prediction_log.VERSION_TABLE},
        )
        assert compare_metadata(context, prediction_log.metadata) == []
        columns = {c["name"] for c in sa.inspect(connection).get_columns("prediction_logs")}
    engine.dispose()
    assert set(schema.FEATURES) <= columns
    assert {"prediction", "model_name", "model_version", "request_id", "latency_ms"} <= columns
    assert {"status", "created_at"} <= columns


def test_read_window_returns_successful_rows_in_half_open_window(database_url: str) -> None:
    engine = _migrated(database_url)
    rows = [
        _row("before", T0 - timedelta(microseconds=1)),
        _row("at-start", T0),
        _row("failed", T0 + timedelta(minutes=1), status=503),
        _row("batch", T0 + timedelta(minutes=2), index=0),
        _row("batch", T0 + timedelta(minutes=2), index=1),
        _row("at-end", T0 + timedelta(hours=1)),
    ]
    with engine.begin() as connection:
        prediction_log.insert_rows(connection, rows)
        prediction_log.insert_rows(connection, rows[:2])  # a replayed spool: ignored
    engine.dispose()

    frame = prediction_log.read_window(database_url, T0, T0 + timedelta(hours=1))

    assert frame["request_id"].to_list() == ["at-start", "batch", "batch"]
    assert frame["batch_index"].to_list() == [0, 0, 1]
    assert frame.schema["created_at"] == pl.Datetime("us", "UTC")
    assert frame["created_at"][0] == T0
    assert frame["mainroad"][0] == "yes"
    assert frame["area"].dtype == pl.Float64 and frame["bedrooms"].dtype == pl.Int64
    assert set(schema.FEATURES) <= set(frame.columns)


def test_read_window_takes_naive_bounds_as_utc_and_other_zones_converted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = _migrated(url)
    with engine.begin() as connection:
        prediction_log.insert_rows(connection, [_row("r", T0)])
    engine.dispose()
    naive = T0.replace(tzinfo=None)
    assert prediction_log.read_window(url, naive, naive + timedelta(seconds=1)).height == 1
    plus_two = timezone(timedelta(hours=2))
    local_start = T0.astimezone(plus_two)
    assert prediction_log.read_window(url, local_start, local_start + timedelta(1)).height == 1
    assert (
        prediction_log.read_window(url, local_start.replace(tzinfo=UTC), T0 + timedelta(1)).height
        == 0
    )


def test_empty_window_keeps_columns_and_types(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    _migrated(url).dispose()
    frame = prediction_log.read_window(url, T0, T0 + timedelta(days=1))
    assert frame.height == 0
    assert frame.columns == list(prediction_log.ROW_COLUMNS)
    assert frame.schema["prediction"] == pl.Float64


def test_read_window_without_table_says_to_start_the_service(tmp_path: Path) -> None:
    with pytest.raises(prediction_log.PredictionLogError, match="no prediction_logs table"):
        prediction_log.read_window(f"sqlite:///{tmp_path / 'empty.db'}", T0, T0)


def test_unreachable_database_error_hides_the_password() -> None:
    from bridgeai.procs import free_port

    url = f"postgresql://alice:s3cret-pw@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(prediction_log.PredictionLogError) as caught:
        prediction_log.read_window(url, T0, T0 + timedelta(1))
    assert "s3cret-pw" not in str(caught.value)
    assert "alice:***@127.0.0.1" in str(caught.value)


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db:5432/x", "postgresql+psycopg"),
        ("postgres://u:p@db/x", "postgresql+psycopg"),
        ("postgresql+psycopg://u:p@db/x", "postgresql+psycopg"),
        ("sqlite:///tmp/x.db", "sqlite"),
    ],
)
def test_standard_urls_get_the_psycopg3_driver(given: str, driver: str) -> None:
    assert prediction_log.sqlalchemy_url(given).drivername == driver


@pytest.mark.parametrize("bad", ["mysql://u:p@h/db", "not a url"])
def test_unsupported_urls_say_what_to_use(bad: str) -> None:
    with pytest.raises(ValueError, match="postgresql://user:password@host:port/database"):
        prediction_log.sqlalchemy_url(bad)


def test_default_database_lives_under_bridgeai_home(bridgeai_home: Path) -> None:
    url = prediction_log.default_database_url()
    assert url == f"sqlite:///{bridgeai_home / 'service' / 'predictions.db'}"


def test_large_batches_round_trip_and_replays_are_ignored(database_url: str) -> None:
    # >= COPY_MIN_ROWS: PostgreSQL takes the COPY path; replaying the batch adds nothing.
    rows = [_row(f"copy-{i}", T0 + timedelta(seconds=i)) for i in range(30)]
    rows[3] = _row("copy-3", T0 + timedelta(seconds=3), status=503)
    assert len(rows) >= prediction_log.COPY_MIN_ROWS
    engine = _migrated(database_url)
    with engine.begin() as connection:
        prediction_log.insert_rows(connection, rows)
    with engine.begin() as connection:
        prediction_log.insert_rows(connection, rows)
        prediction_log.insert_rows(connection, rows[:25])  # twice in one transaction
    with engine.connect() as connection:
        stored = (
            connection.execute(
                sa.select(prediction_log.prediction_logs).order_by(
                    prediction_log.prediction_logs.c.id
                )
            )
            .mappings()
            .all()
        )
    engine.dispose()
    assert [r["request_id"] for r in stored] == [f"copy-{i}" for i in range(30)]
    assert stored[3]["prediction"] is None and stored[3]["status"] == 503
    assert stored[7]["created_at"] == T0 + timedelta(seconds=7)
    assert stored[0]["furnishingstatus"] == "furnished" and stored[0]["area"] == 1200.0
