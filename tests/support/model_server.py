"""Model-server test helpers: a model directory with its identity, a registered model, a real
server process, and the independent computation the servers' answers are checked against."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bridgeai import procs
from bridgeai.model.house_price import HousePriceModel
from bridgeai.model.source import ModelInfo

MODEL_NAME = "house_price_prediction_prod"

#: The booster's columns and the codes its categoricals were trained with, written out here (not
#: taken from bridgeai.schema or the model's encoder) so expected prices are computed
#: independently of the code under test.
BOOSTER_COLUMNS = (
    "area", "bedrooms", "bathrooms", "stories", "mainroad", "guestroom", "basement",
    "hotwaterheating", "airconditioning", "parking", "prefarea", "furnishingstatus",
)  # fmt: skip
_YES_NO = {"no": 0.0, "yes": 1.0}
CATEGORY_CODES: dict[str, dict[str, float]] = {
    "mainroad": _YES_NO,
    "guestroom": _YES_NO,
    "basement": _YES_NO,
    "hotwaterheating": _YES_NO,
    "airconditioning": _YES_NO,
    "prefarea": _YES_NO,
    "furnishingstatus": {"furnished": 0.0, "semi-furnished": 1.0, "unfurnished": 2.0},
}


def reference_prices(model: HousePriceModel, houses: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Prices straight from the LightGBM booster on hand-encoded rows (log target: ``expm1``).

    For models without a linear baseline (as :func:`bridgeai.testing.models.tiny_model` trains).
    """
    assert model.baseline is None and model.target_transform == "log"
    booster = getattr(model.booster, "_booster", model.booster)  # a FastBooster's own booster
    assert tuple(booster.feature_name()) == BOOSTER_COLUMNS
    rows = [
        [
            CATEGORY_CODES[c][str(h[c]).strip().lower()] if c in CATEGORY_CODES else float(h[c])
            for c in BOOSTER_COLUMNS
        ]
        for h in houses
    ]
    raw = booster.predict(np.array(rows, dtype=np.float64), num_threads=1)
    return np.expm1(np.asarray(raw, dtype=np.float64))


def python_m_serving() -> list[str]:
    """``python -m bridgeai.serving``: what the model image runs."""
    return [sys.executable, "-m", "bridgeai.serving"]


def bridgeai_serve_model() -> list[str]:
    """The installed ``bridgeai serve-model`` command (``python -m bridgeai.cli`` without it)."""
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
class ModelServerProcess:
    """A real model server process on a fixed loopback port (restartable, pausable)."""

    model_uri: str
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=python_m_serving)
    port: int = field(default_factory=procs.free_port)
    process: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def infer_url(self, name: str = MODEL_NAME, version: str | None = None) -> str:
        middle = f"/versions/{version}" if version else ""
        return f"{self.url}/v2/models/{name}{middle}/infer"

    def start(self, timeout: float = 180.0) -> None:
        args = ["--model-uri", self.model_uri, "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = procs.start_process(
            [*self.command, *args], log_file=self.log_file, env=self.env
        )
        procs.wait_until(
            lambda: procs.http_ok(f"{self.url}/v2/health/ready"),
            timeout=timeout,
            service="model server",
            log_file=self.log_file,
            process=self.process,
        )

    def stop(self) -> None:
        if self.process is not None:
            procs.stop_process(self.process.pid)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a hung server)."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@contextmanager
def model_server(
    model_uri: str,
    log_file: Path,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    timeout: float = 180,
) -> Iterator[ModelServerProcess]:
    """Run a model server (``python -m bridgeai.serving`` unless ``command`` says otherwise) on a
    free loopback port until the block exits."""
    server = ModelServerProcess(
        model_uri, log_file, env=dict(env or {}), command=command or python_m_serving()
    )
    try:
        server.start(timeout=timeout)
        yield server
    finally:
        if server.process is not None:
            server.resume()
        server.stop()
