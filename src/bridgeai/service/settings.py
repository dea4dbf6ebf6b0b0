"""The prediction service's process settings, read from ``BRIDGEAI_*`` environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridgeai import procs
from bridgeai.model import REGISTERED_MODEL
from bridgeai.paths import home_dir

MODEL_NAME = REGISTERED_MODEL
#: Where no model server is recorded: ``bridgeai serve-model``'s default port.
DEFAULT_MODEL_URL = "http://127.0.0.1:8080"
#: What :mod:`bridgeai.deploy.local` records (the service may not import it: stages are
#: independent), read here so that ``bridgeai serve`` needs no URL copied by hand.
_SERVING = "serving"


def discovered_model_url() -> str:
    """The model server this ``$BRIDGEAI_HOME`` runs, else :data:`DEFAULT_MODEL_URL`.

    First the local target's server (``deploy_model(target="local")``, ``bridgeai demo
    --serve``); else the newest ``bridgeai serve-model`` started by hand here.
    """
    deployed = _alive_url(home_dir(_SERVING, create=False) / "model-server.json")
    if deployed:
        return deployed
    folder = home_dir(_SERVING, "processes", create=False)
    by_hand = sorted(folder.glob("model-server-*.json"), key=_mtime) if folder.is_dir() else []
    for path in reversed(by_hand):
        url = _alive_url(path)
        if url:
            return url
    return DEFAULT_MODEL_URL


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _alive_url(record: Path) -> str | None:
    try:
        doc = json.loads(record.read_text())
        pid, host, port = int(doc["pid"]), str(doc["host"]), int(doc["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"http://{host}:{port}" if procs.pid_alive(pid) else None


class ServiceSettings(BaseSettings):
    """Configuration of one prediction-service process.

    Every field is read from the environment with the ``BRIDGEAI_`` prefix, for example
    ``BRIDGEAI_MODEL_URL``, ``BRIDGEAI_DATABASE_URL``, ``BRIDGEAI_API_KEY`` or
    ``BRIDGEAI_MAX_BATCH_ROWS``. Secrets (the API key and the database URL, which may carry a
    password) are :class:`~pydantic.SecretStr`, so they never appear in a repr or a log line.
    """

    model_config = SettingsConfigDict(env_prefix="BRIDGEAI_", extra="ignore")

    model_url: str = Field(
        default_factory=discovered_model_url,
        description="Base URL of the OIP v2 model server (`bridgeai serve-model`, or KServe); "
        "default: the local model server recorded in $BRIDGEAI_HOME/serving (started by "
        "`deploy_model(target='local')` or `bridgeai demo --serve`), else "
        f"{DEFAULT_MODEL_URL}.",
    )
    model_name: str = Field(MODEL_NAME, description="Model name on the v2 server.")
    database_url: SecretStr | None = Field(
        None,
        description="postgresql://user:password@host:port/db or sqlite:///file.db; "
        "default: a SQLite file under $BRIDGEAI_HOME/service.",
    )
    api_key: SecretStr | None = Field(
        None, description="When set, /predict* requires it in the API-key header."
    )
    api_key_header: str = Field("X-API-Key", description="Header carrying the API key.")
    max_batch_rows: int = Field(1000, ge=1, le=100_000, description="Rows per /predict/batch.")

    model_timeout: float = Field(5.0, gt=0, description="Seconds one model call may take.")
    model_retries: int = Field(
        2, ge=0, le=10, description="Extra attempts when the model server cannot be reached."
    )
    model_retry_backoff: float = Field(
        0.05, ge=0, description="First retry delay in seconds; doubles per attempt (jittered)."
    )
    model_max_connections: int = Field(
        64, ge=1, description="Pooled keep-alive connections to the model server."
    )
    model_batch_rows: int = Field(
        64,
        ge=1,
        description="Most rows one coalesced model call carries; 1 turns dynamic batching off.",
    )
    model_batch_wait: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Seconds to wait for more requests to share a model call; 0 coalesces "
        "only requests that arrive together (adds no latency).",
    )

    log_durability: Literal["durable", "async"] = Field(
        "durable",
        description="durable: answer /predict* only once the request's log rows are fsync'd "
        "to the spool (group commit; nothing acknowledged is lost, even by SIGKILL). async: "
        "answer at once and write the rows in the background (a SIGKILL or power loss loses "
        "up to BRIDGEAI_LOG_FLUSH_INTERVAL of rows).",
    )
    log_commit_window: float = Field(
        0.0,
        ge=0,
        le=0.1,
        description="durable mode: seconds the group commit waits for more rows before its "
        "fsync; 0 groups the rows that arrive while the previous fsync runs.",
    )
    log_batch_size: int = Field(500, ge=1, description="Rows per database insert.")
    log_flush_interval: float = Field(
        0.1, gt=0, description="Longest wait in seconds before queued rows are written."
    )
    log_queue_limit: int = Field(
        50_000,
        ge=1,
        description="async mode: rows held in memory before they go to the disk spool.",
    )
    spool_dir: Path | None = Field(
        None,
        description="Root of the write-ahead spool; default $BRIDGEAI_HOME/service/spool. Each "
        "process makes its own directory in it and adopts those of dead processes.",
    )
    db_connect_timeout: float = Field(3.0, gt=0, description="Seconds to connect to the DB.")
    db_retry_interval: float = Field(
        1.0, gt=0, description="Seconds between reconnection attempts while the DB is down."
    )
    shutdown_timeout: float = Field(
        30.0, gt=0, description="Seconds a clean shutdown may spend flushing log rows."
    )
    ready_timeout: float = Field(2.0, gt=0, description="Seconds each /ready check may take.")
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client may take to send a request's headers (from connecting, "
        "or from the request's first byte); later: 408 and the connection closed.",
    )
    read_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a client may take to send a request's body after its headers; "
        "later: 408 and the connection closed.",
    )

    fast_lane: bool = Field(
        True,
        description="Serve /predict and /predict/batch from a lean ASGI lane (same validation, "
        "responses and errors as the FastAPI routes, about half the CPU per request).",
    )
    log_level: str = Field("info", description="uvicorn log level.")
    access_log: bool = Field(False, description="uvicorn access log (costs CPU under load).")

    @field_validator("model_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                f"BRIDGEAI_MODEL_URL must be the model server's http(s) base URL, got {value!r}"
            )
        return value.rstrip("/")

    def resolved_database_url(self) -> str:
        """The configured database URL, or embedded mode's SQLite file."""
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        from bridgeai.service.prediction_log import default_database_url

        return default_database_url()

    def resolved_spool_dir(self) -> Path:
        """The spool root (created on first use by the service)."""
        return self.spool_dir or home_dir("service", "spool", create=False)
