"""The batched, durable prediction-log writer against SQLite and a real PostgreSQL cluster."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridgeai import schema
from bridgeai.service.log_writer import LogWriter
from bridgeai.service.spool import Spool
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
    return LogWriter(url, Spool(spool_dir), **options)


def test_rows_are_written_in_batches_off_the_caller(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer = _writer(url, tmp_path / "spool", batch_size=100)
    writer.start()
    try:
        writer.submit(_rows(250, "a"))
        wait_for(lambda: count_rows(url) == 250)
        assert writer.rows_written == 250 and writer.spool.depth == 0
    finally:
        writer.stop()
    assert {r["request_id"] for r in logged(url)} == {f"a-{i}" for i in range(250)}


def test_rows_submitted_one_by_one_are_written_in_full_batches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    # No timed flushes (an hour): what triggers a write is the queue reaching batch_size.
    writer = _writer(url, tmp_path / "spool", flush_interval=3600, batch_size=30)
    for i in range(100):  # queued before the thread starts, so no write can interleave
        writer.submit(_rows(1, f"s{i}-"))
    writer.start()
    try:
        wait_for(lambda: count_rows(url) == 100)
        # One wake-up, four multi-row inserts (30 + 30 + 30 + 10), not one insert per row.
        assert (writer.rows_written, writer.batches_written) == (100, 4)
    finally:
        writer.stop()
    assert writer.batches_written == 4


def test_a_clean_stop_flushes_everything_still_queued(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer = _writer(url, tmp_path / "spool", flush_interval=3600, batch_size=10_000)
    writer.start()
    writer.submit(_rows(40, "q"))
    assert count_rows(url) == 0  # only in memory so far
    writer.stop()
    assert count_rows(url) == 40


@pytest.mark.integration
def test_database_outage_spools_to_disk_and_replays_on_return(
    postgres_cluster, pg_database_url: str, tmp_path: Path
) -> None:
    writer = _writer(pg_database_url, tmp_path / "spool")
    writer.start()
    try:
        writer.submit(_rows(50, "before"))
        wait_for(lambda: count_rows(pg_database_url) == 50)
        postgres_cluster.stop()
        try:
            writer.submit(_rows(70, "during"))
            wait_for(lambda: writer.spool.depth == 70)
            assert not writer.db_up
            assert list((tmp_path / "spool").glob("*.jsonl"))  # on disk, fsync'd
        finally:
            postgres_cluster.start()
        writer.submit(_rows(30, "after"))
        wait_for(lambda: count_rows(pg_database_url) == 150, timeout=60)
        wait_for(lambda: writer.spool.depth == 0)
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
        wait_for(lambda: writer.spool.depth == 20)
    finally:
        postgres_cluster.start()
    try:
        wait_for(lambda: count_rows(pg_database_url) == 20, timeout=60)
    finally:
        writer.stop()


@pytest.mark.integration
def test_rows_spooled_at_shutdown_are_replayed_by_the_next_process(
    postgres_cluster, pg_database_url: str, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    postgres_cluster.stop()
    try:
        writer = _writer(pg_database_url, spool_dir, flush_interval=3600)
        writer.start()
        writer.submit(_rows(15, "left"))
        writer.stop()  # database down: the clean stop must put them on disk
    finally:
        postgres_cluster.start()
    assert Spool(spool_dir).directory.exists()
    next_writer = _writer(pg_database_url, spool_dir)
    next_writer.start()
    try:
        wait_for(lambda: count_rows(pg_database_url) == 15, timeout=60)
        wait_for(lambda: next_writer.spool.depth == 0)
    finally:
        next_writer.stop()


@pytest.mark.integration
def test_a_row_the_database_rejects_is_set_aside_and_the_rest_written(
    pg_database_url: str, tmp_path: Path
) -> None:
    rows = _rows(25, "d")  # a batch large enough to take the COPY path
    rows[2]["furnishingstatus"] = "x" * 100  # longer than the column: a data error
    writer = _writer(pg_database_url, tmp_path / "spool")
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
