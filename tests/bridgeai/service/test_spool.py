"""The write-ahead spool: one directory per process, adoption of dead ones, torn records."""

from __future__ import annotations

import multiprocessing
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from bridgeai.service.spool import Spool, SpoolError, SpoolLockedError, adopt_orphans


def _rows(n: int, prefix: str = "r") -> list[dict[str, object]]:
    now = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    return [{"request_id": f"{prefix}{i}", "batch_index": 0, "created_at": now} for i in range(n)]


def _data(rows: list[dict[str, object]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def _own_dirs(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]


def test_each_process_gets_its_own_locked_directory(tmp_path: Path) -> None:
    first, second = Spool.create(tmp_path), Spool.create(tmp_path)
    assert first.directory != second.directory
    assert first.directory.parent == second.directory.parent == tmp_path
    assert str(os.getpid()) in first.directory.name
    with pytest.raises(SpoolLockedError, match="in use by another live service process"):
        Spool(first.directory).lock()
    assert adopt_orphans(tmp_path) == []  # both owners are alive
    first.release()
    second.release()
    assert _own_dirs(tmp_path) == []  # empty directories are removed on release


def test_segments_round_trip_with_their_timestamps(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    segment = spool.new_segment()
    segment.append(_data(_rows(3, "a")), 3)
    segment.close()
    (path,) = spool.segments()
    read = spool.read(path)
    assert [r["request_id"] for r in read.rows] == ["a0", "a1", "a2"] and read.torn == []
    assert read.rows[0]["created_at"] == _rows(1)[0]["created_at"]
    spool.remove(path)
    assert spool.segments() == []
    spool.release()


def _die_holding_a_spool(root: str, ready) -> None:  # pragma: no cover - child process
    spool = Spool.create(Path(root))
    segment = spool.new_segment()
    segment.append(_data(_rows(5, "dead")), 5)
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_spool_of_a_killed_process_is_adopted_once(tmp_path: Path) -> None:
    ready = multiprocessing.get_context("fork").Event()
    child = multiprocessing.get_context("fork").Process(
        target=_die_holding_a_spool, args=(str(tmp_path), ready)
    )
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL and ready.is_set()

    mine = Spool.create(tmp_path)
    (orphan,) = adopt_orphans(tmp_path, own=mine)
    assert str(child.pid) in orphan.directory.name
    assert [r["request_id"] for r in orphan.read(orphan.segments()[0]).rows] == [
        f"dead{i}" for i in range(5)
    ]
    assert adopt_orphans(tmp_path, own=mine) == []  # we hold it now: nobody else adopts it
    for path in orphan.segments():
        orphan.remove(path)
    assert orphan.release()
    assert _own_dirs(tmp_path) == [mine.directory]
    mine.release()


def test_a_directory_being_created_is_never_adopted(tmp_path: Path) -> None:
    (tmp_path / ".claiming-host-1-abc").mkdir()
    (tmp_path / ".claiming-host-1-abc" / ".lock").touch()
    assert adopt_orphans(tmp_path) == []


def test_segments_left_in_the_root_by_the_old_layout_are_adopted(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000001-1234.jsonl").write_bytes(_data(_rows(2, "old")))
    (orphan,) = adopt_orphans(tmp_path)
    assert orphan.directory == tmp_path and len(orphan.segments()) == 1
    orphan.remove(orphan.segments()[0])
    assert not orphan.release()  # the root itself is never removed
    assert tmp_path.is_dir()


def test_a_torn_last_record_is_reported_and_every_whole_record_kept(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    segment = spool.new_segment()
    segment.append(_data(_rows(2)), 2)
    segment.close()
    (path,) = spool.segments()
    with open(path, "ab") as handle:
        handle.write(b'{"request_id": "torn", "batch_')  # a crash mid-write
    read = spool.read(path)
    assert [r["request_id"] for r in read.rows] == ["r0", "r1"]
    assert read.torn == [3] and read.torn_tail_only
    spool.release(remove_if_empty=False)


def _write_past_a_file_size_limit(root: str, queue) -> None:  # pragma: no cover - child
    import resource

    spool = Spool.create(Path(root))
    segment = spool.new_segment()
    segment.append(_data(_rows(2)), 2)
    good = segment.size
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    resource.setrlimit(resource.RLIMIT_FSIZE, (good + 100, resource.RLIM_INFINITY))
    try:
        segment.append(_data(_rows(50, "lost")), 50)  # a partial write, then EFBIG
        queue.put("no error")
    except OSError as exc:
        queue.put((exc.errno, segment.path.stat().st_size, good, segment.count))


def test_a_write_that_fails_part_way_is_cut_back_to_the_last_whole_record(
    tmp_path: Path,
) -> None:
    import errno

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_write_past_a_file_size_limit, args=(str(tmp_path), queue))
    child.start()
    result = queue.get(timeout=30)
    child.join(30)
    assert result != "no error"
    code, size, good, count = result
    assert code == errno.EFBIG and size == good and count == 2
    (orphan,) = adopt_orphans(tmp_path)
    assert [r["request_id"] for r in orphan.read(orphan.segments()[0]).rows] == ["r0", "r1"]


def test_an_unwritable_root_is_a_spool_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match=str(blocker)):
        Spool.create(blocker / "spool")
