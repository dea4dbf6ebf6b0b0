"""The spool's disk fails: full (a 2 MB tmpfs filled up) or read-only (the tmpfs remounted).

What must hold: the service fails closed, 503 with a message naming the spool and the reason
and ``/ready`` false, never a 200 it could not log; and it recovers by itself when the disk
does, without a restart. Every request it answered 200 is in the prediction log.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx

from tests.faults.support import HOUSE, Load, logged_keys, missing_answers
from tests.support.service import wait_for


def _ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/ready", timeout=30)


def test_a_full_then_read_only_spool_fails_closed_and_recovers(
    fault_model_server, small_tmpfs, service_factory, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'predictions.db'}"
    spool = small_tmpfs.path / "spool"
    service = service_factory(fault_model_server.url, database, spool)
    service.start()
    answered = []
    with httpx.Client(base_url=service.url, timeout=30) as http:
        ok = http.post("/predict", json=HOUSE)
        assert ok.status_code == 200
        answered.append(ok.json()["request_id"])
        wait_for(lambda: _ready(service.url).json()["spool_depth"] == 0)  # nothing on disk

        ballast = small_tmpfs.fill()
        full = http.post("/predict", json=HOUSE)
        assert full.status_code == 503, full.text
        message = full.json()["message"]
        assert "No space left on device" in message and str(spool) in message
        assert "BRIDGEAI_SPOOL_DIR" in message
        batch = http.post("/predict/batch", json={"houses": [HOUSE, HOUSE]})
        assert batch.status_code == 503
        with Load(service.url, concurrency=8) as load:  # under load too: no 200 slips out
            load.wait_for_answers(50, status=503)
        assert Counter(a.status for a in load.answers) == {503: len(load.answers)}
        ready = _ready(service.url)
        assert ready.status_code == 503 and ready.json()["spool"]["ok"] is False
        assert "No space left on device" in ready.json()["spool"]["detail"]
        assert ready.json()["database"]["ok"] is True  # the database was never the problem

        ballast.unlink()  # space returns: no restart
        wait_for(lambda: _ready(service.url).status_code == 200)
        again = http.post("/predict", json=HOUSE)
        assert again.status_code == 200
        answered.append(again.json()["request_id"])

        wait_for(lambda: _ready(service.url).json()["spool_depth"] == 0)  # no file open
        small_tmpfs.remount("ro")
        try:
            refused = http.post("/predict", json=HOUSE)
            assert refused.status_code == 503
            assert "Read-only file system" in refused.json()["message"]
            assert _ready(service.url).json()["spool"]["ok"] is False
        finally:
            small_tmpfs.remount("rw")
        wait_for(lambda: _ready(service.url).status_code == 200)
        with Load(service.url, concurrency=8) as load:
            load.wait_for_answers(100)
        assert Counter(a.status for a in load.answers) == {200: len(load.answers)}
    wait_for(lambda: not missing_answers(load.ok(), database), timeout=60)
    keys = {rid for rid, _ in logged_keys(database)}
    assert set(answered) <= keys
    # A refused request left no row claiming it was answered.
    assert full.json()["request_id"] not in keys and refused.json()["request_id"] not in keys
