"""A pooled asynchronous client for the model server's Open Inference Protocol v2 endpoint.

The request is the original service's: one input per feature, ``BYTES`` for the categoricals,
``FP32`` for ``area`` and ``INT64`` for the counts (``schema.V2_DATATYPE``), each of shape
``[N]``. Unlike the original, categoricals are sent normalised (lower case, as at training): the
original upper-cased them and its model silently ignored them. The price is read from the output
named ``price`` (or the first output).

Every call has a timeout; calls that cannot reach the server (refused, reset, a stale keep-alive
connection after the server restarted, or a 503 while it loads) are retried a bounded number of
times with jittered exponential backoff. Inference is idempotent, so retrying a POST is safe.

Calls of more than one house (the batch path: ``/predict/batch`` and coalesced predictions) go as
binary tensors (the KServe/Triton binary data extension, answered in binary too) when the server
is our own model server and says it has the extension (``GET /v2``: name
``bridgeai-model-server``, extension ``binary_tensor_data``); the prices are the same, and the
server parses no JSON numbers or strings. Single houses, and every call to any other server
(KServe's, MLServer), stay JSON, the original's encoding.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import orjson
from yarl import URL

from bridgeai import schema
from bridgeai.service.errors import ModelFailed, ModelUnavailable

logger = logging.getLogger("bridgeai.service.model")

_JSON = {"Content-Type": "application/json"}
#: The binary data extension's header: the length of the JSON part of a body.
BINARY_HEADER = "Inference-Header-Content-Length"
#: What our model server calls itself and its binary extension in ``GET /v2``.
_OUR_SERVER, _BINARY_EXTENSION = "bridgeai-model-server", "binary_tensor_data"
_NUMERIC_DTYPES = {"FP32": "<f4", "INT64": "<i8"}
#: Statuses meaning "not now" rather than "never": worth another attempt.
_RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Inference:
    """Prices in request order, and the model version the server reported (if any)."""

    prices: list[float]
    model_version: str | None


@dataclass(frozen=True)
class ModelState:
    """What the model server said when asked whether the model is ready."""

    ok: bool
    detail: str
    version: str | None = None


def v2_request(houses: Sequence[Mapping[str, Any]], request_id: str | None = None) -> bytes:
    """Encode houses as an OIP v2 inference request (see the module docstring)."""
    n = len(houses)
    inputs = []
    for name in schema.FEATURES:
        if name in schema.CATEGORICAL:
            data: list[Any] = [schema.normalize_category(h[name]) for h in houses]
        elif name in schema.COUNTS:
            data = [int(h[name]) for h in houses]
        else:
            data = [float(h[name]) for h in houses]
        inputs.append(
            {"name": name, "shape": [n], "datatype": schema.V2_DATATYPE[name], "data": data}
        )
    body: dict[str, Any] = {"inputs": inputs}
    if request_id:
        body["id"] = request_id
    return orjson.dumps(body)


def _prefixed(value: str) -> bytes:
    data = value.encode()
    return struct.pack("<I", len(data)) + data


#: Each allowed categorical value as a length-prefixed BYTES element (the values are few).
_ELEMENTS = {v: _prefixed(v) for values in schema.ALLOWED.values() for v in values}


def v2_binary_request(
    houses: Sequence[Mapping[str, Any]], request_id: str | None = None
) -> tuple[bytes, int]:
    """Houses as an OIP v2 request with binary tensors; returns the body and its JSON length.

    The same tensors as :func:`v2_request` (names, datatypes, shapes, lower-cased categoricals),
    their values as little-endian bytes after the JSON; the answer is asked for in binary too.
    """
    n = len(houses)
    inputs = []
    parts = []
    for name in schema.FEATURES:
        datatype = schema.V2_DATATYPE[name]
        if name in schema.CATEGORICAL:
            values = [schema.normalize_category(h[name]) for h in houses]
            raw = b"".join([_ELEMENTS.get(v) or _prefixed(v) for v in values])
        else:
            raw = np.array([h[name] for h in houses], dtype=_NUMERIC_DTYPES[datatype]).tobytes()
        parts.append(raw)
        inputs.append(
            {
                "name": name,
                "shape": [n],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
    doc: dict[str, Any] = {"inputs": inputs, "parameters": {"binary_data_output": True}}
    if request_id:
        doc["id"] = request_id
    header = orjson.dumps(doc)
    return b"".join([header, *parts]), len(header)


def parse_binary_response(payload: bytes, json_length: str, expected_rows: int) -> Inference:
    """Read the prices from a v2 response whose ``price`` output is binary data.

    Raises:
        ModelFailed: the response's lengths do not add up, or it has no ``price`` output.
    """
    try:
        split = int(json_length)
        doc = orjson.loads(payload[:split])
        output = next(o for o in doc["outputs"] if o.get("name") == "price")
        size = int(output["parameters"]["binary_data_size"])
        offset = split
        for other in doc["outputs"]:  # outputs before ``price`` have their bytes first
            if other is output:
                break
            offset += int((other.get("parameters") or {}).get("binary_data_size", 0))
        raw = payload[offset : offset + size]
        if len(raw) != size or size % 8:
            raise ValueError("truncated")
        prices = np.frombuffer(raw, dtype="<f8").tolist()
    except (orjson.JSONDecodeError, KeyError, StopIteration, TypeError, ValueError):
        raise ModelFailed(
            "The model server's binary response does not hold a 'price' output whose "
            "binary_data_size matches its bytes"
        ) from None
    return _inference(doc, prices, expected_rows)


def _inference(doc: dict[str, Any], prices: list[float], expected_rows: int) -> Inference:
    """The prices of a parsed response, checked against the number of houses sent."""
    if len(prices) != expected_rows:
        raise ModelFailed(
            f"The model server returned {len(prices)} prices for {expected_rows} houses"
        )
    version = doc.get("model_version")
    return Inference(prices, None if version is None else str(version))


def parse_v2_response(payload: bytes, expected_rows: int) -> Inference:
    """Read the prices from a v2 inference response.

    Raises:
        ModelFailed: the response is not a v2 response with ``expected_rows`` numeric prices.
    """
    try:
        doc = orjson.loads(payload)
        outputs = doc["outputs"]
        output = next((o for o in outputs if o.get("name") == "price"), outputs[0])
        prices = [float(v) for v in output["data"]]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
        raise ModelFailed(
            "The model server's response is not an OIP v2 inference response with a 'price' "
            "output; check that BRIDGEAI_MODEL_URL points at `bridgeai serve-model` or KServe"
        ) from None
    return _inference(doc, prices, expected_rows)


class ModelClient:
    """The service's one connection pool to the v2 model server (open it in the lifespan)."""

    def __init__(
        self,
        base_url: str,
        model_name: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.05,
        max_connections: int = 64,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_connections = max_connections
        model = f"{self.base_url}/v2/models/{model_name}"
        self._infer_url = URL(f"{model}/infer")
        self._ready_url = URL(f"{model}/ready")
        self._metadata_url = URL(model)
        self._server_url = URL(f"{self.base_url}/v2")
        self._session: aiohttp.ClientSession | None = None
        #: Whether the server takes binary tensors (None: not asked yet).
        self.binary: bool | None = None
        #: Last version the server reported (metadata or an inference response).
        self.model_version: str | None = None

    async def open(self) -> None:
        """Create the pooled session (call inside the running event loop)."""
        connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            raise_for_status=False,
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("ModelClient.open() was not called")
        return self._session

    async def infer(
        self, houses: Sequence[Mapping[str, Any]], request_id: str | None = None
    ) -> Inference:
        """Price ``houses`` with one v2 call.

        Raises:
            ModelUnavailable: the server could not be reached within the retries, timed out,
                or is not serving the model.
            ModelFailed: the server answered with an error or an unreadable response.
        """
        if self.binary is None:
            await self._ask_for_binary()
        headers = _JSON
        if self.binary and len(houses) > 1:
            body, json_length = v2_binary_request(houses, request_id)
            headers = {"Content-Type": "application/octet-stream", BINARY_HEADER: str(json_length)}
        else:
            body = v2_request(houses, request_id)
        status, payload, answered_binary = await self._post(body, headers)
        if status == 200:
            if answered_binary is not None:
                inference = parse_binary_response(payload, answered_binary, len(houses))
            else:
                inference = parse_v2_response(payload, len(houses))
            if inference.model_version is not None:
                self.model_version = inference.model_version
            return Inference(inference.prices, inference.model_version or self.model_version)
        if status == 404:
            raise ModelUnavailable(
                f"The model server at {self.base_url} does not serve a model named "
                f"{self.model_name!r}; check BRIDGEAI_MODEL_NAME and the deployed model"
            )
        if status in _RETRY_STATUSES:
            raise ModelUnavailable(
                f"The model server at {self.base_url} is not ready (HTTP {status}); retry shortly"
            )
        raise ModelFailed(
            f"The model server rejected the request with HTTP {status}: {_excerpt(payload)}"
        )

    async def _ask_for_binary(self) -> None:
        """Learn (once) whether the server is ours with the binary extension; JSON if unsure."""
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.get(self._server_url) as resp:
                    meta = orjson.loads(await resp.read()) if resp.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError):
            return  # asked again on the next call; this one goes as JSON
        self.binary = (
            isinstance(meta, dict)
            and meta.get("name") == _OUR_SERVER
            and _BINARY_EXTENSION in (meta.get("extensions") or ())
        )

    async def _post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes, str | None]:
        attempt = 0
        while True:
            try:
                async with self.session.post(self._infer_url, data=body, headers=headers) as resp:
                    payload = await resp.read()
                    if resp.status not in _RETRY_STATUSES or attempt >= self.retries:
                        return resp.status, payload, resp.headers.get(BINARY_HEADER)
                    reason = f"HTTP {resp.status}"
            except TimeoutError:
                raise ModelUnavailable(
                    f"The model server at {self.base_url} did not answer within "
                    f"{self.timeout:g}s (BRIDGEAI_MODEL_TIMEOUT)"
                ) from None
            except aiohttp.ClientError as exc:
                if attempt >= self.retries:
                    raise ModelUnavailable(
                        f"The model server at {self.base_url} is unreachable "
                        f"({_describe(exc)}) after {attempt + 1} attempts; check that it is "
                        "running and that BRIDGEAI_MODEL_URL points at it"
                    ) from None
                reason = _describe(exc)
            delay = self.backoff * (2**attempt) * (0.5 + random.random())  # noqa: S311 - jitter
            logger.debug("model call failed (%s); retry %d in %.3fs", reason, attempt + 1, delay)
            attempt += 1
            await asyncio.sleep(delay)

    async def state(self, timeout: float) -> ModelState:
        """Ask the server whether the model is ready, and its version (never raises)."""
        try:
            async with asyncio.timeout(timeout):
                async with self.session.get(self._ready_url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        return ModelState(False, f"{self._ready_url} answered HTTP {resp.status}")
                async with self.session.get(self._metadata_url) as resp:
                    meta = orjson.loads(await resp.read()) if resp.status == 200 else {}
        except TimeoutError:
            return ModelState(False, f"{self.base_url} did not answer within {timeout:g}s")
        except (aiohttp.ClientError, orjson.JSONDecodeError) as exc:
            return ModelState(False, f"{self.base_url} is unreachable ({_describe(exc)})")
        version = _metadata_version(meta)
        if version is not None:
            self.model_version = version
        self.binary = None  # a readiness check also re-learns what the server is
        return ModelState(True, "model ready", self.model_version)


def _metadata_version(meta: Any) -> str | None:
    if not isinstance(meta, dict):
        return None
    versions = meta.get("versions")
    if isinstance(versions, list) and versions:
        return str(versions[-1])
    version = meta.get("version")
    return None if version is None else str(version)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection"
    return type(exc).__name__


def _excerpt(payload: bytes, limit: int = 300) -> str:
    text = payload.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
