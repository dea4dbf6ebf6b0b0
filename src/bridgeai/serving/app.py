"""The model server: the house-price model over the Open Inference Protocol (KServe v2) REST API.

``bridgeai serve-model --model-uri ... --host ... --port ...`` (and the model image's entrypoint)
runs :func:`main`. Endpoints: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2``,
``/v2/models/{name}``, ``/v2/models/{name}/ready``, ``POST /v2/models/{name}/infer``, and the
``/v2/models/{name}/versions/{version}/...`` variants. Errors are ``{"error": "..."}`` with 400
(bad request: the message names the input and what is wrong), 404 (unknown model or version),
413 (body too large) or 500.

The hot path is lean on purpose: Starlette routing, orjson, the hand-written codec in
:mod:`bridgeai.serving.codec` and :class:`bridgeai.model.house_price.HousePriceModel` directly
(never MLflow's pyfunc, which costs ~10 ms a call), LightGBM with one thread for small batches
(its idle OpenMP threads spin and slow single rows down). Large requests are decoded and
predicted off the event loop, in chunks: encoding chunk k+1 overlaps LightGBM predicting chunk k,
which releases the GIL.

Start-up stays short: no Prefect, and MLflow is imported only when the model URI needs it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridgeai.model import CHAMPION_URI
from bridgeai.model.source import ModelSourceError
from bridgeai.serving import codec as v2
from bridgeai.serving.gc import tune_gc
from bridgeai.serving.logs import ACCESS_LOGGER, AccessLog, configure_logging
from bridgeai.serving.served_model import ServedModel, load_served_model

logger = logging.getLogger("bridgeai.serving.app")

SERVER_NAME = "bridgeai-model-server"
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_KEY = "bridgeai.request_id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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
        default=512 * 1024 * 1024, description="Larger request bodies get 413."
    )


# -- HTTP ---------------------------------------------------------------------------------------
_INFER_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")
_JSON_HEADERS = [(b"content-type", b"application/json")]


class BodyTooLargeError(ValueError):
    """The request body exceeds ``max_body_bytes`` (413)."""

    status_code = 413


def _json(status: int, doc: Any) -> Any:
    from starlette.responses import Response

    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def create_app(settings: ModelServerSettings, served: ServedModel | None = None) -> ModelServerApp:
    """The ASGI application; loads the model in its lifespan unless ``served`` is given.

    Inference requests take a lean ASGI lane (:class:`ModelServerApp`); the other endpoints,
    the lifespan and error pages are a small Starlette application behind it.
    """
    import anyio.to_thread
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    state: dict[str, ServedModel] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        model = (
            served
            if served is not None
            else await anyio.to_thread.run_sync(load_served_model, settings)
        )
        state["model"] = model
        try:
            yield
        finally:
            state.pop("model", None)
            model.close()

    def current() -> ServedModel:
        model = state.get("model")
        if model is None:
            raise ModelNotReadyError("the model is still loading; retry shortly")
        return model

    async def live(request: Request) -> Response:
        return _json(200, {"live": True})

    async def ready(request: Request) -> Response:
        ok = "model" in state
        return _json(200 if ok else 503, {"ready": ok})

    async def server_metadata(request: Request) -> Response:
        import bridgeai

        doc = v2.ServerMetadata(name=SERVER_NAME, version=bridgeai.__version__)
        return _json(200, doc.model_dump())

    async def model_metadata(request: Request) -> Response:
        model = current()
        model.check(request.path_params["name"], request.path_params.get("version"))
        doc = v2.ModelMetadata(
            name=model.name,
            versions=[model.version],
            platform="lightgbm",
            inputs=v2.input_metadata(),
            outputs=v2.output_metadata(),
            parameters={"mlflow_run_id": model.info.run_id, "source": model.info.source},
        )
        return _json(200, doc.model_dump())

    async def model_ready(request: Request) -> Response:
        model = current()
        model.check(request.path_params["name"], request.path_params.get("version"))
        return _json(200, {"name": model.name, "ready": True})

    async def domain_error(request: Request, exc: Exception) -> Response:
        return _json(getattr(exc, "status_code", 400), {"error": str(exc)})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = exc.detail
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return _json(exc.status_code, {"error": message})

    prefix = "/v2/models/{name}"
    infer_lane = InferenceLane(current, settings)
    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route(prefix, model_metadata),
        Route(prefix + "/versions/{version}", model_metadata),
        Route(prefix + "/ready", model_ready),
        Route(prefix + "/versions/{version}/ready", model_ready),
        # POSTs never reach these (ModelServerApp takes them first); other methods get a 405.
        Route(prefix + "/infer", infer_lane, methods=["POST"]),
        Route(prefix + "/versions/{version}/infer", infer_lane, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            v2.ProtocolError: domain_error,
            v2.ModelNotFoundError: domain_error,
            ModelNotReadyError: domain_error,
            HTTPException: http_error,
        },
    )
    enabled = settings.access_log and logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
    access_log = AccessLog() if enabled else None
    return ModelServerApp(app, infer_lane, access_log=access_log)


class ModelNotReadyError(RuntimeError):
    """A request arrived before the model finished loading (503)."""

    status_code = 503


class InferenceLane:
    """``POST /v2/models/{name}[/versions/{v}]/infer`` as a bare ASGI handler.

    Starlette's request and response objects, routing and exception middleware cost about as much
    CPU as decoding, encoding and predicting one row together, so the one endpoint that carries
    load skips them; errors are mapped here the same way the Starlette handlers map them.
    """

    def __init__(self, current: Callable[[], ServedModel], settings: ModelServerSettings) -> None:
        self.current = current
        self.max_body = settings.max_body_bytes
        self.offload = settings.offload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _INFER_PATH.match(scope["path"])
        assert match is not None  # routed here by path
        await self.handle(scope, receive, send, match["name"], match["version"])

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> None:
        import anyio.to_thread

        request_id = scope.get(_REQUEST_ID_KEY, "")
        status = 200
        try:
            model = self.current()
            model.check(name, version)
            body = await self._body(receive)
            if len(body) >= self.offload:
                payload = await anyio.to_thread.run_sync(model.infer, body, request_id)
            else:
                payload = model.infer(body, request_id)
        except _ClientGone:
            return
        except (
            v2.ProtocolError,
            v2.ModelNotFoundError,
            ModelNotReadyError,
            BodyTooLargeError,
        ) as exc:
            status = exc.status_code
            payload = orjson.dumps({"error": str(exc)})
        except Exception:
            logger.exception("inference failed", extra={"fields": {"request_id": request_id}})
            status = 500
            payload = orjson.dumps(
                {"error": f"internal error; see the server log for request {request_id}"}
            )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _body(self, receive: Receive) -> bytes:
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BodyTooLargeError(
                    f"request body larger than {self.max_body} bytes: split the batch or raise "
                    "BRIDGEAI_MODEL_SERVER_MAX_BODY_BYTES"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _ClientGone(Exception):
    """The client disconnected before sending its whole request."""


class ModelServerApp:
    """The outer ASGI app: request ids (echoed as ``x-request-id``), access logs, inference lane.

    A client's ``x-request-id`` is kept when it is a sane token (letters, digits, ``._:-``, at
    most 128 characters) so logs can be correlated across services; otherwise one is made.
    """

    def __init__(
        self, app: ASGIApp, infer: InferenceLane, access_log: AccessLog | None = None
    ) -> None:
        self.app = app
        self.infer = infer
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await self.app(scope, receive, send)
            finally:  # the lifespan ends at shutdown: write what is buffered
                if self.access_log is not None:
                    self.access_log.flush()
            return
        request_id = ""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                if _VALID_REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        if not request_id:
            request_id = uuid.uuid4().hex
        scope[_REQUEST_ID_KEY] = request_id
        header = (b"x-request-id", request_id.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            match = _INFER_PATH.match(scope["path"]) if scope["method"] == "POST" else None
            if match is not None:
                await self.infer.handle(
                    scope, receive, send_with_id, match["name"], match["version"]
                )
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log is not None:
                self.access_log.record(
                    {
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    }
                )


# -- entrypoint -----------------------------------------------------------------------------------
def main(
    model_uri: str = CHAMPION_URI,
    host: str = "127.0.0.1",
    port: int = 8080,
) -> None:
    """Load the model and serve it until interrupted (one uvicorn worker).

    Exits with status 2 and a one-line message when the model cannot be loaded.
    """
    import uvicorn

    settings = ModelServerSettings(model_uri=model_uri, host=host, port=port)
    configure_logging(settings.log_level)
    try:
        served = load_served_model(settings)
    except ModelSourceError as exc:
        logger.error("cannot load the model: %s", exc)
        raise SystemExit(2) from None
    logger.info(
        "serving",
        extra={"fields": {"host": host, "port": port, "pid": os.getpid()}},
    )
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
