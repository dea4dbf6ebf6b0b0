"""The model server SIGKILLed under load: the service answers 503 naming the model server while
it is down and recovers by itself, without a restart, once it is back."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import httpx

from tests.faults.support import Load, missing_answers
from tests.support.service import logged, wait_for


def test_model_server_sigkill_503_naming_it_then_recovery_without_restart(
    killable_model_server, service_factory, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'predictions.db'}"
    model = killable_model_server
    service = service_factory(model.url, database, tmp_path / "spool", BRIDGEAI_MODEL_TIMEOUT="2")
    service.start()
    service_pid = service.process.pid
    with Load(service.url, concurrency=16) as load:
        load.wait_for_answers(200)
        os.killpg(model.pid, signal.SIGKILL)  # the server and anything it started
        model.process.wait(30)
        load.wait_for_answers(100, status=503)
        down = [a for a in load.answers if a.status == 503]
        assert all(model.url in a.message and "model server" in a.message for a in down)
        ready = httpx.get(f"{service.url}/ready", timeout=30)
        assert ready.status_code == 503 and ready.json()["model"]["ok"] is False
        assert ready.json()["database"]["ok"] and ready.json()["spool"]["ok"]

        model.start()  # same port; the service is not touched
        recovered = len(load.ok())
        load.wait_for_answers(recovered + 200)
    assert service.process.pid == service_pid and service.process.poll() is None
    statuses = Counter(a.status for a in load.answers)
    assert set(statuses) == {200, 503}, statuses  # nothing else: no 500, no hang
    assert load.errors == 0
    assert httpx.get(f"{service.url}/ready", timeout=30).status_code == 200
    wait_for(lambda: not missing_answers(load.ok(), database), timeout=60)
    by_id = {r["request_id"]: r["status"] for r in logged(database)}
    assert {by_id.get(a.request_id) for a in down} == {503}  # failed requests logged as such
