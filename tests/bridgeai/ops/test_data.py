"""``bridgeai.list_data_versions`` / ``load_split`` in embedded mode start no Prefect server.

In embedded mode (no Prefect API configured) the saved blocks are the embedded defaults, so
there is nothing to ask a server for. The check runs in a fresh interpreter in which Prefect
may not start an ephemeral server at all (``PREFECT_SERVER_ALLOW_EPHEMERAL_MODE=false``: any
attempt fails), and which must not even import Prefect's server or start a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from blocks import ObjectStorage
from bridgeai.data.repository import DataRepo
from tests.support.ingest import publish

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:dvc.*")

_READER = textwrap.dedent(
    """
    import json, os, sys
    import bridgeai
    tags = bridgeai.list_data_versions()
    train = bridgeai.load_split("data-latest", "train")
    test = bridgeai.load_split("data-v1.0.0", "test")
    kids = open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()
    print(json.dumps({
        "tags": tags,
        "train": [train.height, train.width],
        "test": test.height,
        "server_imported": any(m.startswith("prefect.server") for m in sys.modules),
        "uvicorn_imported": "uvicorn" in sys.modules,
        "children": kids,
    }))
    """
)


def test_embedded_reads_start_no_prefect_server(
    bridgeai_home: Path, shared_data: Path, tmp_path: Path
) -> None:
    storage, repo = ObjectStorage(), DataRepo()
    publish(repo, storage, pl.read_csv(shared_data / "HousingData.csv"))
    publish(repo, storage, pl.read_csv(shared_data / "HousingData-old.csv"))

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        BRIDGEAI_HOME=str(bridgeai_home),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",  # starting one would raise
    )
    result = subprocess.run(
        [sys.executable, "-c", _READER],
        env=env,
        cwd=tmp_path,  # not the repository root: no pyproject.toml settings either
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["tags"] == ["data-v1.0.0", "data-v1.1.0"]
    assert found["train"] == [260, 13]  # data-latest is the old file's version
    assert found["test"] == 109  # HousingData.csv: 348/88/109
    assert not found["server_imported"] and not found["uvicorn_imported"]
    assert found["children"] == [], "a child process was started"
    assert "Starting temporary server" not in result.stdout + result.stderr
