"""Real servers on this machine standing in for the cluster services whose images cannot be pulled.

Each listens on its Service's loopback address, so pods reach it by its cluster DNS name exactly
as they would reach the pod on Kind, and each is configured from what the cluster holds: the
credentials from the Secrets up.sh creates, the databases from ``postgres.yaml``'s init
ConfigMap, MinIO's buckets from ``values/minio.yaml``, MLflow's and the git server's command lines
from their manifests (cluster DNS names in them replaced by the Services' addresses: this machine
has no cluster DNS).

* ``postgres`` (Kind: ``postgres:16.9-alpine``): PostgreSQL 15 (``bridgeai.testing.postgres``);
* ``minio`` (the MinIO chart): SeaweedFS ``weed mini``, credentials enforced;
* ``mlflow`` (``mlflow server`` in the flow-runner image): the same command, this environment's;
* ``prefect-server`` (the chart): ``prefect server start`` on the ``prefect`` database;
* ``git`` (``bridgeai.ops.git_server`` in the flow-runner image): the same module;
* ``kind-registry`` (a ``registry:2`` container): the CI's ``docker-registry`` (htpasswd).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridgeai import procs

logger = logging.getLogger("sim.standins")
BIN = Path(sys.executable).parent


@dataclass
class StandIn:
    """One stand-in server process."""

    name: str
    process: Any
    log_file: Path
    healthy: Callable[[], bool]
    stop: Callable[[], None] | None = None

    def terminate(self) -> None:
        if self.stop is not None:
            self.stop()
        elif self.process is not None:
            procs.stop_process(self.process.pid, timeout=20)


@dataclass
class NameMap:
    """Cluster DNS names -> addresses, for command lines run on this machine."""

    names: dict[str, str] = field(default_factory=dict)

    def resolve(self, text: str) -> str:
        for name in sorted(self.names, key=len, reverse=True):
            text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", self.names[name], text)
        return text


def postgres(address: str, password: str, init_sql: str) -> tuple[StandIn, Any]:
    """PostgreSQL on ``address:5432`` with the role ``bridgeai`` and the init SQL's databases."""
    from bridgeai.testing.postgres import PostgresCluster

    # Its own temporary folder: the postgres user must be able to enter it.
    cluster = PostgresCluster(port=5432, host=address)
    cluster.start()
    cluster._psql(
        f"CREATE ROLE bridgeai LOGIN SUPERUSER PASSWORD '{password}'", database="postgres"
    )
    for statement in (s.strip() for s in init_sql.split(";")):
        if statement:
            cluster._psql(statement, database="postgres")
    for database in re.findall(r"CREATE DATABASE (\w+)", init_sql):
        cluster._psql(f"ALTER DATABASE {database} OWNER TO bridgeai", database="postgres")
    stand_in = StandIn(
        "postgres",
        None,
        cluster.root / "postgres.log",
        healthy=lambda: procs.port_is_free(5432, address) is False,
        stop=cluster.destroy,
    )
    return stand_in, cluster


def minio(
    root: Path, address: str, access_key: str, secret_key: str, buckets: Sequence[str]
) -> StandIn:
    """SeaweedFS's S3 on ``address:9000`` with MinIO's root credentials and buckets."""
    from pydantic import SecretStr

    from blocks import ObjectStorage
    from bridgeai.ops import seaweed

    config = seaweed.SeaweedConfig(
        data_dir=root, s3_port=9000, access_key=access_key, secret_key=secret_key, host=address
    )
    # Free ports for its internal servers: a fixed base (the local stack's 18330) may be taken by
    # another SeaweedFS on this machine, whose gRPC listeners are not bound to one address.
    config.allocate_ports()
    log_file = root / "weed.log"
    process = seaweed.start(config, log_file, timeout=120)
    storage = ObjectStorage(
        endpoint_url=config.endpoint_url,
        access_key_id=access_key,
        secret_access_key=SecretStr(secret_key),
    )
    fs = storage.filesystem()
    for bucket in buckets:
        if not fs.exists(f"s3://{bucket}"):
            fs.mkdir(f"s3://{bucket}")
    return StandIn(
        "minio", process, log_file, healthy=lambda: seaweed.s3_answers(config.endpoint_url)
    )


def from_manifest(
    name: str,
    container: Mapping[str, Any],
    env: Mapping[str, str],
    names: NameMap,
    address: str,
    root: Path,
    *,
    ready: str,
    extra_env: Mapping[str, str] | None = None,
    rewrite: Callable[[list[str]], list[str]] | None = None,
    timeout: float = 240,
) -> StandIn:
    """Run a manifest container's command on this machine, bound to its Service's address.

    ``$(VAR)`` references are expanded from ``env`` (resolved from the cluster's Secrets as the
    node agent would), cluster DNS names become addresses, and ``0.0.0.0`` the Service's address.
    """
    from tests.support.cluster.kubelet import expand

    raw = [expand(str(a), env) for a in [*container.get("command", []), *container.get("args", [])]]
    argv = []
    for i, arg in enumerate(raw):
        if i and raw[i - 1] == "--allowed-hosts":  # names clients send, not addresses to dial
            argv.append(f"{arg},{address},{address}:{container['ports'][0]['containerPort']}")
        else:
            argv.append(names.resolve(arg).replace("0.0.0.0", address))
    if rewrite:
        argv = rewrite(argv)
    executable = argv[0]
    if executable == "python":
        argv[0] = sys.executable
    elif (BIN / executable).exists():
        argv[0] = str(BIN / executable)
    process_env = {k: names.resolve(v) for k, v in env.items()}
    process_env.update(extra_env or {})
    log_file = root / f"{name}.log"
    root.mkdir(parents=True, exist_ok=True)
    shown = shlex.join(argv)
    for value in env.values():
        if len(value) >= 12 and value in shown:
            shown = shown.replace(value, "***")
    logger.info("%s: %s", name, shown)
    process = procs.start_server(
        argv,
        log_file=log_file,
        env={**process_env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        service=name,
        ready=ready,
        timeout=timeout,
    )
    return StandIn(name, process, log_file, healthy=lambda: procs.http_ok(ready))


def prefect_server(root: Path, address: str, database_url: str) -> StandIn:
    """``prefect server start`` on ``address:4200``, on the cluster's ``prefect`` database."""
    log_file = root / "prefect-server.log"
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    api = f"http://{address}:4200/api"
    process = procs.start_server(
        [str(BIN / "prefect"), "server", "start", "--host", address, "--port", "4200",
         "--analytics-off"],
        log_file=log_file,
        env={
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": "",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
        },
        service="prefect server",
        ready=f"{api}/health",
        timeout=300,
    )  # fmt: skip
    return StandIn(
        "prefect-server", process, log_file, healthy=lambda: procs.http_ok(f"{api}/health")
    )


def run(argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 1800) -> str:
    """Run a command to completion (a user's step: create pools, save blocks, deploy)."""
    result = subprocess.run(
        list(argv), cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({result.returncode}):\n{output[-6000:]}")
    return output
