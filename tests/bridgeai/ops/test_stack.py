"""The local stack with real processes: up, status, a flow through the worker, down."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from bridgeai import procs
from bridgeai.ops.stack import format_ports
from tests.support.stack import cli as _cli
from tests.support.stack import exported
from tests.support.stack import stack_env as _stack_env
from tests.support.stack import up as _up

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_stack_up_runs_a_flow_on_the_local_pool_and_down_frees_every_port(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _stack_env(home, BRIDGEAI_DATA_SOURCE="/data/offline-copy/HousingData.csv")
    try:
        up = _up(env)  # retried on new ports if another process takes one meanwhile
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{env['BRIDGEAI_PREFECT_PORT']}" in up.stdout
        assert f"http://127.0.0.1:{env['BRIDGEAI_MLFLOW_PORT']}" in up.stdout
        assert 'eval "$(bridgeai env)"' in up.stdout

        # A data source configured before `up` reaches the worker (and so its flow runs).
        source = "/data/offline-copy/HousingData.csv"
        assert f"Data source  {source}" in up.stdout
        state = json.loads((home / "stack" / "state.json").read_text())
        worker_env = Path(f"/proc/{state['pids']['prefect-worker']}/environ").read_bytes()
        assert f"BRIDGEAI_DATA_SOURCE={source}".encode() in worker_env.split(b"\0")

        status = _cli(env, "status")
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("healthy") == 4

        again = _cli(env, "up")
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("already running") == 4

        lines = _cli(env, "env").stdout
        api = f"export PREFECT_API_URL=http://127.0.0.1:{env['BRIDGEAI_PREFECT_PORT']}/api"
        assert api in lines
        assert "export AWS_SECRET_ACCESS_KEY=" in lines
        stack_env = exported(env)
        # The Prefect UI is told where its API is (with --port alone it asks port 4200).
        settings = httpx.get(
            f"http://127.0.0.1:{env['BRIDGEAI_PREFECT_PORT']}/ui-settings", timeout=30
        ).json()
        assert settings["api_url"] == stack_env["PREFECT_API_URL"], settings

        # The secret lives only in the stack folder's 0600 files, never in a log.
        secret = stack_env["AWS_SECRET_ACCESS_KEY"]
        for log in (home / "stack" / "logs").glob("*.log"):
            assert secret not in log.read_text(errors="replace"), log
        assert (home / "stack" / "s3-credentials.json").stat().st_mode & 0o077 == 0

        # A trivial flow deployed to the `local` pool runs to COMPLETED through the worker.
        project = tmp_path / "project"
        project.mkdir()
        (project / "trivial.py").write_text(
            textwrap.dedent(
                """
                from prefect import flow

                @flow
                def trivial(x: int = 1) -> int:
                    return x + 1
                """
            )
        )
        script = textwrap.dedent(
            f"""
            from prefect import flow
            from prefect.deployments import run_deployment
            from blocks import ObjectStorage, MLflowServer
            storage = ObjectStorage.load("bridgeai")
            storage.check()
            mlflow_uri = MLflowServer.load("bridgeai").tracking_uri
            assert mlflow_uri.endswith(":{env["BRIDGEAI_MLFLOW_PORT"]}"), mlflow_uri
            flow.from_source(source={str(project)!r}, entrypoint="trivial.py:trivial").deploy(
                name="trivial", work_pool_name="local", print_next_steps=False,
                ignore_warnings=True,
            )
            run = run_deployment("trivial/trivial", parameters={{"x": 41}}, timeout=240)
            print("STATE", run.state.type.value)
            """
        )
        ran = subprocess.run(
            [sys.executable, "-c", script], env=stack_env, capture_output=True, text=True,
            timeout=300, cwd=project,
        )  # fmt: skip
        assert "STATE COMPLETED" in ran.stdout, ran.stdout + ran.stderr
    finally:
        down = _cli(env, "down")
    assert down.returncode == 0, down.stderr
    assert "prefect-worker: stopped" in down.stdout.splitlines()[0]
    ports = [
        int(env[k]) for k in ("BRIDGEAI_S3_PORT", "BRIDGEAI_MLFLOW_PORT", "BRIDGEAI_PREFECT_PORT")
    ]
    base = int(env["BRIDGEAI_SEAWEED_BASE_PORT"])
    ports += [*range(base, base + 8), base + 7 + 10000]
    assert down.stdout.splitlines()[-1] == f"ports freed: {format_ports(ports)}"
    still = [p for p in ports if not procs.port_is_free(p)]
    assert not still, f"ports still bound after down: {still}"
    assert _cli(env, "status").returncode == 1
    assert (home / "stack" / "mlflow" / "mlflow.db").is_file(), "down must keep the data"


def test_a_busy_port_names_the_service_and_its_log(tmp_path: Path) -> None:
    env = _stack_env(tmp_path / "home")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["BRIDGEAI_MLFLOW_PORT"])))
        squatter.listen()
        result = _cli(env, "up", timeout=120)
    try:
        assert result.returncode == 1
        assert "mlflow cannot start" in result.stderr
        assert env["BRIDGEAI_MLFLOW_PORT"] in result.stderr
        assert "mlflow.log" in result.stderr
    finally:
        _cli(env, "down")
