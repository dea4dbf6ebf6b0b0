"""Model-server test helpers: a model directory with its identity, a registered model, a server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridgeai import procs
from bridgeai.model.house_price import HousePriceModel
from bridgeai.model.source import ModelInfo

MODEL_NAME = "house_price_prediction_prod"


def serve_command() -> list[str]:
    """The installed ``bridgeai serve-model`` entrypoint (the one the image runs)."""
    script = Path(sys.executable).with_name("bridgeai")
    if script.is_file():
        return [str(script), "serve-model"]
    return [sys.executable, "-m", "bridgeai.cli", "serve-model"]


def save_with_info(model: HousePriceModel, directory: Path, **info: Any) -> Path:
    """Save ``model`` to ``directory`` with a ``model-info.json`` (as an image bakes it)."""
    model.save(directory)
    ModelInfo(**info).write(directory)
    return directory


@dataclass
class RegisteredModel:
    tracking_uri: str
    version: str
    run_id: str


def register(model: HousePriceModel, alias: str = "champion") -> RegisteredModel:
    """Log ``model`` with the project's pyfunc into the embedded MLflow and register it.

    Uses ``blocks.MLflowServer()`` (the per-test ``$BRIDGEAI_HOME`` store). Callers should
    ``monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)`` first: the block exports it.
    """
    import mlflow

    from blocks import MLflowServer
    from bridgeai.model.mlflow_client import fluent
    from bridgeai.model.pyfunc import log_model

    server = MLflowServer()
    client = server.client()
    experiment_id = server.ensure_experiment(client)
    with (
        fluent(server.resolved_tracking_uri()),
        mlflow.start_run(experiment_id=experiment_id) as run,
    ):
        logged = log_model(model, registered_model_name=server.registered_model)
    version = str(logged.registered_model_version)
    client.set_registered_model_alias(server.registered_model, alias, version)
    return RegisteredModel(server.resolved_tracking_uri(), version, run.info.run_id)


@dataclass
class RunningServer:
    url: str
    port: int
    pid: int
    log_file: Path

    def infer_url(self, name: str = MODEL_NAME, version: str | None = None) -> str:
        middle = f"/versions/{version}" if version else ""
        return f"{self.url}/v2/models/{name}{middle}/infer"


@contextmanager
def model_server(
    model_uri: str, log_file: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> Iterator[RunningServer]:
    """Run ``bridgeai serve-model`` on a free loopback port until the block exits."""
    port = procs.free_port()
    command = [
        *serve_command(),
        "--model-uri",
        model_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = procs.start_process(command, log_file=log_file, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        procs.wait_until(
            lambda: procs.http_ok(f"{url}/v2/health/ready"),
            timeout=timeout,
            service="model server",
            log_file=log_file,
            process=process,
        )
        yield RunningServer(url=url, port=port, pid=process.pid, log_file=log_file)
    finally:
        procs.stop_process(process.pid)
