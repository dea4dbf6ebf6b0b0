"""The model server's ASGI application: the house-price model over the Open Inference Protocol v2.

Endpoints: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2``, ``/v2/models/{name}``,
``/v2/models/{name}/ready``, ``POST /v2/models/{name}/infer``, and the
``/v2/models/{name}/versions/{version}/...`` variants. Errors are ``{"error": "..."}`` with the
status their class carries (:mod:`bridgeai.serving.errors`): 400 (the message names the input and
what is wrong), 404 (unknown model or version), 413 (body too large), 503 (not ready) or 500.

The hot path is lean on purpose: a bare ASGI lane for inference, orjson, the hand-written codec in
:mod:`bridgeai.serving.codec` and :class:`bridgeai.model.house_price.HousePriceModel` directly
(never MLflow's pyfunc, which costs ~10 ms a call), LightGBM with one thread for small batches
(its idle OpenMP threads spin and slow single rows down). Large requests are decoded and
predicted off the event loop, in chunks: encoding chunk k+1 overlaps LightGBM predicting chunk k,
which releases the GIL.
"""

from __future__ import annotations

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

from bridgeai.serving import codec
from bridgeai.serving.errors import (
    JSON_HEADERS,
    REQUEST_ID_KEY,
    BodyTooLargeError,
    ModelNotReadyError,
    error_response,
    exception_handlers,
)
from bridgeai.serving.logs import ACCESS_LOGGER, AccessLog
from bridgeai.serving.served_model import ServedModel, load_served_model
from bridgeai.serving.settings import ModelServerSettings

logger = logging.getLogger("bridgeai.serving.app")

SERVER_NAME = "bridgeai-model-server"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_INFER_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")

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


def create_app(settings: ModelServerSettings, served: ServedModel | None = None) -> ModelServerApp:
    """The ASGI application; loads the model in its lifespan unless ``served`` is given.

    Inference requests take a lean ASGI lane (:class:`InferenceLane`); the other endpoints,
    the lifespan and error pages are a small Starlette application behind it. Both answer
    errors with :func:`bridgeai.serving.errors.error_response`.
    """
    state: dict[str, ServedModel] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        model = served
        if model is None:
            model = await anyio.to_thread.run_sync(load_model, settings)
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

        doc = codec.ServerMetadata(name=SERVER_NAME, version=bridgeai.__version__)
        return _json(200, doc.model_dump())

    async def model_metadata(request: Request) -> Response:
        model = current()
        model.check(request.path_params["name"], request.path_params.get("version"))
        doc = codec.ModelMetadata(
            name=model.name,
            versions=[model.version],
            platform="lightgbm",
            inputs=codec.input_metadata(),
            outputs=codec.output_metadata(),
            parameters={"mlflow_run_id": model.info.run_id, "source": model.info.source},
        )
        return _json(200, doc.model_dump())

    async def model_ready(request: Request) -> Response:
        model = current()
        model.check(request.path_params["name"], request.path_params.get("version"))
        return _json(200, {"name": model.name, "ready": True})

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
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers())
    enabled = settings.access_log and logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
    access_log = AccessLog() if enabled else None
    return ModelServerApp(app, infer_lane, access_log=access_log)


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
        await self.handle(scope, receive, send, match["name"], match["version"])

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> None:
        request_id = scope.get(REQUEST_ID_KEY, "")
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
        except Exception as exc:
            status, payload = error_response(exc, request_id)
            if status >= 500:
                logger.exception("inference failed", extra={"fields": {"request_id": request_id}})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
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
