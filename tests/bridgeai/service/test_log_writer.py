"""The batched, durable prediction-log writer against SQLite and a real PostgreSQL cluster."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridgeai import schema
from bridgeai.service.log_writer import LogWriter
from tests.support.service import count_rows, logged, wait_for


def _rows(n: int, prefix: str) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [
        {
            **{k: schema.normalize_category(v) if isinstance(v, str) else v
               for k, v in schema.EXAMPLE_HOUSE.items()},
            "prediction": 100.0 + i,
            "model_name": "house_price_prediction_prod",
            "model_version": "1",
            "request_id": f"{prefix}-{i}",
            "batch_index": 0,
            "latency_ms": 1.5,
            "status": 200,
            "created_at": now,
        }
        for i in range(n)
    ]  # fmt: skip


def _writer(url: str, spool_dir: Path, **kwargs: object) -> LogWriter:
    options: dict = {"flush_interval": 0.05, "retry_interval": 0.2, "connect_timeout": 2.0}
    options.update(kwargs)
    return LogWriter(url, spool_dir, **options)


def _segments(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.jsonl"))


@pytest.fixture(params=["durable", "async"])
def durability(request: pytest.FixtureRequest) -> str:
    return request.param


def test_rows_are_written_in_batches_off_the_caller(tmp_path: Path, durability: str) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer = _writer(url, tmp_path / "spool", batch_size=100, durability=durability)
    writer.start()
    try:
        writer.submit(_rows(250, "a"))
        wait_for(lambda: count_rows(url) == 250)
        wait_for(lambda: writer.spool_depth == 0)
        assert writer.rows_written == 250
    finally:
        writer.stop()
    assert {r["request_id"] for r in logged(url)} == {f"a-{i}" for i in range(250)}


def test_rows_submitted_one_by_one_are_written_in_full_batches(
    tmp_path: Path, durability: str
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    # No timed flushes (an hour): what triggers a write is a full batch, or the final stop.
    writer = _writer(
        url, tmp_path / "spool", flush_interval=3600, batch_size=30, durability=durability
    )
    writer.start()
    for i in range(100):
        writer.submit(_rows(1, f"s{i}-"))
    wait_for(lambda: count_rows(url) >= 30)  # woken by the first full batch, not the clock
    writer.stop()
    assert count_rows(url) == 100 == writer.rows_written
    # Multi-row inserts (the first full batch, then what accumulated while it was written),
    # not one insert per row.
    assert writer.batches_written <= 20


def test_a_clean_stop_flushes_everything_still_queued(tmp_path: Path, durability: str) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer = _writer(
        url, tmp_path / "spool", flush_interval=3600, batch_size=10_000, durability=durability
    )
    writer.start()
    writer.submit(_rows(40, "q"))
    assert count_rows(url) == 0  # not in the database yet
    # durable: already on disk before submit returned; async: only in memory.
    assert len(_segments(tmp_path / "spool")) == (1 if durability == "durable" else 0)
    writer.stop()
    assert count_rows(url) == 40
    assert list((tmp_path / "spool").iterdir()) == []  # its directory removed once empty


@pytest.mark.integration
def test_database_outage_spools_to_disk_and_replays_on_return(
    postgres_cluster, pg_database_url: str, tmp_path: Path, durability: str
) -> None:
    writer = _writer(pg_database_url, tmp_path / "spool", durability=durability)
    writer.start()
    try:
        writer.submit(_rows(50, "before"))
        wait_for(lambda: count_rows(pg_database_url) == 50)
        postgres_cluster.stop()
        try:
            writer.submit(_rows(70, "during"))
            # durable: on disk before submit returns; async: once the write fails.
            wait_for(lambda: not writer.db_up and writer.spool_depth == 70)
            assert _segments(tmp_path / "spool")  # on disk, fsync'd
        finally:
            postgres_cluster.start()
        writer.submit(_rows(30, "after"))
        wait_for(lambda: count_rows(pg_database_url) == 150, timeout=60)
        wait_for(lambda: writer.spool_depth == 0)
    finally:
        writer.stop()
    ids = {r["request_id"] for r in logged(pg_database_url)}
    assert {f"during-{i}" for i in range(70)} <= ids and len(ids) == 150


@pytest.mark.integration
def test_starting_while_the_database_is_down_creates_the_table_when_it_returns(
    postgres_cluster, pg_database_url: str, tmp_path: Path
) -> None:
    postgres_cluster.stop()
    try:
        writer = _writer(pg_database_url, tmp_path / "spool")
        writer.start()  # must not fail: predictions go on, rows wait on disk
        writer.submit(_rows(20, "early"))
        wait_for(lambda: writer.spool_depth == 20)
    finally:
        postgres_cluster.start()
    try:
        wait_for(lambda: count_rows(pg_database_url) == 20, timeout=60)
    finally:
        writer.stop()


@pytest.mark.integration
def test_rows_spooled_at_shutdown_are_replayed_by_the_next_process(
    postgres_cluster, pg_database_url: str, tmp_path: Path, durability: str
) -> None:
    spool_dir = tmp_path / "spool"
    postgres_cluster.stop()
    try:
        writer = _writer(pg_database_url, spool_dir, flush_interval=3600, durability=durability)
        writer.start()
        writer.submit(_rows(15, "left"))
        writer.stop()  # database down: the clean stop must leave them on disk
    finally:
        postgres_cluster.start()
    assert len(_segments(spool_dir)) == 1
    next_writer = _writer(pg_database_url, spool_dir, durability=durability)
    next_writer.start()
    try:
        assert next_writer.rows_adopted == 15
        wait_for(lambda: count_rows(pg_database_url) == 15, timeout=60)
        wait_for(lambda: next_writer.spool_depth == 0)
        assert _segments(spool_dir) == []
    finally:
        next_writer.stop()


@pytest.mark.integration
def test_a_row_the_database_rejects_is_set_aside_and_the_rest_written(
    pg_database_url: str, tmp_path: Path, durability: str
) -> None:
    rows = _rows(25, "d")  # a batch large enough to take the COPY path
    rows[2]["furnishingstatus"] = "x" * 100  # longer than the column: a data error
    writer = _writer(pg_database_url, tmp_path / "spool", durability=durability)
    writer.start()
    try:
        writer.submit(rows)
        wait_for(lambda: writer.rows_rejected == 1)
        wait_for(lambda: count_rows(pg_database_url) == 24)
    finally:
        writer.stop()
    (line,) = (tmp_path / "spool" / "rejected.jsonl").read_text().splitlines()
    kept = json.loads(line)
    assert kept["row"]["request_id"] == "d-2" and "StringDataRightTruncation" in kept["error"]
