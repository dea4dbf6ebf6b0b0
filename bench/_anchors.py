"""The anchors of ``bench_model_server.py``: other servers, each in its own venv, on the same model.

Each anchor runs with its documented best single-process settings (``Server.settings`` says
which; ``Server.docs`` is where they are documented) and LightGBM with the same thread count as
ours (``OMP_NUM_THREADS``, and ``num_threads`` where the anchor code is ours to write):

* ``mlserver-mlflow``: MLServer 1.7 with its MLflow runtime on the registered MLflow model (the
  original system's path), receiving exactly what ours receives (the original client's v2 body).
* ``mlserver-lightgbm``: MLServer with its LightGBM runtime on the trained booster file.
* ``kserve``: KServe's Python ``ModelServer`` with a ``kserve.Model`` around that booster
  (``_kserve_model.py``; the kserve wheel has no LightGBM server of its own).
* ``mlflow-serve``: ``mlflow models serve`` (uvicorn, one worker, this project's environment).

The two booster-only anchors get one pre-encoded FP64 tensor ``[N, 12]`` and return the booster's
raw score: less work than ours (named BYTES and INT64 inputs, categorical encoding and imputation,
the ridge baseline, the target transform); the report says so beside their figures.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from _common import BENCH

MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-mlflow==1.7.1", "mlserver-lightgbm==1.7.1"]
KSERVE_PINS = ["kserve==0.21.0"]
#: uvicorn picks httptools when it is installed (``uvicorn[standard]``); MLServer does not
#: depend on it, so it is added to give MLServer the same HTTP parser as the others.
FAST_HTTP = ["httptools"]

MLSERVER_DOCS = (
    "https://mlserver.readthedocs.io/en/latest/user-guide/parallel-inference.html "
    '("Managing the Inter-Process Communication (IPC) between the main MLServer process and '
    'the inference pool workers brings in some overhead"; parallel_workers=0 keeps inference '
    "in the server process) and https://mlserver.readthedocs.io/en/latest/reference/"
    "settings.html (debug: uvicorn access log; metrics_endpoint: None disables it; "
    "gzip_enabled)"
)
MLSERVER_SETTINGS = (
    "parallel_workers=0 (inference in the server process, no IPC), debug=false (no access "
    "log), metrics_endpoint=null (no metrics server or middleware), gzip_enabled=false, "
    "uvloop + httptools"
)
KSERVE_DOCS = (
    "https://kserve.github.io/website/docs/reference/python-runtime-sdk/python-runtime-sdk-api "
    '(ModelServer: "workers: Number of uvicorn workers. Default: 1", "enable_grpc: Whether to '
    'turn on grpc server", "enable_latency_logging: Whether to log latency metric. Default: '
    "True\") and KServe's custom-model docs (a kserve.Model with load/predict)"
)
KSERVE_SETTINGS = (
    "ModelServer(workers=1, enable_grpc=False, enable_latency_logging=False, "
    "enable_docs_url=False), uvicorn access log off, sync predict, uvloop + httptools"
)
MLFLOW_SETTINGS = "-w 1 --env-manager local (uvicorn, this project's environment)"
MLFLOW_DOCS = "https://mlflow.org/docs/latest/cli.html#mlflow-models-serve"


@dataclass
class Server:
    """How to start one server and talk to it."""

    key: str
    label: str
    command: list[str]
    port: int
    ready_path: str
    infer_path: str
    single: bytes
    batch: bytes
    parse: Callable[[bytes], np.ndarray]
    #: "prices" (the full model) or "raw" (the booster's raw score, pre-encoded input).
    output: str
    settings: str
    docs: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    @property
    def booster_only(self) -> bool:
        return self.output == "raw"


# -- request bodies ----------------------------------------------------------------------------
def tensor_body(matrix: np.ndarray) -> bytes:
    """One pre-encoded FP64 tensor ``[N, 12]``: what the booster-only anchors receive."""
    doc = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(matrix.shape),
                "datatype": "FP64",
                "data": matrix.ravel().tolist(),
            }
        ]
    }
    return orjson.dumps(doc)


def v2_outputs(payload: bytes) -> np.ndarray:
    doc = orjson.loads(payload)
    return np.asarray(doc["outputs"][0]["data"], dtype=np.float64).reshape(-1)


def mlflow_predictions(payload: bytes) -> np.ndarray:
    return np.asarray(orjson.loads(payload)["predictions"], dtype=np.float64).reshape(-1)


# -- servers -----------------------------------------------------------------------------------
def mlserver(
    runtime: str,
    bin_dir: Path,
    work: Path,
    *,
    port: int,
    grpc_port: int,
    metrics_port: int,
    model_name: str,
    uri: Path,
    threads: int,
    single: bytes,
    batch: bytes,
) -> Server:
    """MLServer with one model (``runtime`` ``mlflow`` or ``lightgbm``) in its own repository."""
    repo = work / f"mlserver-{runtime}"
    model = repo / model_name
    model.mkdir(parents=True, exist_ok=True)
    implementation = {
        "mlflow": "mlserver_mlflow.MLflowRuntime",
        "lightgbm": "mlserver_lightgbm.LightGBMModel",
    }[runtime]
    (model / "model-settings.json").write_text(
        json.dumps(
            {"name": model_name, "implementation": implementation, "parameters": {"uri": str(uri)}}
        )
    )
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": 0,
        "debug": False,
        "metrics_endpoint": None,
        "gzip_enabled": False,
        "load_models_at_startup": True,
    }
    (repo / "settings.json").write_text(json.dumps(settings))
    booster = runtime == "lightgbm"
    return Server(
        key=f"mlserver-{runtime}",
        label=f"MLServer 1.7.1, {'LightGBM' if booster else 'MLflow'} runtime",
        command=[str(bin_dir / "mlserver"), "start", str(repo)],
        port=port,
        ready_path=f"/v2/models/{model_name}/ready",
        infer_path=f"/v2/models/{model_name}/infer",
        single=single,
        batch=batch,
        parse=v2_outputs,
        output="raw" if booster else "prices",
        settings=MLSERVER_SETTINGS,
        docs=MLSERVER_DOCS,
        env={"OMP_NUM_THREADS": str(threads)},
        cwd=repo,
    )


def kserve(
    bin_dir: Path,
    *,
    port: int,
    model_name: str,
    model_dir: Path,
    threads: int,
    single: bytes,
    batch: bytes,
) -> Server:
    command = [
        str(bin_dir / "python"), str(BENCH / "_kserve_model.py"), "--model_dir", str(model_dir),
        "--model_name", model_name, "--http_port", str(port), "--threads", str(threads),
    ]  # fmt: skip
    return Server(
        key="kserve",
        label="KServe 0.21.0 ModelServer, kserve.Model around the booster",
        command=command,
        port=port,
        ready_path=f"/v2/models/{model_name}/ready",
        infer_path=f"/v2/models/{model_name}/infer",
        single=single,
        batch=batch,
        parse=v2_outputs,
        output="raw",
        settings=KSERVE_SETTINGS,
        docs=KSERVE_DOCS,
        env={"OMP_NUM_THREADS": str(threads)},
    )


def mlflow_serve(*, port: int, model_uri: str, threads: int, single: bytes, batch: bytes) -> Server:
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    command = [
        mlflow_bin, "models", "serve", "-m", model_uri, "-h", "127.0.0.1", "-p", str(port),
        "-w", "1", "--env-manager", "local",
    ]  # fmt: skip
    return Server(
        key="mlflow-serve",
        label="mlflow models serve (pyfunc)",
        command=command,
        port=port,
        ready_path="/ping",
        infer_path="/invocations",
        single=single,
        batch=batch,
        parse=mlflow_predictions,
        output="prices",
        settings=MLFLOW_SETTINGS,
        docs=MLFLOW_DOCS,
        env={"OMP_NUM_THREADS": str(threads)},
    )
