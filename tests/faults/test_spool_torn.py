"""A torn last record: the service dies in the middle of appending to its spool.

The fault is made exact: the service is SIGKILLed under load, then the newest segment it left
gets what a death mid-``write`` leaves, a record cut in half (a request that was never
answered: its ``fsync`` never returned). What must hold: the replay keeps every complete
record, reports the torn tail, and no acknowledged row is lost.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.faults.support import Load, logged_keys, metric, missing_answers


def test_a_torn_tail_is_reported_and_every_acknowledged_row_replayed(
    fault_model_server, service_factory, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'predictions.db'}"
    spool = tmp_path / "spool"
    env = {"BRIDGEAI_LOG_FLUSH_INTERVAL": "30"}  # the writer never runs before the kill
    first = service_factory(fault_model_server.url, database, spool, **env)
    first.start()
    with Load(first.url, concurrency=16) as load:
        load.wait_for_answers(300)
        first.kill()
    answered = load.ok()

    # The newest segment with records (one just created by the committer may still be empty).
    segments = [p for p in sorted(spool.glob("*/*.jsonl")) if p.stat().st_size]
    assert segments, "the killed service left no spool segment"
    newest = segments[-1]
    last = json.loads(newest.read_bytes().splitlines()[-1])
    torn = json.dumps({**last, "request_id": "f" * 32, "batch_index": 0}).encode()
    with open(newest, "ab") as handle:
        handle.write(torn[: len(torn) // 2])  # cut mid-record, no newline

    second = service_factory(fault_model_server.url, database, spool)
    second.start()  # ready only after the replay
    assert not missing_answers(answered, database)
    keys = logged_keys(database)
    assert len(keys) == len(set(keys))
    assert ("f" * 32, 0) not in set(keys)  # the torn record was never answered: not logged
    assert metric(second.url, "bridgeai_prediction_log_rows_torn_total") == 1
    log = second.log_file.read_text()
    assert "1 torn record(s) at its tail skipped" in log and newest.name in log
