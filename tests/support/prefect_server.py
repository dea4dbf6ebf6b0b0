"""A real ``prefect server start`` on a free port with its own PREFECT_HOME (for CLI tests that
need a server other processes can reach: ``prefect deploy``, a process worker)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridgeai import procs

BIN = Path(sys.executable).parent


@dataclass
class PrefectServer:
    api_url: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a CLI or worker process that talks to this server."""
        env = dict(os.environ)
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(self.home / "client"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_LEVEL="INFO",
        )
        env.update(extra)
        return env


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home = tmp_path_factory.mktemp("prefect-server")
    port = procs.free_port()
    env = {
        "PREFECT_HOME": str(home / "server"),
        "PREFECT_API_URL": "",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
    }
    log = home / "server.log"
    process = procs.start_process(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
         "--analytics-off"],
        log_file=log,
        env=env,
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api"
    try:
        procs.wait_until(
            lambda: procs.http_ok(f"{api}/health"),
            timeout=240,
            service="prefect server",
            log_file=log,
            process=process,
        )
        yield PrefectServer(api, home)
    finally:
        procs.stop_process(process.pid)
