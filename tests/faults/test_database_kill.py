"""PostgreSQL SIGKILLed under load: the service keeps answering, and every row arrives once the
database is back (PostgreSQL's own crash recovery included)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.faults.support import Load, logged_keys, missing_answers
from tests.support.service import wait_for


def _kill_postmaster(cluster) -> None:
    pid = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    # Its backends notice the postmaster's death and exit; wait until the port is closed.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)


@pytest.mark.parametrize("durability", ["durable", "async"])
def test_postgres_sigkill_under_load_service_answers_and_rows_arrive(
    fault_model_server, own_postgres, service_factory, tmp_path: Path, durability: str
) -> None:
    database = own_postgres.create_database()
    service = service_factory(
        fault_model_server.url, database, tmp_path / "spool", BRIDGEAI_LOG_DURABILITY=durability
    )
    service.start()
    with Load(service.url, concurrency=16) as load:
        load.wait_for_answers(200)
        _kill_postmaster(own_postgres)
        killed_at = len(load.answers)
        load.wait_for_answers(killed_at + 300)  # still answering with the database gone
        ready = httpx.get(f"{service.url}/ready", timeout=30).json()
        assert ready["database"]["ok"] is False and ready["spool_depth"] > 0
        own_postgres.start()  # crash recovery, then the writer replays the spool
        load.wait_for_answers(len(load.ok()) + 100)
    answered = load.ok()
    assert Counter(a.status for a in load.answers) == {200: len(load.answers)}
    assert load.errors == 0

    def all_there() -> bool:
        return not missing_answers(answered, database)

    wait_for(all_there, timeout=120, interval=0.5)
    keys = logged_keys(database)
    assert len(keys) == len(set(keys))
    assert httpx.get(f"{service.url}/ready", timeout=30).status_code == 200
