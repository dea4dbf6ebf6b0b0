"""The durable spool: rows survive reopening, torn tails are skipped, one owner at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridgeai.service.spool import Spool, SpoolLockedError


def _rows(n: int, prefix: str = "r") -> list[dict[str, object]]:
    now = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    return [{"request_id": f"{prefix}{i}", "batch_index": 0, "created_at": now} for i in range(n)]


def test_rows_survive_a_reopen_and_drain_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append(_rows(3, "a"))
    list(spool.drain())  # rotates the active segment
    spool.append(_rows(2, "b"))
    assert spool.depth == 5
    spool.close()

    again = Spool(tmp_path)
    again.open()
    assert again.depth == 5
    segments = list(again.drain())
    assert [[r["request_id"] for r in rows] for _, rows in segments] == [
        ["a0", "a1", "a2"],
        ["b0", "b1"],
    ]
    assert segments[0][1][0]["created_at"] == _rows(1)[0]["created_at"]
    for segment, _ in segments:
        again.done(segment)
    assert again.depth == 0 and not list(tmp_path.glob("*.jsonl"))
    again.close()


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append(_rows(2))
    spool.close()
    (segment,) = tmp_path.glob("*.jsonl")
    with open(segment, "ab") as handle:
        handle.write(b'{"request_id": "torn", "batch_')  # a crash mid-write
    again = Spool(tmp_path)
    again.open()
    ((_, rows),) = list(again.drain())
    assert [r["request_id"] for r in rows] == ["r0", "r1"]
    again.close()


def test_segments_rotate_at_the_size_limit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200)
    spool.open()
    for _ in range(4):
        spool.append(_rows(2))
    assert len(list(tmp_path.glob("*.jsonl"))) >= 2
    assert sum(len(rows) for _, rows in spool.drain()) == 8
    spool.close()


def test_a_second_owner_is_refused_with_the_setting_to_change(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.open()
    with pytest.raises(SpoolLockedError, match="BRIDGEAI_SPOOL_DIR"):
        Spool(tmp_path).open()
    first.close()
    second = Spool(tmp_path)
    second.open()  # free again once the owner closed it
    second.close()
