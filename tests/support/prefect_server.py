"""A Prefect API that other processes can reach (``prefect deploy``, a process worker)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

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
def harness_server(
    prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> PrefectServer:
    """The session's test-harness API (a real server subprocess) for CLI processes and workers:
    cheaper than starting another server when the session already has one."""
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    assert api_url, "prefect_harness did not set PREFECT_API_URL"
    return PrefectServer(str(api_url), tmp_path_factory.mktemp("prefect-cli"))
