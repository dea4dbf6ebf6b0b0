"""The model server: the house-price model over the Open Inference Protocol (KServe v2) REST API.

``bridgeai serve-model --model-uri ... --host ... --port ...`` (and the model image's entrypoint)
runs :func:`main`. Endpoints: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2``,
``/v2/models/{name}``, ``/v2/models/{name}/ready``, ``POST /v2/models/{name}/infer``, and the
``/v2/models/{name}/versions/{version}/...`` variants. Errors are ``{"error": "..."}`` with 400
(bad request: the message names the input and what is wrong), 404 (unknown model or version),
413 (body too large) or 500.

The hot path is lean on purpose: Starlette routing, orjson, the hand-written codec in
:mod:`bridgeai.v2` and :class:`bridgeai.model.HousePriceModel` directly (never MLflow's pyfunc,
which costs ~10 ms a call), LightGBM with one thread for small batches (its idle OpenMP threads
spin and slow single rows down). Large requests are decoded and predicted off the event loop, in
chunks: encoding chunk k+1 overlaps LightGBM predicting chunk k, which releases the GIL.

Start-up stays short: no Prefect, and MLflow is imported only when the model URI needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridgeai import schema, v2
from bridgeai.model import FeatureError, HousePriceModel
from bridgeai.model_source import ModelInfo, ModelSourceError

logger = logging.getLogger("bridgeai.model_server")
ACCESS_LOGGER = "bridgeai.model_server.access"

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
        default="models:/house_price_prediction_prod@champion",
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


# -- the served model ---------------------------------------------------------------------------
@dataclass
class ServedModel:
    """The loaded model, the identity it is served under, and how it predicts."""

    model: HousePriceModel
    info: ModelInfo
    name: str
    version: str
    batch_rows: int = 2048
    batch_threads: int = 1
    chunk_rows: int = 16384
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)

    def check(self, name: str, version: str | None) -> None:
        """Raise :class:`bridgeai.v2.ModelNotFoundError` unless this is the model asked for."""
        if name != self.name:
            raise v2.ModelNotFoundError(
                f"model {name!r} is not served here; this server serves {self.name!r}"
            )
        if version is not None and version != self.version:
            raise v2.ModelNotFoundError(
                f"model {name!r} version {version!r} is not served here; "
                f"this server serves version {self.version!r}"
            )

    def infer(self, body: bytes, request_id: str) -> bytes:
        """Decode a v2 request body, predict, and encode the response (blocking)."""
        decoded = v2.decode_request(body)
        try:
            prices = self.predict(decoded)
        except FeatureError as exc:
            raise v2.ProtocolError(f"input {exc}") from None
        return v2.encode_response(self.name, self.version, decoded.id or request_id, prices)

    def predict(self, request: v2.DecodedRequest) -> np.ndarray:
        """Prices for a decoded request: inline for small batches, pipelined for large ones.

        Raises:
            bridgeai.v2.ProtocolError: a numeric value does not match its datatype.
            bridgeai.model.FeatureError: a categorical value is not allowed.
        """
        rows = request.rows
        if rows < self.batch_rows:
            return self.model.predict(request.rows_between(), num_threads=1)
        if rows <= self.chunk_rows:
            return self.model.predict(request.rows_between(), num_threads=self.batch_threads)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="bridgeai-predict")
        out = np.empty(rows, dtype=np.float64)
        pending: Future[None] | None = None
        # A small first chunk so LightGBM starts early; then chunk_rows at a time.
        first = min(self.chunk_rows, max(self.chunk_rows // 4, 256))
        bounds = [0, *range(first, rows, self.chunk_rows), rows]
        try:
            for start, stop in itertools.pairwise(bounds):
                matrix = self.model.encode(request.rows_between(start, stop))
                if pending is not None:
                    pending.result()
                pending = self._pool.submit(self._predict_into, matrix, out, start, stop)
        finally:
            if pending is not None:
                pending.result()
        return out

    def _predict_into(self, matrix: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
        out[start:stop] = self.model.predict_matrix(matrix, num_threads=self.batch_threads)

    def warm_up(self) -> None:
        """Predict the example house in common spellings; fail now if the model is broken."""
        rows = []
        for spell in (str.lower, str.upper, str.capitalize):
            rows.append(
                {k: spell(v) if isinstance(v, str) else v for k, v in schema.EXAMPLE_HOUSE.items()}
            )
        for column in schema.CATEGORICAL:  # every allowed value once, so all spellings are cached
            for value in schema.ALLOWED[column]:
                for spell in (str.lower, str.upper, str.capitalize):
                    rows.append({**rows[0], column: spell(value)})
        columns = {f: [row[f] for row in rows] for f in schema.FEATURES}
        prices = self.model.predict(columns, num_threads=1)
        if not np.all(np.isfinite(prices)):
            raise ModelSourceError("the model predicts non-finite prices for the example house")

    def close(self) -> None:
        """Stop the prediction thread and free LightGBM's per-thread buffers."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        close = getattr(self.model.booster, "close", None)
        if close is not None:
            close()


def load_served_model(settings: ModelServerSettings) -> ServedModel:
    """Load the model ``settings.model_uri`` names (downloading it if it is a registry URI).

    Raises:
        ModelSourceError: the URI or directory cannot be used; the message says why.
    """
    from bridgeai import fast_booster, model_source

    started = time.perf_counter()
    uri = settings.model_uri
    if model_source.is_registry_uri(uri):
        # Kept for the life of the process; removed at exit by the OS's tmp cleaning.
        dest = Path(tempfile.mkdtemp(prefix="bridgeai-model-")) / "model"
        model_dir, info = model_source.fetch(uri, dest)
    else:
        model_dir, info = model_source.read_local(uri)
    try:
        model = HousePriceModel.load(model_dir)
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"cannot load the model in {model_dir}: {exc}") from None
    model.booster = fast_booster.wrap(model.booster, max_rows=settings.batch_rows)
    served = ServedModel(
        model=model,
        info=info,
        name=settings.model_name or info.name,
        version=info.version or info.run_id or "unversioned",
        batch_rows=settings.batch_rows,
        batch_threads=settings.batch_threads,
        chunk_rows=settings.chunk_rows,
    )
    served.warm_up()
    logger.info(
        "model loaded",
        extra={
            "fields": {
                "model_name": served.name,
                "model_version": served.version,
                "run_id": info.run_id,
                "source": info.source or uri,
                "trees": int(model.booster.num_trees()),
                "seconds": round(time.perf_counter() - started, 3),
            }
        },
    )
    return served


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


class AccessLog:
    """One JSON line per request, the same shape as the other logs, written in batches.

    Going through :mod:`logging` (record, handler lock, formatter, a flushed write per line)
    costs about a third of the CPU of answering a single-row request, so lines are buffered and
    written to stderr in one call at most every ``interval`` seconds, from the event loop.
    """

    def __init__(self, stream: Any = None, interval: float = 0.05) -> None:
        self.stream = stream
        self.interval = interval
        self._lines: list[bytes] = []
        self._scheduled = False

    def record(self, fields: dict[str, Any]) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        head = {"time": now, "level": "info", "logger": ACCESS_LOGGER, "message": "request"}
        self._lines.append(orjson.dumps({**head, **fields}) + b"\n")
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(self.interval, self.flush)
            except RuntimeError:  # no loop (called from a thread): write now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines.clear()
        stream = self.stream or sys.stderr
        with contextlib.suppress(OSError, ValueError):  # a closed stderr must not fail requests
            buffer = getattr(stream, "buffer", None)
            if buffer is not None:
                stream.flush()
                buffer.write(data)
                buffer.flush()
            else:
                stream.write(data.decode())
                stream.flush()


# -- logging and entrypoint ---------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra={"fields": ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(fields)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(level: str = "info") -> None:
    """Send this process's logs (uvicorn's included) to stderr as JSON lines."""
    # The logging HOWTO's "Optimization" knobs: nobody reads caller/thread/process fields here,
    # and looking them up costs more than formatting an access-log line.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True


def main(
    model_uri: str = "models:/house_price_prediction_prod@champion",
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
    uvicorn.run(
        create_app(settings, served),
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
