"""The local model server swap: start, wait for readiness, record, then stop the previous one.

The swap logic is tested with a stand-in server process (tests/support/fake_model_server.py) so
each test controls readiness and failure; the last test runs the real ``bridgeai serve-model``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from bridgeai import procs
from bridgeai.deploy import local as local_serving
from tests.support.env import REPO_ROOT

FAKE = REPO_ROOT / "tests" / "support" / "fake_model_server.py"


def fake(tag: str, *extra: str) -> list[str]:
    # -P: do not put tests/support first on sys.path (its http.py would shadow the stdlib).
    return [sys.executable, "-P", str(FAKE), "--port", "{port}", "--tag", tag, *extra]


def answer(server: local_serving.LocalServer) -> str:
    url = f"{server.base_url}/v2/models/house_price_prediction_prod"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        return str(json.loads(response.read())["tag"])


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    local_serving.stop()


def test_start_records_pid_and_port_under_bridgeai_home(bridgeai_home: Path) -> None:
    server = local_serving.start("models:/m/1", model_version=1, command=fake("v1"))
    assert server.alive() and answer(server) == "v1"
    state = json.loads((bridgeai_home / "serving" / "model-server.json").read_text())
    assert state["pid"] == server.pid and state["port"] == server.port
    assert state["model_version"] == "1"
    assert local_serving.current() == server
    status = local_serving.status()
    assert status["ready"] is True
    assert status["url"] == f"{server.base_url}/v2/models/house_price_prediction_prod/infer"


def test_previous_server_serves_until_the_new_one_is_ready() -> None:
    old = local_serving.start("models:/m/1", model_version=1, command=fake("v1"))
    result: dict[str, object] = {}
    swap = threading.Thread(
        target=lambda: result.setdefault(
            "new", local_serving.start("models:/m/2", command=fake("v2", "--ready-after", "2"))
        )
    )
    swap.start()
    time.sleep(1.0)
    # Mid-swap: the new one is not ready yet, the old one still answers.
    assert old.alive() and answer(old) == "v1"
    assert local_serving.current() == old
    swap.join(timeout=60)
    new = result["new"]
    assert isinstance(new, local_serving.LocalServer)
    assert new.port != old.port and answer(new) == "v2"
    assert not old.alive()
    assert local_serving.current() == new


def test_a_new_server_that_exits_leaves_the_old_one_serving() -> None:
    old = local_serving.start("models:/m/1", command=fake("v1"))
    with pytest.raises(procs.ServiceStartError) as info:
        local_serving.start("models:/m/9", command=fake("v9", "--exit"), timeout=30)
    message = str(info.value)
    assert "exited with code 3" in message
    assert "cannot load model" in message  # the log tail
    assert "keeps serving" in message
    assert local_serving.current() == old and answer(old) == "v1"


def test_a_new_server_that_never_gets_ready_is_stopped() -> None:
    old = local_serving.start("models:/m/1", command=fake("v1"))
    before = {p.name for p in (local_serving.state_dir() / "logs").iterdir()}
    with pytest.raises(procs.ServiceStartError, match="did not become healthy"):
        local_serving.start("models:/m/2", command=fake("v2", "--ready-after", "600"), timeout=2)
    logs = {p.name for p in (local_serving.state_dir() / "logs").iterdir()} - before
    (log,) = logs
    port = int(log.removeprefix("model-server-").removesuffix(".log"))
    assert procs.port_is_free(port)  # the half-started server was stopped, not orphaned
    assert local_serving.current() == old


def test_a_pinned_busy_port_is_refused_with_a_fix() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(procs.ServiceStartError, match=f"port {port}.*in use"):
            local_serving.start("models:/m/1", port=port, command=fake("v1"))


def test_stop_stops_and_forgets() -> None:
    server = local_serving.start("models:/m/1", command=fake("v1"))
    assert local_serving.stop() is True
    assert not server.alive()
    assert local_serving.current() is None
    assert local_serving.status() == {"running": False}
    assert local_serving.stop() is False


@pytest.mark.integration
@pytest.mark.slow
def test_real_model_server_on_a_model_directory(tmp_path: Path) -> None:
    """``bridgeai serve-model`` itself (issue 5's server) answers ready and infers."""
    from bridgeai.schema import EXAMPLE_HOUSE, V2_DATATYPE
    from bridgeai.testing.models import tiny_model

    model_dir = tmp_path / "model"
    tiny_model().save(model_dir)
    server = local_serving.start(str(model_dir), model_version="dir", timeout=180)
    inputs = [
        {"name": k, "shape": [1], "datatype": V2_DATATYPE[k], "data": [v]}
        for k, v in EXAMPLE_HOUSE.items()
    ]
    request = urllib.request.Request(  # noqa: S310 - loopback
        server.infer_url,
        data=json.dumps({"inputs": inputs}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        body = json.loads(response.read())
    assert body["outputs"][0]["name"] == "price"
    assert body["outputs"][0]["data"][0] > 0


# -- servers started by hand, `bridgeai down`, and `bridgeai serve` finding the model ----------
BRIDGEAI = Path(sys.executable).parent / "bridgeai"


def _bridgeai_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGEAI_MODEL")}
    return {**env, "BRIDGEAI_HOME": str(home), **extra}


_RECORDED_CHILD = """
import sys
from bridgeai.deploy import local
with local.recorded("model-server", "127.0.0.1", 8123):
    print("recorded", flush=True)
    sys.stdin.read()
"""


def test_a_recorded_process_is_forgotten_when_it_ends_or_its_pid_is_not_bridgeai(
    bridgeai_home: Path,
) -> None:
    # A bridgeai process records itself (its command line names bridgeai, as `bridgeai serve`'s
    # does; this test process's need not: under `make test` it is plain `pytest`).
    child = subprocess.Popen(
        [sys.executable, "-c", _RECORDED_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"recorded\n"
        (found,) = local_serving.recorded_processes()
        assert (found.pid, found.port, found.kind) == (child.pid, 8123, "model-server")
    finally:
        child.communicate(timeout=30)  # stdin closed: it leaves the block and exits
    assert child.returncode == 0
    assert local_serving.recorded_processes() == []
    # A record left by a SIGKILLed process whose PID now belongs to something else.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        folder = bridgeai_home / "serving" / "processes"
        record = folder / f"model-server-{sleeper.pid}.json"
        record.write_text(json.dumps({
            "pid": sleeper.pid, "host": "127.0.0.1", "port": 8124, "log_file": "",
            "started_at": 0.0, "kind": "model-server",
        }))  # fmt: skip
        assert local_serving.recorded_processes() == []
        assert not record.exists()
        assert local_serving.stop_all(echo=lambda line: None) == []
        assert sleeper.poll() is None, "stop_all must not stop a process that is not bridgeai's"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_bridgeai_serve_finds_the_recorded_model_server(bridgeai_home: Path) -> None:
    from bridgeai.service.settings import DEFAULT_MODEL_URL, ServiceSettings

    assert ServiceSettings().model_url == DEFAULT_MODEL_URL
    server = local_serving.start("models:/m/1", model_version=1, command=fake("v1"))
    assert ServiceSettings().model_url == server.base_url
    pinned = ServiceSettings(_env_file=None, model_url="http://model:9000")
    assert pinned.model_url == "http://model:9000"
    local_serving.stop()
    assert ServiceSettings().model_url == DEFAULT_MODEL_URL  # a dead server is not "found"


@pytest.mark.integration
def test_down_stops_servers_started_by_hand_and_lists_their_ports(bridgeai_home: Path) -> None:
    """`bridgeai serve` and the local target's model server, then `bridgeai down`."""
    home = bridgeai_home
    env = _bridgeai_env(home)
    server = local_serving.start("models:/m/1", model_version=1, command=fake("v1"))
    service_port = procs.free_port()
    log = home / "serve.log"
    by_hand = subprocess.Popen(
        [str(BRIDGEAI), "serve", "--port", str(service_port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # as from another terminal: not our child's group
    )
    try:
        procs.wait_until(
            lambda: procs.http_ok(f"http://127.0.0.1:{service_port}/health"),
            timeout=120,
            service="bridgeai serve",
            process=by_hand,
        )
        # It found the recorded model server without being told (its /ready checks it).
        assert procs.http_ok(f"http://127.0.0.1:{service_port}/ready")
        down = subprocess.run(
            [str(BRIDGEAI), "down"], env=env, capture_output=True, text=True, timeout=120
        )
        assert down.returncode == 0, down.stderr
        lines = down.stdout.splitlines()
        assert f"prediction-service: stopped (pid {by_hand.pid}; port {service_port})" in lines
        assert f"model-server: stopped (pid {server.pid}; port {server.port})" in lines
        assert "local stack: not running" in lines
        freed = sorted([service_port, server.port])
        assert lines[-1] == f"ports freed: {', '.join(map(str, freed))}"
        by_hand.wait(timeout=30)
        assert "prediction service stopped" in log.read_text()  # SIGTERM: a clean stop
        assert procs.port_is_free(service_port) and procs.port_is_free(server.port)
        assert not (home / "serving" / "processes").exists() or not any(
            (home / "serving" / "processes").iterdir()
        )
    finally:
        if by_hand.poll() is None:
            by_hand.kill()


@pytest.mark.integration
@pytest.mark.slow
def test_down_lists_the_grpc_port_of_a_serve_model_started_by_hand(
    bridgeai_home: Path, tmp_path: Path
) -> None:
    from bridgeai.ops.stack import format_ports
    from bridgeai.testing.models import tiny_model

    model_dir = tmp_path / "model"
    tiny_model().save(model_dir)
    port, grpc_port = procs.free_port(), procs.free_port()
    while grpc_port == port:
        grpc_port = procs.free_port()
    env = _bridgeai_env(bridgeai_home)
    command = [str(BRIDGEAI), "serve-model", "--model-uri", str(model_dir), "--port", str(port)]
    by_hand = subprocess.Popen(
        [*command, "--grpc-port", str(grpc_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        procs.wait_until(
            lambda: procs.http_ok(f"http://127.0.0.1:{port}/v2/health/ready"),
            timeout=180,
            service="bridgeai serve-model",
            process=by_hand,
        )
        assert not procs.port_is_free(grpc_port), "the gRPC port is not listening"
        down = subprocess.run(
            [str(BRIDGEAI), "down"], env=env, capture_output=True, text=True, timeout=120
        )
        assert down.returncode == 0, down.stderr
        lines = down.stdout.splitlines()
        assert f"model-server: stopped (pid {by_hand.pid}; ports {port}, {grpc_port})" in lines
        assert lines[-1] == f"ports freed: {format_ports([port, grpc_port])}"
        by_hand.wait(timeout=30)
        assert procs.port_is_free(port) and procs.port_is_free(grpc_port)
    finally:
        if by_hand.poll() is None:
            by_hand.kill()
            by_hand.wait()
