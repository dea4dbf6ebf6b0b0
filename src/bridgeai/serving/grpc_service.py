"""The OIP v2 ``GRPCInferenceService`` (KServe's v2 proto) on its own port, next to REST.

ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata and ModelInfer, served by
``grpc.aio`` on the same event loop as the REST server (one per worker: every worker binds the
port with ``SO_REUSEPORT`` and the kernel spreads connections). A ``ModelInferRequest`` is turned
into the same document the REST codec validates (:func:`bridgeai.serving.codec.decode_document`),
typed ``contents`` as ``data`` and ``raw_input_contents`` as binary data, so the same mistake
gets the same message; its status is the gRPC code for the HTTP status REST would answer
(400 ``INVALID_ARGUMENT``, 404 ``NOT_FOUND``, 413 ``RESOURCE_EXHAUSTED``, 503 ``UNAVAILABLE``,
500 ``INTERNAL``). Prices go back as ``raw_output_contents`` (little-endian FP64), as Triton
answers. The repository extension (RepositoryModelLoad/Unload) is not served: ``UNIMPLEMENTED``.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import grpc

from bridgeai.model.errors import BridgeAIError
from bridgeai.serving import binary, codec
from bridgeai.serving import grpc_messages as pb
from bridgeai.serving.errors import ProtocolError
from bridgeai.serving.metrics import ServerMetrics
from bridgeai.serving.served_model import ServedModel
from bridgeai.serving.settings import ModelServerSettings

logger = logging.getLogger("bridgeai.serving.grpc")

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
#: Which ``InferTensorContents`` field carries each datatype's values.
_CONTENTS = {
    "BYTES": "bytes_contents",
    "INT64": "int64_contents",
    "INT32": "int_contents",
    "FP64": "fp64_contents",
    "FP32": "fp32_contents",
    "BOOL": "bool_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
}
_ENDPOINTS = {
    "ServerLive": "server_live",
    "ServerReady": "server_ready",
    "ServerMetadata": "server_metadata",
    "ModelReady": "model_ready",
    "ModelMetadata": "model_metadata",
    "ModelInfer": "infer",
}


def request_document(request: Any) -> tuple[dict[str, Any], memoryview | None]:
    """A ``ModelInferRequest`` as the REST codec's request document and binary data."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs: "
            "send one per input, or use contents"
        )
    inputs = []
    for position, tensor in enumerate(request.inputs):
        doc: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if raw:
            doc["parameters"] = {binary.SIZE: len(raw[position])}
        else:
            doc["data"] = _contents(tensor)
        inputs.append(doc)
    document: dict[str, Any] = {"inputs": inputs}
    if request.id:
        document["id"] = request.id
    if request.outputs:
        document["outputs"] = [{"name": output.name} for output in request.outputs]
    blob = memoryview(b"".join(raw)) if raw else None
    return document, blob


def _contents(tensor: Any) -> list[Any]:
    """The tensor's values from the ``contents`` field its datatype uses, checked."""
    name, datatype = tensor.name, tensor.datatype
    used = [field.name for field, _ in tensor.contents.ListFields()]
    field = _CONTENTS.get(datatype)
    if field is not None and used and used != [field]:
        raise ProtocolError(
            f"input {name!r}: {datatype} values go in contents.{field}, got contents."
            + ", contents.".join(used)
        )
    values = list(getattr(tensor.contents, field)) if field is not None else []
    if datatype in ("FP32", "FP64"):
        for value in values:
            if not math.isfinite(value):
                raise ProtocolError(
                    f"input {name!r}: {datatype} data must be finite numbers; got {value}"
                )
    elif datatype == "BYTES":
        binary.check_utf8(name, set(values))
    return values


class InferenceServicer:
    """The service's handlers; ``current`` gives the served model (or raises 503)."""

    def __init__(
        self,
        current: Callable[[], ServedModel],
        settings: ModelServerSettings,
        metrics: ServerMetrics | None,
    ) -> None:
        self.current = current
        self.offload = settings.offload_bytes
        self.metrics = metrics

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        try:
            self.current()
        except BridgeAIError:
            return pb.ServerReadyResponse(ready=False)
        return pb.ServerReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        import bridgeai

        return pb.ServerMetadataResponse(
            name=codec.SERVER_NAME, version=bridgeai.__version__, extensions=codec.EXTENSIONS
        )

    async def ModelReady(self, request: Any, context: Any) -> Any:
        self.current().check(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=True)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        model = self.current()
        model.check(request.name, request.version or None)

        def tensors(items: list[codec.TensorMetadata]) -> list[Any]:
            return [
                pb.ModelMetadataResponse.TensorMetadata(
                    name=t.name, datatype=t.datatype, shape=t.shape
                )
                for t in items
            ]

        return pb.ModelMetadataResponse(
            name=model.name,
            versions=[model.version],
            platform="lightgbm",
            inputs=tensors(codec.input_metadata()),
            outputs=tensors(codec.output_metadata()),
        )

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        model = self.current()
        model.check(request.model_name, request.model_version or None)
        document, blob = request_document(request)
        if request.ByteSize() >= self.offload:
            decoded, prices = await anyio.to_thread.run_sync(_predict, model, document, blob)
        else:
            decoded, prices = _predict(model, document, blob)
        context.rows = decoded.rows
        response = pb.ModelInferResponse(
            model_name=model.name, model_version=model.version, id=decoded.id or request.id
        )
        output = response.outputs.add()
        output.name = codec.OUTPUT_NAME
        output.datatype = codec.OUTPUT_DATATYPE
        output.shape.append(len(prices))
        response.raw_output_contents.append(binary.encode_prices(prices))
        return response


def _predict(model: ServedModel, document: dict[str, Any], blob: memoryview | None) -> Any:
    decoded = codec.decode_document(document, blob)
    return decoded, model.prices(decoded)


def _handler(
    method: str,
    function: Callable[[Any, Any], Awaitable[Any]],
    request_type: Any,
    response_type: Any,
    metrics: ServerMetrics | None,
) -> Any:
    endpoint = _ENDPOINTS[method]

    async def handle(request: Any, context: Any) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        told = _Context()
        try:
            return await function(request, told)
        except BridgeAIError as exc:
            code = _CODES.get(exc.status_code, grpc.StatusCode.INTERNAL)
            await context.abort(code, exc.message)
        except Exception:
            code = grpc.StatusCode.INTERNAL
            request_id = uuid.uuid4().hex
            logger.exception("gRPC %s failed", method, extra={"fields": {"request_id": request_id}})
            await context.abort(
                code, f"internal error; see the server log for request {request_id}"
            )
        finally:
            if metrics is not None:
                elapsed = time.perf_counter() - started
                metrics.observe("grpc", endpoint, code.name, elapsed, told.rows)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


class _Context:
    """What a handler may tell the wrapper (the rows predicted), apart from gRPC's context."""

    rows: int | None = None


async def start_grpc_server(
    settings: ModelServerSettings,
    current: Callable[[], ServedModel],
    metrics: ServerMetrics | None,
) -> Any:
    """Start ``grpc.aio`` on ``settings.host:settings.grpc_port`` on the running loop."""
    servicer = InferenceServicer(current, settings, metrics)
    types = {
        "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
        "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
        "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
        "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
        "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
        "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
    }
    handlers = {
        method: _handler(method, getattr(servicer, method), request, response, metrics)
        for method, (request, response) in types.items()
    }
    limit = settings.max_body_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", min(limit, 2**31 - 1)),
            ("grpc.max_send_message_length", 2**31 - 1),
        ]
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(pb.SERVICE, handlers),))
    address = f"{settings.host}:{settings.grpc_port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    await server.start()
    logger.info("serving gRPC", extra={"fields": {"address": address}})
    return server
