"""Fixtures of the conformance tests: the real model server and the real prediction service,
checked by tools nobody here wrote (schemathesis, tritonclient, KServe's client).

The model server is ``python -m bridgeai.serving`` (the image's entrypoint) serving a tiny
LightGBM model, with gRPC on its own port; the service runs under uvicorn against it, logging
to SQLite, with an API key so that schemathesis' authentication checks have something to check.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgeai import procs
from bridgeai.model.house_price import HousePriceModel
from bridgeai.testing.models import tiny_model
from tests.support.env import require
from tests.support.model_server import ModelServerProcess, save_with_info
from tests.support.service import API_KEY, RunningService, run_service, service_settings


@pytest.fixture(scope="session")
def model() -> HousePriceModel:
    """The served model, in-process: what every answer is compared with."""
    return tiny_model()


@pytest.fixture(scope="session")
def grpc_port() -> int:
    return procs.free_port()


@pytest.fixture(scope="session")
def model_server(
    model: HousePriceModel, grpc_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelServerProcess]:
    """A real model server (REST and gRPC) serving ``model`` as registry version 7."""
    root = tmp_path_factory.mktemp("conformance-model")
    model_dir = save_with_info(model, root / "model", version="7", run_id="0123456789abcdef")
    env = {
        "BRIDGEAI_MODEL_SERVER_ACCESS_LOG": "false",
        "BRIDGEAI_MODEL_SERVER_GRPC_PORT": str(grpc_port),
    }
    server = ModelServerProcess(str(model_dir), root / "server.log", env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def service(
    model_server: ModelServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """The prediction service in front of that model server, with an API key."""
    root = tmp_path_factory.mktemp("conformance-service")
    settings = service_settings(
        model_server.url,
        f"sqlite:///{root / 'predictions.db'}",
        root / "spool",
        api_key=API_KEY,
        max_batch_rows=20,
    )
    with run_service(settings) as running:
        yield running


@pytest.fixture(scope="session")
def schemathesis_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("schemathesis")


#: KServe's Python SDK, installed from PyPI into its own virtualenv: it pins protobuf, grpcio,
#: fastapi, kubernetes and more, so it cannot share the project's environment.
KSERVE = "kserve==0.21.0"
_VENVS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bridgeai" / "venvs"


def _client_venv(requirement: str) -> Path | None:
    """A virtualenv with ``requirement`` installed, made once and cached; None if it cannot be
    made here (no package index)."""
    root = _VENVS / requirement.replace("=", "-")
    python = root / "bin" / "python"
    stamp = root / ".installed"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # sessions sharing the cache make it once
        if stamp.is_file():
            return python
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
        result = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                requirement,
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if result.returncode != 0:
            sys.stderr.write(result.stderr[-3000:])
            shutil.rmtree(root, ignore_errors=True)
            return None
        stamp.write_text(requirement + "\n")
    return python


@pytest.fixture(scope="session")
def kserve_python() -> Path:
    """The Python of a virtualenv with KServe's SDK (built from PyPI on first use)."""
    python = _client_venv(KSERVE)
    require(python is not None, f"a virtualenv with {KSERVE} from the package index")
    assert python is not None
    return python
