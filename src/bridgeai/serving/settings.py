"""The model server's process knobs, read from ``BRIDGEAI_MODEL_SERVER_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridgeai.model import CHAMPION_URI


class ModelServerSettings(BaseSettings):
    """Process knobs of the model server (environment prefix ``BRIDGEAI_MODEL_SERVER_``)."""

    model_config = SettingsConfigDict(env_prefix="BRIDGEAI_MODEL_SERVER_", protected_namespaces=())

    model_uri: str = Field(
        default=CHAMPION_URI,
        description="Model directory, file:// URI, models:/<name>@<alias|version> or runs:/ URI.",
    )
    model_name: str | None = Field(
        default=None, description="Name to serve under (default: the registered model name)."
    )
    host: str = Field(default="127.0.0.1", description="Interface to bind.")
    port: int = Field(default=8080, description="Port to listen on.")
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    access_log: bool = Field(default=True, description="One JSON log line per request.")
    batch_rows: int = Field(
        default=2048, ge=1, description="Requests with this many rows use batch_threads."
    )
    batch_threads: int = Field(
        default=1, ge=1, description="LightGBM threads for batches of batch_rows or more."
    )
    chunk_rows: int = Field(
        default=16384, ge=256, description="Rows encoded per step while the previous predicts."
    )
    offload_bytes: int = Field(
        default=65536, description="Bodies this large are decoded off the event loop."
    )
    max_body_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1, description="Larger request bodies get 413."
    )
    workers: int = Field(
        default=1, ge=1, description="Worker processes, each loading the model once."
    )
    grpc_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve OIP v2 gRPC on this port (off if unset)."
    )
    metrics: bool = Field(default=True, description="Count requests for GET /metrics.")
    metrics_dir: Path | None = Field(
        default=None,
        description="Where workers share their counts (set by the server for --workers > 1).",
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a client may take to send a request's headers."
    )
    read_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a client may take to send a request's body."
    )
