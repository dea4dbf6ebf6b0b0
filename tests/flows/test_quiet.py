"""Embedded mode outside the repository root (a notebook in ``notebooks/``, a script elsewhere)
prints no false alarm.

Prefect's ephemeral server sends telemetry unless ``PREFECT_SERVER_ANALYTICS_ENABLED`` is off;
offline that is an ``ERROR | ... telemetry`` line on a healthy run. pyproject's ``[tool.prefect]``
turns it off only for commands started in the repository root, so importing ``flows`` does it
for the rest (unless the user set it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import REPO_ROOT

_SCRIPT = """
import os

import flows  # what a notebook's `from flows.ingest import data_ingestion` runs first
from prefect import flow

@flow
def hello() -> int:
    return 1

assert hello() == 1
print("flow ran")
# The ephemeral server is a child process: what it was told (online, telemetry would just work).
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            if int(stat[1]) == os.getpid():
                environ = open(f"/proc/{entry}/environ", "rb").read().split(b"\\0")
                for item in environ:
                    if item.startswith(b"PREFECT_SERVER_ANALYTICS_ENABLED="):
                        print("server analytics:", item.split(b"=", 1)[1].decode().lower())
        except OSError:
            pass
"""


@pytest.mark.integration
def test_a_flow_run_from_outside_the_repository_prints_no_error_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BRIDGEAI_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        BRIDGEAI_HOME=str(tmp_path / "home"),
        PYTHONPATH=str(REPO_ROOT),
    )
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=tmp_path,  # no pyproject.toml here: [tool.prefect] does not apply
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "flow ran" in output
    assert "server analytics: false" in output, output[-3000:]
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert not errors, errors


def test_a_value_the_user_set_is_kept(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "true", "PYTHONPATH": str(REPO_ROOT)}
    code = "import os, flows; print(os.environ['PREFECT_SERVER_ANALYTICS_ENABLED'])"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.stdout.strip() == "true", run.stderr[-2000:]
