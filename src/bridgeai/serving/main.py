"""The model server's entrypoint: ``python -m bridgeai.serving`` and ``bridgeai serve-model``.

Both take ``--model-uri``, ``--host`` and ``--port`` and call :func:`main`; the other knobs are
``BRIDGEAI_MODEL_SERVER_*`` environment variables
(:class:`~bridgeai.serving.settings.ModelServerSettings`).
The model image runs ``python -m bridgeai.serving``: it needs nothing of ``bridgeai`` beyond what
the server imports (no CLI, no typer). Options may repeat; the last one wins, so
``docker run IMAGE --port 9000`` overrides the image's ``--port 8080``.

Start-up stays short: no Prefect, and MLflow is imported only when the model URI needs it.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from bridgeai.model import CHAMPION_URI
from bridgeai.model.source import ModelSourceError
from bridgeai.serving.gc import tune_gc
from bridgeai.serving.logs import configure_logging
from bridgeai.serving.settings import ModelServerSettings

logger = logging.getLogger("bridgeai.serving.app")


def main(model_uri: str = CHAMPION_URI, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Load the model and serve it until interrupted (one uvicorn worker).

    Exits with status 2 and a one-line message when the model cannot be loaded.
    """
    import uvicorn

    from bridgeai.serving.app import create_app, load_model

    settings = ModelServerSettings(model_uri=model_uri, host=host, port=port)
    configure_logging(settings.log_level)
    try:
        served = load_model(settings)
    except ModelSourceError as exc:
        logger.error("cannot load the model: %s", exc)
        raise SystemExit(2) from None
    logger.info("serving", extra={"fields": {"host": host, "port": port, "pid": os.getpid()}})
    app = create_app(settings, served)
    tune_gc()  # the latency tail under load is the garbage collector's full passes
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=1,
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=30,
        backlog=2048,
    )


def cli(argv: Sequence[str] | None = None) -> None:
    """``python -m bridgeai.serving [--model-uri URI] [--host HOST] [--port PORT]``."""
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
    args = parser.parse_args(argv)
    main(model_uri=args.model_uri, host=args.host, port=args.port)
