"""``bridgeai serve``: configured from the environment, flushes on SIGTERM, leaks no secret."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bridgeai import procs, schema
from bridgeai.testing.postgres import PASSWORD
from tests.support.service import API_KEY, count_rows, logged

pytestmark = pytest.mark.integration


def _serve(port: int, env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bridgeai.cli", "serve", "--host", "127.0.0.1"]
    return procs.start_process([*command, "--port", str(port)], log_file=log_file, env=env)


def test_serve_runs_from_environment_settings_and_flushes_on_sigterm(
    model_server, pg_database_url: str, tmp_path: Path
) -> None:
    port = procs.free_port()
    log_file = tmp_path / "service.log"
    env = {
        "BRIDGEAI_MODEL_URL": model_server.url,
        "BRIDGEAI_DATABASE_URL": pg_database_url,
        "BRIDGEAI_API_KEY": API_KEY,
        "BRIDGEAI_LOG_FLUSH_INTERVAL": "3600",  # rows stay queued until shutdown
        "BRIDGEAI_LOG_LEVEL": "debug",
    }
    process = _serve(port, env, log_file)
    try:
        procs.wait_until(
            lambda: procs.http_ok(f"http://127.0.0.1:{port}/ready"),
            timeout=120,
            service="bridgeai serve",
            log_file=log_file,
            process=process,
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            ids = []
            for _ in range(7):
                response = http.post(
                    "/predict", json=schema.EXAMPLE_HOUSE, headers={"X-API-Key": API_KEY}
                )
                assert response.status_code == 200, response.text
                ids.append(response.json()["request_id"])
            assert http.post("/predict", json=schema.EXAMPLE_HOUSE).status_code == 401
        assert count_rows(pg_database_url) == 0
        os.kill(process.pid, signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        procs.stop_process(process.pid)
    assert sorted(r["request_id"] for r in logged(pg_database_url)) == sorted(ids)
    log = log_file.read_text()
    assert "prediction service stopped: 7 log rows written" in log
    assert PASSWORD not in log and API_KEY not in log


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BRIDGEAI_DATABASE_URL": "mysql://u:p@h/db"}, "unsupported database 'mysql'"),
        ({"BRIDGEAI_MAX_BATCH_ROWS": "zero"}, "max_batch_rows"),
    ],
)
def test_configuration_errors_exit_2_with_a_message_not_a_traceback(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bridgeai.cli", "serve", "--port", str(procs.free_port())],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_two_services_on_one_spool_root_each_get_their_own_and_adopt_the_dead(
    model_server, tmp_path: Path
) -> None:
    """The default spool root is shared by every process of a BRIDGEAI_HOME: none clashes, and
    the spool of one killed with rows in it is replayed by the next to start."""
    database = f"sqlite:///{tmp_path / 'log.db'}"
    env = {
        "BRIDGEAI_MODEL_URL": model_server.url,
        "BRIDGEAI_DATABASE_URL": database,
        "BRIDGEAI_LOG_FLUSH_INTERVAL": "3600",  # rows stay in the spool until shutdown
        "BRIDGEAI_LOG_BATCH_SIZE": "100000",
        "BRIDGEAI_HOME": str(tmp_path / "home"),
    }
    ports = [procs.free_port(), procs.free_port()]
    processes = [_serve(port, env, tmp_path / f"s{port}.log") for port in ports]
    try:
        for port, process in zip(ports, processes, strict=True):
            procs.wait_until(
                lambda p=port: procs.http_ok(f"http://127.0.0.1:{p}/ready"),
                timeout=120, service="bridgeai serve", process=process,
            )  # fmt: skip
        root = tmp_path / "home" / "service" / "spool"
        assert len([d for d in root.iterdir() if d.is_dir()]) == 2  # one each, no clash
        with httpx.Client(timeout=30) as http:
            answered = [
                http.post(f"http://127.0.0.1:{ports[0]}/predict", json=schema.EXAMPLE_HOUSE).json()[
                    "request_id"
                ]
                for _ in range(5)
            ]
        os.kill(processes[0].pid, signal.SIGKILL)
        processes[0].wait(30)
        assert count_rows(database) == 0  # nothing reached the database before the kill
        third = procs.free_port()
        processes.append(_serve(third, env, tmp_path / "third.log"))
        procs.wait_until(
            lambda: procs.http_ok(f"http://127.0.0.1:{third}/ready"),
            timeout=120, service="bridgeai serve", process=processes[-1],
        )  # fmt: skip
        assert sorted(r["request_id"] for r in logged(database)) == sorted(answered)
        assert len([d for d in root.iterdir() if d.is_dir()]) == 2  # the dead one's is gone
    finally:
        for process in processes:
            procs.stop_process(process.pid)
