"""Where BridgeAI keeps its local state.

Everything the project writes on the local machine lives under one folder, ``$BRIDGEAI_HOME``
(default: ``.bridgeai/`` in the working directory). Embedded mode keeps its object storage, MLflow
store, data repository and DVC cache there; the local stack keeps its servers' data, logs and PID
files there. Nothing is created at import time: callers ask for a folder and get it created.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "BRIDGEAI_HOME"
DEFAULT_HOME = ".bridgeai"


def bridgeai_home() -> Path:
    """Return the absolute state folder: ``$BRIDGEAI_HOME`` or ``./.bridgeai``."""
    raw = os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(raw).expanduser().resolve()


def home_dir(*parts: str, create: bool = True) -> Path:
    """Return ``$BRIDGEAI_HOME/<parts>``, creating it unless ``create`` is false."""
    path = bridgeai_home().joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_mlflow_uri() -> str:
    """The embedded MLflow store (SQLite under ``$BRIDGEAI_HOME/mlflow``), used when none is set."""
    return f"sqlite:///{home_dir('mlflow') / 'mlflow.db'}"
