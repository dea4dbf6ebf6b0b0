"""The local model server: ``bridgeai serve-model`` as a child process, swapped without downtime.

:func:`start` launches a new server for a model URI on a free port, waits for
``/v2/health/ready``, records it under ``$BRIDGEAI_HOME/serving/model-server.json`` and only then
stops the previous one. If the new server fails to start, it is stopped and the previous one keeps
serving (the error names the log file). Each swap moves to a new port so old and new never fight
for one; clients read the current URL from :func:`current` (or ``bridgeai`` state) rather than
assuming a port, unless the caller pins ``port`` (then the old server is stopped first: a short
gap, by choice).

Nothing here imports Prefect.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from bridgeai import procs
from bridgeai.model import REGISTERED_MODEL
from bridgeai.paths import home_dir

MODEL_NAME = REGISTERED_MODEL
STATE_FILE = "model-server.json"
#: ``bridgeai serve-model`` and ``bridgeai serve`` record themselves here while they run.
PROCESSES_DIR = "processes"
#: A child's output goes to a log file, where MLflow's download progress bars only add noise.
_QUIET = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


@dataclass
class _Recorded:
    """A child process recorded in a state file under ``$BRIDGEAI_HOME/serving``."""

    pid: int
    host: str
    port: int
    log_file: str
    started_at: float

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        return procs.pid_alive(self.pid)


@dataclass
class LocalServer(_Recorded):
    """A running local model server, as recorded in the state file."""

    model_uri: str = ""
    model_version: str | None = None

    @property
    def infer_url(self) -> str:
        """The OIP v2 infer endpoint, the same path KServe serves."""
        return f"{self.base_url}/v2/models/{MODEL_NAME}/infer"

    @property
    def ready_url(self) -> str:
        return f"{self.base_url}/v2/health/ready"


R = TypeVar("R", bound=_Recorded)


def state_dir() -> Path:
    """``$BRIDGEAI_HOME/serving`` (created on demand)."""
    return home_dir("serving")


def _read(cls: type[R], name: str) -> R | None:
    """The process recorded in ``name`` if it is still alive, else None."""
    try:
        recorded = cls(**json.loads((state_dir() / name).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return recorded if recorded.alive() else None


def _write(recorded: _Recorded, name: str) -> None:
    path = state_dir() / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(recorded), indent=2))
    tmp.replace(path)


def _forget(name: str) -> None:
    with contextlib.suppress(OSError):
        (state_dir() / name).unlink()


def current() -> LocalServer | None:
    """The recorded server if its process is alive, else None."""
    return _read(LocalServer, STATE_FILE)


def _bridgeai(*args: str) -> list[str]:
    """A ``bridgeai`` command line from this environment's ``bin``."""
    exe = Path(sys.executable).parent / "bridgeai"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "bridgeai.cli"]
    return [*base, *args]


def serve_command(model_uri: str, host: str, port: int) -> list[str]:
    """``bridgeai serve-model`` from this environment's ``bin`` (the image runs the same)."""
    return _bridgeai("serve-model", "--model-uri", model_uri, "--host", host, "--port", str(port))


def start(
    model_uri: str,
    *,
    model_version: str | int | None = None,
    host: str = procs.LOOPBACK,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    command: Sequence[str] | None = None,
) -> LocalServer:
    """Start a server for ``model_uri``, wait until ready, then stop the previous one.

    Args:
        model_uri: ``models:/<name>/<version>`` (or a model directory) for ``serve-model``.
        model_version: recorded with the server, for status and the flow's result.
        host: interface to bind (loopback by default).
        port: a fixed port; None picks a free one different from the running server's.
        env: extra environment (MLflow tracking URI and S3 settings to fetch the model).
        timeout: seconds to wait for ``/v2/health/ready``.
        command: the full command to run instead of ``serve-model`` (``{port}`` and ``{host}``
            are substituted); used by tests and for custom servers.

    Raises:
        procs.ServiceStartError: the new server exited or was not ready in time (its log tail is
            in the message); the previous server, if any, is still running.
    """
    previous = current()
    if port is None:
        port = procs.free_port(host, avoid=[previous.port] if previous else ())
    elif previous is not None and previous.port == port:
        # A pinned port cannot host two servers: the caller chose a short gap over a new URL.
        stop()
        previous = None
    if not procs.port_is_free(port, host):
        raise procs.ServiceStartError(
            f"model server cannot start: port {port} on {host} is in use by another process; "
            "choose another port or leave it unset to pick a free one"
        )
    logs = state_dir() / "logs"
    log_file = logs / f"model-server-{port}.log"
    argv = (
        [part.format(port=port, host=host) for part in command]
        if command
        else serve_command(model_uri, host, port)
    )
    server = LocalServer(
        pid=0,
        host=host,
        port=port,
        model_uri=model_uri,
        model_version=None if model_version is None else str(model_version),
        log_file=str(log_file),
        started_at=time.time(),
    )
    try:
        process = procs.start_server(
            argv,
            log_file=log_file,
            env={**_QUIET, **dict(env or {})},
            service=f"model server for {model_uri}",
            ready=server.ready_url,
            timeout=timeout,
        )
    except procs.ServiceStartError as exc:
        kept = f"; the previous server ({previous.model_uri}) keeps serving" if previous else ""
        raise procs.ServiceStartError(f"{exc}{kept}") from None
    server.pid = process.pid
    _write(server, STATE_FILE)
    if previous is not None:
        procs.stop_process(previous.pid)
    return server


def stop() -> bool:
    """Stop the recorded server; True if one was running."""
    server = current()
    stopped = procs.stop_process(server.pid) if server else False
    _forget(STATE_FILE)
    return stopped


def status() -> dict[str, Any]:
    """The recorded server's fields plus ``ready`` (for CLIs and notebooks)."""
    server = current()
    if server is None:
        return {"running": False}
    return {
        "running": True,
        "ready": procs.http_ok(server.ready_url),
        "url": server.infer_url,
        **asdict(server),
    }


# -- the prediction service beside it ---------------------------------------------------------
SERVICE_STATE_FILE = "prediction-service.json"


@dataclass
class LocalService(_Recorded):
    """A running local prediction service (``bridgeai serve``), as recorded in its state file."""

    model_url: str = ""

    @property
    def ready_url(self) -> str:
        """``/ready``: the prediction log's database and the model server both answer."""
        return f"{self.base_url}/ready"


def current_service() -> LocalService | None:
    """The recorded prediction service if its process is alive, else None."""
    return _read(LocalService, SERVICE_STATE_FILE)


def start_service(
    model_url: str,
    *,
    host: str = procs.LOOPBACK,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> LocalService:
    """(Re)start ``bridgeai serve`` in front of the model server at ``model_url``.

    A running service is reused when it already points at ``model_url``; otherwise it is stopped
    first (it flushes its prediction-log spool on SIGTERM; the new process keeps a spool of its
    own) and a new one starts. The prediction log is the service's default (SQLite under
    ``$BRIDGEAI_HOME``) unless ``env`` or the environment sets ``BRIDGEAI_DATABASE_URL``.

    Raises:
        procs.ServiceStartError: the service exited or was not ready in time (log tail included).
    """
    running = current_service()
    if (
        running is not None
        and running.model_url == model_url
        and port in (None, running.port)
        and procs.http_ok(running.ready_url)
    ):
        return running
    stop_service()
    port = port or procs.free_port(host)
    log_file = state_dir() / "logs" / f"prediction-service-{port}.log"
    service = LocalService(
        pid=0,
        host=host,
        port=port,
        model_url=model_url,
        log_file=str(log_file),
        started_at=time.time(),
    )
    process = procs.start_server(
        _bridgeai("serve", "--host", host, "--port", str(port)),
        log_file=log_file,
        env={**_QUIET, **dict(env or {}), "BRIDGEAI_MODEL_URL": model_url},
        service="prediction service",
        ready=service.ready_url,
        timeout=timeout,
    )
    service.pid = process.pid
    _write(service, SERVICE_STATE_FILE)
    return service


def stop_service() -> bool:
    """Stop the recorded prediction service (it flushes its log on SIGTERM); True if one ran."""
    service = current_service()
    stopped = procs.stop_process(service.pid, timeout=30) if service else False
    _forget(SERVICE_STATE_FILE)
    return stopped


# -- every server process, however it was started ----------------------------------------------
@dataclass
class RecordedProcess(_Recorded):
    """A ``bridgeai serve-model`` or ``bridgeai serve`` process that recorded itself."""

    kind: str = ""
    grpc_port: int | None = None  # ``bridgeai serve-model --grpc-port``

    @property
    def ports(self) -> list[int]:
        return [self.port] if self.grpc_port is None else [self.port, self.grpc_port]

    def alive(self) -> bool:
        # A record outlives a SIGKILLed process; its PID may since belong to something else.
        return procs.pid_alive(self.pid) and _is_bridgeai(self.pid)


def _is_bridgeai(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the PID
    return b"bridgeai" in cmdline


@contextlib.contextmanager
def recorded(
    kind: str, host: str, port: int, grpc_port: int | None = None
) -> Iterator[RecordedProcess]:
    """Record this process under ``$BRIDGEAI_HOME/serving/processes`` while it runs.

    ``bridgeai serve-model`` and ``bridgeai serve`` wrap themselves in it, so ``bridgeai down``
    stops servers started by hand as well as those the pipeline started.
    """
    me = RecordedProcess(
        pid=os.getpid(),
        host=host,
        port=port,
        log_file="",
        started_at=time.time(),
        kind=kind,
        grpc_port=grpc_port,
    )
    name = f"{PROCESSES_DIR}/{kind}-{me.pid}.json"
    try:
        home_dir("serving", PROCESSES_DIR)
        _write(me, name)
    except OSError:
        pass  # a read-only home (a container): the server runs, `bridgeai down` cannot see it
    try:
        yield me
    finally:
        _forget(name)


def recorded_processes() -> list[RecordedProcess]:
    """Every recorded server process still running here (records of dead ones are removed)."""
    found = []
    folder = state_dir() / PROCESSES_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        process = _read(RecordedProcess, f"{PROCESSES_DIR}/{path.name}")
        if process is None:
            _forget(f"{PROCESSES_DIR}/{path.name}")
        else:
            found.append(process)
    return found


def stop_all(echo: Callable[[str], None] = print) -> list[int]:
    """Stop every prediction service, then every model server, recorded in this home.

    Covers the pipeline's (``deploy_model(target="local")``, the smoke stage) and the ones
    started by hand; prints one line per process and returns the ports freed.
    """
    freed: list[int] = []
    seen: set[int] = set()

    def _stop(kind: str, pid: int, *ports: int) -> None:
        if pid in seen:
            return
        seen.add(pid)
        if procs.stop_process(pid, timeout=30):
            listed = ", ".join(map(str, ports))
            echo(f"{kind}: stopped (pid {pid}; port{'s' if len(ports) > 1 else ''} {listed})")
            freed.extend(ports)

    service, server = current_service(), current()
    if service is not None:
        _stop("prediction-service", service.pid, service.port)
    _forget(SERVICE_STATE_FILE)
    others = recorded_processes()
    for process in others:
        if process.kind == "prediction-service":
            _stop(process.kind, process.pid, *process.ports)
    if server is not None:
        _stop("model-server", server.pid, server.port)
    _forget(STATE_FILE)
    for process in others:
        if process.kind != "prediction-service":
            _stop(process.kind, process.pid, *process.ports)
    recorded_processes()  # forget the records of what was stopped
    return freed
