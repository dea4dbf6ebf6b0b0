"""The prediction service SIGKILLed under concurrent load, on PostgreSQL and on SQLite.

What must hold: every request answered 200 (single and batch) is in ``prediction_logs`` after
a restart, exactly once, whatever the writer had or had not flushed when the process died.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.faults.support import Load, logged_keys, metric, missing_answers


def test_sigkill_under_load_loses_no_answered_request(
    fault_model_server, log_database: str, service_factory, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    # Flushing once a second (a setting users pick to cut database load) leaves up to a
    # second of answered rows outside the database when the process dies.
    env = {"BRIDGEAI_LOG_FLUSH_INTERVAL": "1"}
    first = service_factory(fault_model_server.url, log_database, spool, **env)
    first.start()
    with Load(first.url, concurrency=32) as load:
        load.wait_for_answers(400)
        first.kill()
    answered = load.ok()
    assert len(answered) >= 400 and load.errors > 0  # killed mid-load: clients saw it die

    second = service_factory(fault_model_server.url, log_database, spool, **env)
    second.start()  # /ready: only once the dead process's spool is replayed

    missing = missing_answers(answered, log_database)
    assert not missing, (
        f"{len(missing)} of {len(answered)} requests answered 200 are not in prediction_logs "
        f"after SIGKILL and restart (e.g. {missing[0].request_id})"
    )
    keys = logged_keys(log_database)
    duplicates = [key for key, n in Counter(keys).items() if n > 1]
    assert not duplicates, f"{len(duplicates)} (request_id, batch_index) logged twice"
    # The kill really caught rows outside the database: the new process replayed them.
    assert metric(second.url, "bridgeai_prediction_log_rows_adopted_total") > 0
    assert not [p for p in spool.iterdir() if p.is_dir() and not p.name.startswith(".")][1:]
