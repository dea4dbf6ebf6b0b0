"""The FastAPI app: ``create_app(settings)`` builds it, its lifespan owns the pools.

Routes: ``POST /predict`` and ``POST /predict/batch`` (the original's contract, plus model name,
version and request id), ``GET /health`` (liveness), ``GET /ready`` (database and model
reachable), ``GET /metrics`` (Prometheus). Swagger UI is at ``/swagger``, ReDoc at ``/api-docs``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field
from starlette.responses import Response

from bridgeai import __version__
from bridgeai.service import models, prediction, prediction_log
from bridgeai.service.errors import (
    BodyTooLarge,
    error_response,
    install_error_handlers,
    json_response,
)
from bridgeai.service.lane import PredictionLane
from bridgeai.service.metrics import MetricsMiddleware, ServiceMetrics
from bridgeai.service.security import ApiKeyMiddleware
from bridgeai.service.settings import ServiceSettings
from bridgeai.service.state import ServiceState, build_state

logger = logging.getLogger("bridgeai.service")

#: Bytes one house may take in a request body, generously (the example is ~250 bytes).
_BYTES_PER_HOUSE = 2048


async def get_state(request: Request) -> ServiceState:
    """The running service's state (a dependency; tests may override it).

    Async, like every dependency here: FastAPI runs plain ``def`` dependencies in a thread
    pool, which costs more than the whole prediction at high request rates.
    """
    return request.app.state.service  # type: ignore[no-any-return]


StateDep = Annotated[ServiceState, Depends(get_state)]


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": models.ErrorResponse, "description": "API key missing or wrong."},
    413: {"model": models.ErrorResponse, "description": "Body larger than any valid batch."},
    422: {"model": models.ErrorResponse, "description": "Invalid house: the fields are named."},
    502: {"model": models.ErrorResponse, "description": "The model server answered an error."},
    503: {
        "model": models.ErrorResponse,
        "description": "The model server is unreachable, or (durable mode) the prediction "
        "log's spool cannot be written: nothing is answered that cannot be logged.",
    },
}

router = APIRouter()


class Readiness(models.Readiness):
    """What ``/ready`` found: database, model and prediction-log spool must all be fine."""

    spool: models.ComponentStatus = Field(
        description="The prediction log's spool: writable, and no dead process's spool left "
        "to replay (durable mode)."
    )


@router.post(
    "/predict",
    response_model=models.PredictionResponse,
    responses=_ERRORS,
    summary="Predict one house's price",
    tags=["prediction"],
)
async def predict(house: models.House, request: Request, state: StateDep) -> Response:  # type: ignore[valid-type]
    """Price one house: the original's request and response, plus model and request id."""
    houses = [house.model_dump()]  # type: ignore[attr-defined]
    request_id, body = await prediction.predict(state, houses, request.scope["state"], batch=False)
    return Response(body, media_type="application/json", headers={"X-Request-ID": request_id})


@router.post(
    "/predict/batch",
    response_model=models.BatchPredictionResponse,
    responses=_ERRORS,
    summary="Predict many houses' prices in one call",
    tags=["prediction"],
)
async def predict_batch(batch: models.BatchRequest, request: Request, state: StateDep) -> Response:
    """Price up to ``BRIDGEAI_MAX_BATCH_ROWS`` houses with one model call, in request order."""
    prediction.check_batch_size(state, len(batch.houses))
    houses = [house.model_dump() for house in batch.houses]  # type: ignore[attr-defined]
    request_id, body = await prediction.predict(state, houses, request.scope["state"], batch=True)
    return Response(body, media_type="application/json", headers={"X-Request-ID": request_id})


@router.get(
    "/health",
    response_model=models.Health,
    responses={503: {"model": models.Health}},
    tags=["operations"],
)
async def health(state: StateDep) -> Response:
    """Liveness: the process answers and its prediction-log writer is running."""
    alive = state.writer.alive
    body = {"status": "ok" if alive else "log writer stopped", "log_writer_alive": alive}
    return json_response(200 if alive else 503, body)


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness}},
    tags=["operations"],
)
async def ready(state: StateDep) -> Response:
    """Readiness: the database answers ``SELECT 1``, the model server has the model, and the
    prediction log can store rows as ``BRIDGEAI_LOG_DURABILITY`` promises (in durable mode: the
    spool is writable and any spool a dead process left is replayed)."""
    timeout = state.settings.ready_timeout
    try:
        db_ok, db_detail = await asyncio.wait_for(
            asyncio.to_thread(state.writer.check_database), timeout
        )
    except TimeoutError:
        db_ok, db_detail = False, f"{state.writer.redacted_url} did not answer in {timeout:g}s"
    model_state = await state.model.state(timeout)
    try:
        spool_ok, spool_detail = await asyncio.wait_for(
            asyncio.to_thread(state.writer.check_spool), timeout
        )
    except TimeoutError:
        spool_ok, spool_detail = False, f"the spool did not answer a write in {timeout:g}s"
    ok = db_ok and model_state.ok and spool_ok
    body = {
        "ready": ok,
        "database": {"ok": db_ok, "detail": db_detail},
        "spool": {"ok": spool_ok, "detail": spool_detail},
        "model": {
            "ok": model_state.ok,
            "detail": model_state.detail,
            "url": state.model.base_url,
            "name": state.settings.model_name,
            "version": model_state.version,
        },
        "spool_depth": state.writer.spool_depth,
        "queue_depth": state.writer.queue_depth,
    }
    return json_response(200 if ok else 503, body)


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(state: StateDep) -> Response:
    """Prometheus metrics (text exposition format)."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class BodyLimitMiddleware:
    """Refuse (413) a body larger than the biggest valid batch could be.

    A declared ``Content-Length`` over the limit is refused before anything is read; a chunked
    body is counted as it arrives and refused when it crosses the limit (the error surfaces
    from ``receive``, so the lane and the routes answer it like any other domain error; FastAPI
    wraps it in a 400 ``HTTPException``, which :func:`error_response` unwraps).
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"Request body over {self.max_bytes} bytes; send fewer houses per request"
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_bytes:
                    await error_response(self._error(), scope)(scope, receive, send)
                    return
                await self.app(scope, receive, send)  # declared and within the limit
                return
        received = 0

        async def counting_receive() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._error()
            return message

        await self.app(scope, counting_receive, send)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the prediction service.

    Args:
        settings: process settings; read from ``BRIDGEAI_*`` environment variables if omitted.

    Raises:
        ValueError: ``BRIDGEAI_DATABASE_URL`` is not a PostgreSQL or SQLite URL.
    """
    settings = settings or ServiceSettings()
    prediction_log.sqlalchemy_url(settings.resolved_database_url())  # fail fast on a bad URL
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state(settings, metrics)
        # Connecting and migrating can block for the connect timeout: keep the loop free.
        await asyncio.to_thread(state.writer.start)
        try:
            metrics.writer = state.writer
            metrics.batcher = state.batcher
            await state.model.open()
            model_state = await state.model.state(settings.ready_timeout)
            logger.info(
                "prediction service up: model %s at %s (%s), prediction log %s (%s, spool %s)",
                settings.model_name,
                state.model.base_url,
                model_state.detail,
                state.writer.redacted_url,
                settings.log_durability,
                state.writer.spool.directory,
            )
            app.state.service = state
            yield
        finally:
            # Also on a failed start-up: the writer thread must not keep the process alive.
            await state.model.close()
            await asyncio.to_thread(state.writer.stop, settings.shutdown_timeout)
            logger.info(
                "prediction service stopped: %d log rows written, %d left in the spool",
                state.writer.rows_written,
                state.writer.spool_depth,
            )

    app = FastAPI(
        title="House price prediction API",
        description=(
            "Prices a house with the champion model served over the Open Inference Protocol "
            "v2, and logs every request to `prediction_logs` for drift monitoring."
        ),
        version=__version__,
        docs_url="/swagger",
        redoc_url="/api-docs",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(router)
    if settings.fast_lane:
        app.add_middleware(PredictionLane, fastapi_app=app, metrics=metrics)
    max_bytes = settings.max_batch_rows * _BYTES_PER_HOUSE + 64 * 1024
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes)
    if settings.api_key is not None and settings.api_key.get_secret_value():
        app.add_middleware(
            ApiKeyMiddleware,
            api_key=settings.api_key.get_secret_value(),
            header=settings.api_key_header,
        )
    # Added last, so outermost: counts 401s and 413s too.
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, settings: ServiceSettings) -> dict[str, Any]:
    """FastAPI's schema plus what depends on settings: the batch limit and the API key."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    batch = schema["components"]["schemas"]["BatchRequest"]["properties"]["houses"]
    batch["maxItems"] = settings.max_batch_rows
    if settings.api_key is not None and settings.api_key.get_secret_value():
        schema["components"]["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": settings.api_key_header}
        }
        for path in ("/predict", "/predict/batch"):
            schema["paths"][path]["post"]["security"] = [{"ApiKey": []}]
    app.openapi_schema = schema
    return schema
