"""The local stack: SeaweedFS S3, an MLflow server, a Prefect server and a process worker.

``bridgeai up`` starts whatever is not already running, waits until each service is healthy,
saves the Blocks that point the flows at them and creates the ``local`` work pool. Every file the
stack writes (data, logs, PIDs, generated credentials) lives under ``$BRIDGEAI_HOME/stack``;
``down`` stops the processes and keeps the data. Nothing here needs Docker.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridgeai import procs
from bridgeai.ops import seaweed
from bridgeai.paths import bridgeai_home

#: The worker's flow runs ingest from this source unless a run passes ``source``.
DATA_SOURCE_ENV = "BRIDGEAI_DATA_SOURCE"
#: Start order; ``down`` stops in reverse (the worker before the server).
SERVICES = ("s3", "mlflow", "prefect-server", "prefect-worker")


class StackSettings(BaseSettings):
    """Process knobs of the local stack, from ``BRIDGEAI_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="BRIDGEAI_", extra="ignore")

    host: str = procs.LOOPBACK
    prefect_port: int = 4200
    mlflow_port: int = 5080
    s3_port: int = 8333
    #: SeaweedFS's internal ports are ``base .. base+7``; its admin gRPC port is ``base+7+10000``.
    seaweed_base_port: int = 18330
    work_pool: str = "local"
    startup_timeout: float = 180.0
    #: S3 credentials for SeaweedFS; generated once (and kept in the stack folder) when unset.
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None


@dataclass
class ServiceStatus:
    """One service's health as ``status`` reports it."""

    name: str
    pid: int | None
    url: str
    healthy: bool
    log_file: Path


class Stack:
    """Supervisor of the local stack rooted at ``$BRIDGEAI_HOME/stack``."""

    def __init__(self, settings: StackSettings | None = None, home: Path | None = None) -> None:
        self.settings = settings or StackSettings()
        self.root = (home or bridgeai_home()) / "stack"
        self.logs = self.root / "logs"

    # -- state --------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def state(self) -> dict[str, Any]:
        """The recorded ports and PIDs (empty when the stack never ran here)."""
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def _save_state(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def _ports(self) -> dict[str, int]:
        """Ports from the running stack's state, else from the settings."""
        recorded = self.state().get("ports")
        if recorded and self.is_running():
            return {k: int(v) for k, v in recorded.items()}
        s = self.settings
        return {"s3": s.s3_port, "mlflow": s.mlflow_port, "prefect-server": s.prefect_port}

    def log_file(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def credentials(self) -> tuple[str, str]:
        """S3 access key and secret: from the settings, else generated once and kept (0600)."""
        s = self.settings
        if s.s3_access_key and s.s3_secret_key:
            return s.s3_access_key, s.s3_secret_key.get_secret_value()
        path = self.root / "s3-credentials.json"
        try:
            doc = json.loads(path.read_text())
            return doc["access_key"], doc["secret_key"]
        except (OSError, ValueError, KeyError):
            pass
        self.root.mkdir(parents=True, exist_ok=True)
        doc = {
            "access_key": "bridgeai-" + secrets.token_hex(4),
            "secret_key": secrets.token_urlsafe(24),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle)
        return doc["access_key"], doc["secret_key"]

    # -- URLs ---------------------------------------------------------------------------------
    def urls(self) -> dict[str, str]:
        host, ports = self.settings.host, self._ports()
        return {
            "s3": f"http://{host}:{ports['s3']}",
            "mlflow": f"http://{host}:{ports['mlflow']}",
            "prefect-server": f"http://{host}:{ports['prefect-server']}",
            "prefect-api": f"http://{host}:{ports['prefect-server']}/api",
        }

    def _seaweed_config(self) -> seaweed.SeaweedConfig:
        access, secret = self.credentials()
        config = seaweed.SeaweedConfig(
            data_dir=self.root / "seaweed",
            s3_port=self._ports()["s3"],
            access_key=access,
            secret_key=secret,
            host=self.settings.host,
        )
        config.allocate_ports(base=self.settings.seaweed_base_port)
        return config

    # -- health -------------------------------------------------------------------------------
    def _healthy(self, service: str) -> bool:
        urls = self.urls()
        if service == "s3":
            return seaweed.s3_answers(urls["s3"])
        if service == "mlflow":
            return procs.http_ok(urls["mlflow"] + "/health")
        if service == "prefect-server":
            return procs.http_ok(urls["prefect-api"] + "/health")
        if service == "prefect-worker":
            return self._worker_online()
        raise ValueError(service)

    def _worker_online(self) -> bool:
        import urllib.request

        url = f"{self.urls()['prefect-api']}/work_pools/{self.settings.work_pool}/workers/filter"
        request = urllib.request.Request(  # noqa: S310 - loopback http
            url, data=b"{}", headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310
                workers = json.loads(response.read())
        except (OSError, ValueError):
            return False
        pid = self.state().get("pids", {}).get("prefect-worker")
        return procs.pid_alive(pid) and any(w.get("status") == "ONLINE" for w in workers)

    def is_running(self) -> bool:
        """True when any recorded service process is alive."""
        pids = self.state().get("pids", {})
        return any(procs.pid_alive(pid) for pid in pids.values())

    def status(self) -> list[ServiceStatus]:
        """Each service's PID, URL and health."""
        pids = self.state().get("pids", {})
        urls = self.urls()
        out = []
        for name in SERVICES:
            pid = pids.get(name)
            healthy = procs.pid_alive(pid) and self._healthy(name)
            url = urls.get(name, f"pool {self.settings.work_pool!r}")
            out.append(ServiceStatus(name, pid, url, healthy, self.log_file(name)))
        return out

    # -- up / down ----------------------------------------------------------------------------
    def up(self, echo: Callable[[str], None] = print) -> dict[str, str]:
        """Start every service that is not running, wait for health, save blocks, return URLs.

        Raises:
            procs.ServiceStartError: a port is busy or a service failed; names its log file.
        """
        state = self.state()
        pids: dict[str, int] = {
            k: v for k, v in state.get("pids", {}).items() if procs.pid_alive(v)
        }
        ports = (
            self._ports()
            if pids
            else {
                "s3": self.settings.s3_port,
                "mlflow": self.settings.mlflow_port,
                "prefect-server": self.settings.prefect_port,
            }
        )
        state = {
            "ports": ports,
            "pids": pids,
            "host": self.settings.host,
            "seaweed_ports": state.get("seaweed_ports") if "s3" in pids else None,
            "data_source": state.get("data_source") if "prefect-worker" in pids else None,
        }
        self._save_state(state)
        self._check_ports(pids)
        if "s3" not in pids:
            state["seaweed_ports"] = sorted(self._seaweed_config().all_ports().values())

        started: dict[str, Any] = {}
        for name in ("s3", "mlflow", "prefect-server"):
            if name in pids:
                echo(f"{name}: already running (pid {pids[name]})")
                continue
            echo(f"{name}: starting (log {self.log_file(name)})")
            started[name] = self._start(name)
            pids[name] = started[name].pid
            self._save_state(state)
        for name, process in started.items():
            procs.wait_until(
                lambda n=name: self._healthy(n),  # type: ignore[misc]
                timeout=self.settings.startup_timeout,
                service=name,
                log_file=self.log_file(name),
                process=process,
            )
            echo(f"{name}: healthy")
        self._configure()
        source = os.environ.get(DATA_SOURCE_ENV) or None
        if "prefect-worker" not in pids:
            echo(f"prefect-worker: starting on pool {self.settings.work_pool!r}")
            process = self._start("prefect-worker")
            pids["prefect-worker"] = process.pid
            state["data_source"] = source
            self._save_state(state)
            procs.wait_until(
                self._worker_online,
                timeout=self.settings.startup_timeout,
                service="prefect-worker",
                log_file=self.log_file("prefect-worker"),
                process=process,
            )
            echo("prefect-worker: online")
        else:
            echo(f"prefect-worker: already running (pid {pids['prefect-worker']})")
            if state.get("data_source") != source:
                echo(
                    f"prefect-worker: its {DATA_SOURCE_ENV} is {state.get('data_source')!r}, "
                    f"not {source!r}: restart it (bridgeai down && bridgeai up) to change it"
                )
        return self.urls()

    def data_source(self) -> str | None:
        """The ``BRIDGEAI_DATA_SOURCE`` the running worker's flow runs use (None: the default)."""
        value = self.state().get("data_source")
        return str(value) if value else None

    def _check_ports(self, running: dict[str, int]) -> None:
        ports = self._ports()
        checks = {name: [port] for name, port in ports.items() if name not in running}
        if "s3" not in running:
            checks["s3"] = list(self._seaweed_config().all_ports().values())
        for name, wanted in checks.items():
            busy = [p for p in wanted if not procs.port_is_free(p, self.settings.host)]
            if busy:
                raise procs.ServiceStartError(
                    f"{name} cannot start: port {', '.join(map(str, busy))} on "
                    f"{self.settings.host} is already in use by another process; stop it or set "
                    f"another port (BRIDGEAI_*_PORT); log file: {self.log_file(name)}"
                )

    def _start(self, name: str) -> Any:
        bindir = Path(sys.executable).parent
        urls = self.urls()
        log = self.log_file(name)
        if name == "s3":
            return seaweed.start(self._seaweed_config(), log, timeout=self.settings.startup_timeout)
        if name == "mlflow":
            from bridgeai.model.mlflow_store import prepare_sqlite_store

            storage = self.object_storage()
            backend = f"sqlite:///{self.root / 'mlflow' / 'mlflow.db'}"
            # --serve-artifacts: the server proxies artifacts under mlflow-artifacts:/
            prepare_sqlite_store(backend, artifact_root="mlflow-artifacts:/")
            command = [
                str(bindir / "mlflow"), "server",
                "--backend-store-uri", backend,
                "--artifacts-destination", f"s3://{storage.mlflow_bucket}",
                "--serve-artifacts",
                "--host", self.settings.host,
                "--port", str(self._ports()["mlflow"]),
                "--workers", "1",
            ]  # fmt: skip
            env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **storage.mlflow_s3_env()}
            return procs.start_process(command, log_file=log, env=env)
        if name == "prefect-server":
            command = [
                str(bindir / "prefect"), "server", "start",
                "--host", self.settings.host,
                "--port", str(self._ports()["prefect-server"]),
                "--analytics-off",
            ]  # fmt: skip
            return procs.start_process(command, log_file=log, env=self._prefect_env(server=True))
        if name == "prefect-worker":
            command = [
                str(bindir / "prefect"), "worker", "start",
                "--pool", self.settings.work_pool,
                "--type", "process",
                "--name", f"bridgeai-{self.settings.work_pool}-worker",
            ]  # fmt: skip
            env = {
                **self._prefect_env(server=False),
                "PREFECT_API_URL": urls["prefect-api"],
                # A run triggered from the UI or the CLI starts within 2 s, not up to 10 s (the
                # default poll); one query of a local server every 2 s costs nothing.
                "PREFECT_WORKER_QUERY_SECONDS": "2",
                # Its flow runs log to a file: MLflow's progress bars would only flood it.
                "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            }
            # Flow runs started by this worker ingest from the source the user configured
            # before `bridgeai up` (a run's `source` parameter overrides it).
            if os.environ.get(DATA_SOURCE_ENV):
                env[DATA_SOURCE_ENV] = os.environ[DATA_SOURCE_ENV]
            return procs.start_process(command, log_file=log, env=env)
        raise ValueError(name)

    def _prefect_env(self, server: bool) -> dict[str, str]:
        home = self.root / ("prefect" if server else "prefect-worker")
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "BRIDGEAI_HOME": str(self.root.parent),
        }
        if server:
            env["PREFECT_API_URL"] = ""
            # The UI asks /ui-settings where the API is; `--port` alone leaves it at 4200.
            env["PREFECT_UI_API_URL"] = self.urls()["prefect-api"]
        return env

    def object_storage(self) -> Any:
        """The ``ObjectStorage`` block that points at this stack's SeaweedFS."""
        from blocks import ObjectStorage

        access, secret = self.credentials()
        return ObjectStorage(
            endpoint_url=self.urls()["s3"],
            access_key_id=access,
            secret_access_key=SecretStr(secret),
        )

    def mlflow_server(self) -> Any:
        """The ``MLflowServer`` block that points at this stack's MLflow."""
        from blocks import MLflowServer

        return MLflowServer(tracking_uri=self.urls()["mlflow"])

    def _configure(self) -> None:
        """Create buckets, register block types, save the default blocks, create the pool."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from blocks import (
            DEFAULT_BLOCK_NAME,
            ContainerRegistry,
            DataRepository,
            MLflowServer,
            ObjectStorage,
            PredictionDatabase,
        )

        storage = self.object_storage()
        _retry(storage.ensure_buckets, attempts=20, delay=0.5)
        with temporary_settings({PREFECT_API_URL: self.urls()["prefect-api"]}):
            block_types = (
                ObjectStorage,
                MLflowServer,
                ContainerRegistry,
                DataRepository,
                PredictionDatabase,
            )
            for block_cls in block_types:
                block_cls.register_type_and_schema()
            storage.save(DEFAULT_BLOCK_NAME, overwrite=True)
            self.mlflow_server().save(DEFAULT_BLOCK_NAME, overwrite=True)
            # Kept when the user saved their own; the worker shares this $BRIDGEAI_HOME, so the
            # local data repository (no git remote) and the prediction log the local service
            # writes ($BRIDGEAI_DATABASE_URL, else SQLite) are the ones every flow run sees.
            for default in (ContainerRegistry(), DataRepository(), PredictionDatabase()):
                try:
                    type(default).load(DEFAULT_BLOCK_NAME)
                except ValueError:
                    default.save(DEFAULT_BLOCK_NAME)
            pool = WorkPoolCreate(name=self.settings.work_pool, type="process")
            with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
                client.create_work_pool(pool)

    def service_ports(self) -> dict[str, list[int]]:
        """The ports each service of the recorded stack listens on (the worker: none)."""
        state = self.state()
        ports = {k: int(v) for k, v in (state.get("ports") or {}).items()}
        out: dict[str, list[int]] = {name: [] for name in SERVICES}
        for name in ("mlflow", "prefect-server"):
            if name in ports:
                out[name] = [ports[name]]
        seaweed_ports = state.get("seaweed_ports")
        if seaweed_ports:
            out["s3"] = sorted(int(p) for p in seaweed_ports)
        elif "s3" in ports:
            out["s3"] = [ports["s3"]]
        return out

    def down(self, echo: Callable[[str], None] = print) -> list[int]:
        """Stop every service (the worker first), keeping all data; return the ports freed."""
        state = self.state()
        pids = state.get("pids", {})
        ports = self.service_ports()
        freed: list[int] = []
        if not self.is_running():
            echo("local stack: not running")
            return freed
        for name in reversed(SERVICES):
            if procs.stop_process(pids.get(name)):
                word = "port" if len(ports[name]) == 1 else "ports"
                listening = f"; {word} {format_ports(ports[name])}" if ports[name] else ""
                echo(f"{name}: stopped (pid {pids[name]}{listening})")
                freed += ports[name]
            else:
                echo(f"{name}: not running")
            pids.pop(name, None)
            self._save_state({**state, "pids": pids})
        return freed

    # -- environment for shells and notebooks --------------------------------------------------
    def env(self) -> dict[str, str]:
        """Variables that point ``mlflow``/``prefect``/``dvc``/``aws`` at what the flows use."""
        home = self.root.parent
        if not self.is_running():
            from blocks import MLflowServer

            return {"BRIDGEAI_HOME": str(home), **MLflowServer().env()}
        access, secret = self.credentials()
        urls = self.urls()
        return {
            "BRIDGEAI_HOME": str(home),
            "PREFECT_API_URL": urls["prefect-api"],
            "MLFLOW_TRACKING_URI": urls["mlflow"],
            "MLFLOW_S3_ENDPOINT_URL": urls["s3"],
            "AWS_ENDPOINT_URL": urls["s3"],
            "AWS_ACCESS_KEY_ID": access,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


def format_ports(ports: list[int]) -> str:
    """``[8333, 18330, 18331, 18332, 28337]`` as ``8333, 18330-18332, 28337``."""
    runs: list[list[int]] = []
    for port in sorted(set(ports)):
        if runs and port == runs[-1][-1] + 1:
            runs[-1].append(port)
        else:
            runs.append([port])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _retry(fn: Callable[[], Any], attempts: int, delay: float) -> Any:
    for attempt in range(attempts):
        try:
            return fn()
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(delay)
    return None
