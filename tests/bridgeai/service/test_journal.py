"""The journal's group commit: one fsync for every row that arrived together, none answered
before its rows are on disk."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bridgeai.service import spool as spool_module
from bridgeai.service.errors import LogUnavailable
from bridgeai.service.journal import Journal
from bridgeai.service.spool import Spool


def _row(i: int) -> dict[str, object]:
    return {"request_id": f"g{i}", "batch_index": 0}


@pytest.fixture
def journal(tmp_path: Path):
    journal = Journal(Spool.create(tmp_path), durable=True)
    journal.start()
    try:
        yield journal
    finally:
        journal.stop()


def test_concurrent_commits_share_fsyncs_and_return_only_once_on_disk(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = []
    real_sync = spool_module._datasync
    monkeypatch.setattr(spool_module, "_datasync", lambda fd: (fsyncs.append(fd), real_sync(fd))[1])

    async def one(i: int) -> int:
        await journal.commit([_row(i)])
        # Answered: the row must already be in a segment file on disk.
        segment = journal._open.path if journal._open else journal.batches()[-1].path
        return segment.read_bytes().count(f'"g{i}"'.encode())

    async def main() -> list[int]:
        return await asyncio.gather(*(one(i) for i in range(300)))

    assert asyncio.run(main()) == [1] * 300
    assert journal.disk_depth == 300
    # Group commit: far fewer fsyncs than requests.
    assert journal.commits < 30 and len(fsyncs) == journal.commits


def test_a_commit_that_cannot_be_written_is_refused_and_the_next_succeeds(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_module, "_datasync", full)
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(LogUnavailable, match="No space left on device") as caught:
        journal.commit_sync([_row(1)])
    assert caught.value.status_code == 503 and "BRIDGEAI_SPOOL_DIR" in caught.value.message
    assert journal.error == "No space left on device" and journal.disk_depth == 0
    assert not journal.probe()
    monkeypatch.setattr(os, "fsync", real_fsync)
    monkeypatch.undo()
    assert journal.probe() and journal.error is None
    journal.commit_sync([_row(2)])
    journal.seal()
    (batch,) = journal.batches()
    assert [r["request_id"] for r in journal.rows_of(batch)] == ["g2"]  # g1 left no trace
