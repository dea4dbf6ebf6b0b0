"""The model server's entrypoint: ``python -m bridgeai.serving`` and ``bridgeai serve-model``.

Both take ``--model-uri``, ``--host``, ``--port``, ``--workers`` and ``--grpc-port`` and call
:func:`main`; the other knobs are ``BRIDGEAI_MODEL_SERVER_*`` environment variables
(:class:`~bridgeai.serving.settings.ModelServerSettings`).
The model image runs ``python -m bridgeai.serving``: it needs nothing of ``bridgeai`` beyond what
the server imports (no CLI, no typer). Options may repeat; the last one wins, so
``docker run IMAGE --port 9000`` overrides the image's ``--port 8080``.

With ``--workers N`` (N > 1) uvicorn's supervisor binds the port once and starts N worker
processes that accept on it; each loads the model once (from a directory the supervisor
downloaded once, for a registry URI), runs its own gRPC server on the shared gRPC port
(``SO_REUSEPORT``), and shares its metrics counts through a private directory
(:mod:`bridgeai.serving.metrics`). A worker that dies is replaced.

Start-up stays short: no Prefect, and MLflow is imported only when the model URI needs it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridgeai.model import CHAMPION_URI
from bridgeai.model.source import ModelSourceError
from bridgeai.serving.gc import tune_gc
from bridgeai.serving.logs import configure_logging
from bridgeai.serving.settings import ModelServerSettings

logger = logging.getLogger("bridgeai.serving.app")

_ENV = "BRIDGEAI_MODEL_SERVER_"


def _uvicorn_options(settings: ModelServerSettings) -> dict[str, Any]:
    from bridgeai.serving.protocol import TimedHttpToolsProtocol

    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "log_level": settings.log_level,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "timeout_keep_alive": 30,
        "backlog": 2048,
        "http": TimedHttpToolsProtocol,
    }


def main(
    model_uri: str = CHAMPION_URI,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int | None = None,
    grpc_port: int | None = None,
) -> None:
    """Load the model and serve it until interrupted.

    ``workers`` and ``grpc_port`` default to ``BRIDGEAI_MODEL_SERVER_WORKERS`` (1) and
    ``BRIDGEAI_MODEL_SERVER_GRPC_PORT`` (unset: no gRPC). Exits with status 2 and a one-line
    message when the model cannot be loaded.
    """
    overrides: dict[str, Any] = {"model_uri": model_uri, "host": host, "port": port}
    if workers is not None:
        overrides["workers"] = workers
    if grpc_port is not None:
        overrides["grpc_port"] = grpc_port
    settings = ModelServerSettings(**overrides)
    configure_logging(settings.log_level)
    if settings.workers > 1:
        _serve_workers(settings)
        return
    import uvicorn

    from bridgeai.serving.app import create_app, load_model

    try:
        served = load_model(settings)
    except ModelSourceError as exc:
        logger.error("cannot load the model: %s", exc)
        raise SystemExit(2) from None
    fields = {"host": host, "port": port, "pid": os.getpid(), "grpc_port": settings.grpc_port}
    logger.info("serving", extra={"fields": fields})
    app = create_app(settings, served)
    tune_gc()  # the latency tail under load is the garbage collector's full passes
    uvicorn.run(app, workers=1, **_uvicorn_options(settings))


def _serve_workers(settings: ModelServerSettings) -> None:
    """Run ``settings.workers`` uvicorn workers on one port (see the module docstring)."""
    import uvicorn

    from bridgeai.model import source as model_source
    from bridgeai.serving.app import load_model

    scratch = Path(tempfile.mkdtemp(prefix="bridgeai-model-server-"))
    try:
        model_uri = settings.model_uri
        try:
            if model_source.is_registry_uri(model_uri):  # download once, for every worker
                model_dir, _ = model_source.fetch(model_uri, scratch / "model")
                model_uri = str(model_dir)
            load_model(settings.model_copy(update={"model_uri": model_uri})).close()
        except ModelSourceError as exc:
            logger.error("cannot load the model: %s", exc)
            raise SystemExit(2) from None
        metrics_dir = scratch / "metrics"
        metrics_dir.mkdir()
        # The workers are new interpreters (spawned): they read their settings from here.
        os.environ[_ENV + "MODEL_URI"] = model_uri
        os.environ[_ENV + "METRICS_DIR"] = str(metrics_dir)
        os.environ[_ENV + "HOST"] = settings.host
        os.environ[_ENV + "PORT"] = str(settings.port)
        if settings.grpc_port is not None:
            os.environ[_ENV + "GRPC_PORT"] = str(settings.grpc_port)
        fields = {
            "host": settings.host,
            "port": settings.port,
            "workers": settings.workers,
            "grpc_port": settings.grpc_port,
            "pid": os.getpid(),
        }
        logger.info("serving", extra={"fields": fields})
        uvicorn.run(
            "bridgeai.serving.main:worker_app",
            factory=True,
            workers=settings.workers,
            **_uvicorn_options(settings),
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def worker_app() -> Any:
    """One worker's application (uvicorn's factory, called in the worker process)."""
    from bridgeai.serving.app import create_app, load_model

    settings = ModelServerSettings(workers=1)
    configure_logging(settings.log_level)
    # uvicorn silenced its access logger before calling this factory; keep it so (ours is
    # the batched access log).
    logging.getLogger("uvicorn.access").propagate = False
    served = load_model(settings)
    app = create_app(settings, served)
    tune_gc()
    return app


def cli(argv: Sequence[str] | None = None) -> None:
    """``python -m bridgeai.serving [--model-uri URI] [--host HOST] [--port PORT] [--workers N]
    [--grpc-port PORT]``."""
    parser = argparse.ArgumentParser(
        prog="python -m bridgeai.serving",
        description="Serve the house-price model over the Open Inference Protocol v2.",
    )
    parser.add_argument(
        "--model-uri",
        default=CHAMPION_URI,
        help="models:/ URI, runs:/ URI or a model directory (default: %(default)s).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind.")
    parser.add_argument("--port", type=int, default=8080, help="Port to listen on.")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Worker processes, each loading the model once (default: 1).",
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=None,
        help="Also serve OIP v2 over gRPC on this port (default: no gRPC).",
    )
    args = parser.parse_args(argv)
    main(
        model_uri=args.model_uri,
        host=args.host,
        port=args.port,
        workers=args.workers,
        grpc_port=args.grpc_port,
    )
