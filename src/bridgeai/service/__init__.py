"""The prediction service: FastAPI over the OIP v2 model, logging every request durably.

``bridgeai serve`` runs :func:`main`; tests and embedding code build the app with
:func:`create_app`. See ``docs/prediction-service.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridgeai.service.app import create_app
    from bridgeai.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app", "main"]

_LAZY = {"create_app": "bridgeai.service.app", "ServiceSettings": "bridgeai.service.settings"}


def __getattr__(name: str) -> Any:
    # Lazy, so `bridgeai serve` can report a bad setting before FastAPI and SQLAlchemy load.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bridgeai.service' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def main(
    host: str = "127.0.0.1", port: int = 8000, settings: ServiceSettings | None = None
) -> None:
    """Run the service under uvicorn until SIGINT/SIGTERM, then flush the prediction log.

    Configuration errors (a bad ``BRIDGEAI_*`` value, a spool root that cannot be created or
    written) exit with status 2 and a one-line message instead of a traceback.

    Args:
        host: interface to bind.
        port: port to listen on.
        settings: process settings; read from ``BRIDGEAI_*`` environment variables if omitted.
    """
    import logging
    import sys

    from pydantic import ValidationError

    from bridgeai.service.settings import ServiceSettings
    from bridgeai.service.spool import ensure_root

    try:
        settings = settings or ServiceSettings()
        from bridgeai.service.app import create_app

        app = create_app(settings)
        ensure_root(settings.resolved_spool_dir())  # fail now, not inside uvicorn's lifespan
    except (ValidationError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    import uvicorn

    from bridgeai.service.protocol import deadline_protocol
    from bridgeai.serving.gc import tune_gc

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    tune_gc()  # the latency tail under load is the garbage collector's full passes
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        lifespan="on",  # a failed start-up must stop the process, not run it without its pools
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        server_header=False,
        # uvicorn bounds idle keep-alive connections only; these bound reading a request.
        http=deadline_protocol(settings.header_timeout, settings.read_timeout),
    )
