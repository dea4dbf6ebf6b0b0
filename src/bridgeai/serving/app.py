"""The model server's ASGI application: the house-price model over the Open Inference Protocol v2.

Endpoints: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2``, ``/v2/models/{name}``,
``/v2/models/{name}/ready``, ``POST /v2/models/{name}/infer``, and the
``/v2/models/{name}/versions/{version}/...`` variants; ``GET /metrics`` (Prometheus,
:mod:`bridgeai.serving.metrics`) and ``GET /openapi.json`` (:mod:`bridgeai.serving.openapi`).
Inference takes JSON or the binary tensor data extension (:mod:`bridgeai.serving.binary`). With
``grpc_port`` set, the lifespan also serves OIP v2 over gRPC (:mod:`bridgeai.serving.grpc_service`).
Errors are ``{"error": "..."}`` with the status their class carries
(:mod:`bridgeai.serving.errors`): 400 (the message names the input and what is wrong), 404
(unknown model or version), 408 (request too slow), 413 (body too large), 503 (not ready) or 500.

The hot path is lean on purpose: a bare ASGI lane for inference, orjson, the hand-written codec in
:mod:`bridgeai.serving.codec` and :class:`bridgeai.model.house_price.HousePriceModel` directly
(never MLflow's pyfunc, which costs ~10 ms a call), LightGBM with one thread for small batches
(its idle OpenMP threads spin and slow single rows down). Large requests are decoded and
predicted off the event loop, in chunks: the chunks after the first are decoded and encoded while
LightGBM predicts the ones before (it releases the GIL), and the decoded request is freed after
the answer is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridgeai.serving import binary, codec, openapi
from bridgeai.serving.errors import (
    JSON_HEADERS,
    REQUEST_ID_KEY,
    BodyTooLargeError,
    ModelNotReadyError,
    error_response,
    exception_handlers,
)
from bridgeai.serving.logs import ACCESS_LOGGER, AccessLog
from bridgeai.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bridgeai.serving.metrics import ServerMetrics
from bridgeai.serving.served_model import Answer, ServedModel, load_served_model
from bridgeai.serving.settings import ModelServerSettings

logger = logging.getLogger("bridgeai.serving.app")

SERVER_NAME = codec.SERVER_NAME
EXTENSIONS = codec.EXTENSIONS
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_INFER_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")
_MODEL_PATH = re.compile(r"^/v2/models/[^/]+(?:/versions/[^/]+)?(?P<ready>/ready)?$")
#: The ``endpoint`` label of /metrics for the fixed paths; model paths are matched above.
_ENDPOINTS = {
    "/v2/health/live": "server_live",
    "/v2/health/ready": "server_ready",
    "/v2": "server_metadata",
    "/metrics": "metrics",
    "/openapi.json": "openapi",
}
#: Where the inference lane leaves the number of rows it predicted, for the metrics.
ROWS_KEY = "bridgeai.rows"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def load_model(settings: ModelServerSettings) -> ServedModel:
    """The model ``settings.model_uri`` names, served as the settings say (blocking)."""
    return load_served_model(
        settings.model_uri,
        name=settings.model_name,
        batch_rows=settings.batch_rows,
        batch_threads=settings.batch_threads,
        chunk_rows=settings.chunk_rows,
    )


def _json(status: int, doc: Any) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def create_app(
    settings: ModelServerSettings,
    served: ServedModel | None = None,
    metrics: ServerMetrics | None = None,
) -> ModelServerApp:
    """The ASGI application; loads the model in its lifespan unless ``served`` is given.

    Inference requests take a lean ASGI lane (:class:`InferenceLane`); the other endpoints,
    the lifespan and error pages are a small Starlette application behind it. Both answer
    errors with :func:`bridgeai.serving.errors.error_response`. ``metrics`` defaults to a new
    :class:`ServerMetrics` (sharing ``settings.metrics_dir``) unless ``settings.metrics`` is off.
    """
    import bridgeai
    from bridgeai.serving.protocol import TimedHttpToolsProtocol

    TimedHttpToolsProtocol.header_timeout = settings.header_timeout
    TimedHttpToolsProtocol.read_timeout = settings.read_timeout
    if metrics is None and settings.metrics:
        metrics = ServerMetrics(settings.metrics_dir)
    state: dict[str, ServedModel] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        model = served
        if model is None:
            model = await anyio.to_thread.run_sync(load_model, settings)
        state["model"] = model
        if metrics is not None:
            metrics.served(model.name, model.version, model.info.run_id)
        grpc_server = None
        if settings.grpc_port is not None:
            from bridgeai.serving.grpc_service import start_grpc_server

            grpc_server = await start_grpc_server(settings, current, metrics)
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=5)
            if metrics is not None:
                metrics.write_snapshot()
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
        doc = codec.ServerMetadata(
            name=SERVER_NAME, version=bridgeai.__version__, extensions=EXTENSIONS
        )
        return _json(200, doc.model_dump())

    async def model_metadata(request: Request) -> Response:
        model = current()
        model.check(request.path_params["name"], request.path_params.get("version"))
        return _json(200, model_metadata_document(model))

    async def model_ready(request: Request) -> Response:
        model = current()
        model.check(request.path_params["name"], request.path_params.get("version"))
        return _json(200, {"name": model.name, "ready": True})

    async def metrics_page(request: Request) -> Response:
        if metrics is None:
            return _json(404, {"error": "metrics are off (BRIDGEAI_MODEL_SERVER_METRICS=false)"})
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    async def openapi_document(request: Request) -> Response:
        model = current()
        return _json(200, openapi.document(model.name, model.version, bridgeai.__version__))

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
        Route("/metrics", metrics_page),
        Route("/openapi.json", openapi_document),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers())
    enabled = settings.access_log and logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
    access_log = AccessLog() if enabled else None
    return ModelServerApp(app, infer_lane, access_log=access_log, metrics=metrics)


def model_metadata_document(model: ServedModel) -> dict[str, Any]:
    """``GET /v2/models/{name}``: inputs, outputs, versions, the MLflow run (REST and gRPC)."""
    doc = codec.ModelMetadata(
        name=model.name,
        versions=[model.version],
        platform="lightgbm",
        inputs=codec.input_metadata(),
        outputs=codec.output_metadata(),
        parameters={"mlflow_run_id": model.info.run_id, "source": model.info.source},
    )
    return doc.model_dump()


class InferenceLane:
    """``POST /v2/models/{name}[/versions/{v}]/infer`` as a bare ASGI handler.

    Starlette's request and response objects, routing and exception middleware cost about as much
    CPU as decoding, encoding and predicting one row together, so the one endpoint that carries
    load skips them; its errors go through the same :func:`error_response` as the routes'.
    """

    def __init__(self, current: Callable[[], ServedModel], settings: ModelServerSettings) -> None:
        self.current = current
        self.max_body = settings.max_body_bytes
        self.offload = settings.offload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _INFER_PATH.match(scope["path"])
        assert match is not None  # routed here by path
        await self.handle(scope, receive, send, match["name"], match["version"], None, None)

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: str,
        version: str | None,
        json_header: bytes | None,
        declared: bytes | None,
    ) -> None:
        """Answer one inference request.

        Args:
            json_header: the raw ``Inference-Header-Content-Length`` header, if sent.
            declared: the raw ``Content-Length`` header, if sent (a body declared too large is
                refused before it is read).
        """
        request_id = scope.get(REQUEST_ID_KEY, "")
        status = 200
        headers = JSON_HEADERS
        answer: Answer | None = None
        offloaded = False
        try:
            model = self.current()
            model.check(name, version)
            if declared is not None and int(declared) > self.max_body:
                raise self._too_large()  # before reading a body that will be refused anyway
            body = await self._body(receive)
            json_length = None
            if json_header is not None:
                json_length = binary.header_length(json_header, len(body))
            offloaded = len(body) >= self.offload
            if offloaded:
                answer = await anyio.to_thread.run_sync(model.infer, body, request_id, json_length)
            else:
                answer = model.infer(body, request_id, json_length)
            payload = answer.payload
            scope[ROWS_KEY] = answer.rows
            if answer.json_length is not None:
                headers = [
                    (b"content-type", b"application/octet-stream"),
                    (binary.HEADER, str(answer.json_length).encode()),
                ]
        except _ClientGone:
            return
        except Exception as exc:
            status, payload = error_response(exc, request_id)
            if status >= 500:
                logger.exception("inference failed", extra={"fields": {"request_id": request_id}})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        if answer is not None and offloaded:
            # Freeing a large decoded request takes milliseconds: after the answer, off the
            # event loop, and not counted in the request's latency.
            asyncio.get_running_loop().run_in_executor(None, answer.release)

    def _too_large(self) -> BodyTooLargeError:
        return BodyTooLargeError(
            f"request body larger than {self.max_body} bytes: split the batch or raise "
            "BRIDGEAI_MODEL_SERVER_MAX_BODY_BYTES"
        )

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
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _ClientGone(Exception):
    """The client disconnected before sending its whole request."""


class ModelServerApp:
    """The outer ASGI app: request ids (echoed as ``x-request-id``), access logs, metrics, and
    the inference lane.

    A client's ``x-request-id`` is kept when it is a sane token (letters, digits, ``._:-``, at
    most 128 characters) so logs can be correlated across services; otherwise one is made.
    """

    def __init__(
        self,
        app: ASGIApp,
        infer: InferenceLane,
        access_log: AccessLog | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.app = app
        self.infer = infer
        self.access_log = access_log
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await self.app(scope, receive, send)
            finally:  # the lifespan ends at shutdown: write what is buffered
                if self.access_log is not None:
                    self.access_log.flush()
            return
        request_id = ""
        json_header = declared = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                if _VALID_REQUEST_ID.match(candidate):
                    request_id = candidate
            elif key == b"content-length":
                declared = value
            elif key == binary.HEADER:
                json_header = value
        if not request_id:
            request_id = uuid.uuid4().hex
        scope[REQUEST_ID_KEY] = request_id
        header = (b"x-request-id", request_id.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        match = _INFER_PATH.match(scope["path"]) if scope["method"] == "POST" else None
        try:
            if match is not None:
                await self.infer.handle(
                    scope,
                    receive,
                    send_with_id,
                    match["name"],
                    match["version"],
                    json_header,
                    declared,
                )
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                endpoint = "infer" if match is not None else _endpoint(scope["path"])
                self.metrics.observe("rest", endpoint, str(status), elapsed, scope.get(ROWS_KEY))
            if self.access_log is not None:
                self.access_log.record(
                    {
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    }
                )


def _endpoint(path: str) -> str:
    """The ``endpoint`` label of a path (``other`` for paths no route serves)."""
    endpoint = _ENDPOINTS.get(path)
    if endpoint is not None:
        return endpoint
    match = _MODEL_PATH.match(path)
    if match is None:
        return "infer" if _INFER_PATH.match(path) else "other"
    return "model_ready" if match["ready"] else "model_metadata"
