"""The Open Inference Protocol (KServe v2) for the house-price model: wire models and codec.

Two halves:

* pydantic models of the protocol's documents (:class:`InferenceRequest`,
  :class:`InferenceResponse`, :class:`ModelMetadata`, ...) for clients, docs and tests;
* a hand-written codec, :func:`decode_request` / :func:`encode_response`, that the model server
  uses on its hot path. It validates exactly what the server needs (names, datatypes, shapes, row
  counts) with one message per mistake that names the input and says what to send instead, and
  turns numeric tensors into numpy arrays in one pass. It is hand-written because a generic model
  validator walks every element of a 100,000-row request in Python objects twice.

Accepted per input: the 12 features of :data:`bridgeai.schema.FEATURES`, each once; ``BYTES`` for
the categoricals (any case; checked against the schema by the model's encoder); ``INT64``/``INT32``
(whole numbers) or ``FP64``/``FP32`` for the numerics; shape ``[N]`` or ``[N, 1]`` with ``data``
flat or nested one value per row. The output is one ``FP64`` tensor ``price`` of shape ``[N]``.

Tensors may also come as raw bytes after the JSON (the binary tensor data extension,
:mod:`bridgeai.serving.binary`), and the answer may go back that way when the request asks.

Every mistake is a :class:`~bridgeai.serving.errors.ProtocolError` (400), re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson
from pydantic import BaseModel, Field

from bridgeai import schema
from bridgeai.model import REGISTERED_MODEL
from bridgeai.serving import binary
from bridgeai.serving.errors import ProtocolError as ProtocolError  # raised by this module
from bridgeai.serving.numeric import INTEGER_RANGES as INTEGER_RANGES
from bridgeai.serving.numeric import numeric_column as _numeric_column

MODEL_NAME: Final = REGISTERED_MODEL
SERVER_NAME: Final = "bridgeai-model-server"
#: What ``GET /v2`` lists: the binary tensor data extension, by Triton's name for it.
EXTENSIONS: Final = ["binary_tensor_data"]
OUTPUT_NAME: Final = "price"
OUTPUT_DATATYPE: Final = "FP64"
INTEGER_DATATYPES: Final = ("INT64", "INT32")
FLOAT_DATATYPES: Final = ("FP64", "FP32")
NUMERIC_DATATYPES: Final = (*INTEGER_DATATYPES, *FLOAT_DATATYPES)

_FEATURES = frozenset(schema.FEATURES)
_CATEGORICAL = frozenset(schema.CATEGORICAL)
#: Up to this many values, numeric tensors are type-checked in Python instead of via numpy.
_SMALL = 64


# -- protocol documents -------------------------------------------------------------------------
class TensorMetadata(BaseModel):
    """One input or output as described by the model metadata endpoint."""

    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(BaseModel):
    """``GET /v2``."""

    name: str
    version: str
    extensions: list[str] = Field(default_factory=list)


class ModelMetadata(BaseModel):
    """``GET /v2/models/{name}[/versions/{version}]``."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(default_factory=dict)


class RequestInput(BaseModel):
    """One named input tensor of an inference request."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class RequestOutput(BaseModel):
    """An output the client asks for (this model has one, ``price``)."""

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """``POST /v2/models/{name}/infer`` body."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    """One output tensor of an inference response."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferenceResponse(BaseModel):
    """The answer to an inference request."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


def input_metadata() -> list[TensorMetadata]:
    """The 12 inputs with the datatypes the original client sent (others are accepted too)."""
    return [
        TensorMetadata(name=f, datatype=schema.V2_DATATYPE[f], shape=[-1]) for f in schema.FEATURES
    ]


def output_metadata() -> list[TensorMetadata]:
    """The one output, ``price`` (FP64, one value per row)."""
    return [TensorMetadata(name=OUTPUT_NAME, datatype=OUTPUT_DATATYPE, shape=[-1])]


# -- client side --------------------------------------------------------------------------------
def build_request(
    houses: Sequence[Mapping[str, Any]], *, request_id: str | None = None
) -> dict[str, Any]:
    """An inference request for ``houses`` (dicts of the 12 features), encoded as the original.

    Categoricals go as ``BYTES``, ``area`` as ``FP32`` and the counts as ``INT64``
    (:data:`bridgeai.schema.V2_DATATYPE`), one tensor of shape ``[N]`` per feature.
    """
    inputs = []
    for name in schema.FEATURES:
        data = [house[name] for house in houses]
        inputs.append(
            {"name": name, "shape": [len(data)], "datatype": schema.V2_DATATYPE[name], "data": data}
        )
    request: dict[str, Any] = {"inputs": inputs}
    if request_id is not None:
        request["id"] = request_id
    return request


def prices_from(response: Mapping[str, Any]) -> list[float]:
    """The predicted prices in an inference response document."""
    for output in response.get("outputs", []):
        if output.get("name") == OUTPUT_NAME:
            return [float(v) for v in output["data"]]
    raise ProtocolError(f"the response has no {OUTPUT_NAME!r} output")


# -- server side --------------------------------------------------------------------------------
@dataclass
class DecodedRequest:
    """A validated inference request: one column per feature, as sent.

    Numeric columns are checked against their datatype and converted to float64 by
    :meth:`rows_between`, slice by slice, so a large request's conversion can overlap the
    prediction of the previous slice; categorical columns go to the model's encoder as sent (it
    normalises and checks their values), a binary one as codes into its few spellings
    (:class:`bridgeai.serving.binary.BytesColumn`, read slice by slice too).
    """

    columns: dict[str, list[Any] | np.ndarray | binary.BytesColumn]
    rows: int
    id: str | None
    datatypes: dict[str, str]
    #: The client asked for the answer in binary (``binary_data_output`` / ``binary_data``).
    binary_output: bool = False

    def rows_between(self, start: int = 0, stop: int | None = None) -> dict[str, Any]:
        """The columns for rows ``[start, stop)``, numerics checked and converted.

        Raises:
            ProtocolError: a numeric value does not match its tensor's datatype.
        """
        stop = self.rows if stop is None else stop
        whole = start == 0 and stop >= self.rows
        out: dict[str, Any] = {}
        for name, values in self.columns.items():
            if isinstance(values, binary.BytesColumn):  # read up to ``stop`` now
                out[name] = values[start:stop]
                continue
            part = values if whole else values[start:stop]
            datatype = self.datatypes[name]
            if datatype == "BYTES" or isinstance(part, np.ndarray):  # binary: already float64
                out[name] = part
            else:
                out[name] = _numeric_column(name, datatype, part)
        return out


def decode_request(body: bytes, json_length: int | None = None) -> DecodedRequest:
    """Parse and validate an inference request body.

    Args:
        body: the request body.
        json_length: the ``Inference-Header-Content-Length`` header's value, when sent: the
            body is then that many bytes of JSON followed by the inputs' binary data.

    Raises:
        ProtocolError: the body is not a valid request for this model; the message names the
            input and what is wrong with it.
    """
    blob: memoryview | None = None
    if json_length is not None:
        blob = memoryview(body)[json_length:]
        body = body[:json_length]
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if json_length is None and b"\x00\x00\x00" in body:  # length prefixes of binary data
            hint = (
                " (binary tensor data needs the Inference-Header-Content-Length header "
                "giving the length of the JSON part)"
            )
        raise ProtocolError(f"the request body is not valid JSON: {exc}{hint}") from None
    return decode_document(doc, blob)


def decode_document(doc: Any, blob: memoryview | None = None) -> DecodedRequest:
    """Validate a parsed inference request (REST's JSON, or one gRPC's request was turned into).

    Args:
        doc: the request document.
        blob: the binary data that inputs with ``parameters.binary_data_size`` take their bytes
            from, in order (None: the request has no binary part).

    Raises:
        ProtocolError: as :func:`decode_request`.
    """
    if not isinstance(doc, dict):
        raise ProtocolError("the request body must be a JSON object with an 'inputs' list")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError(
            "'inputs' must be a non-empty list with one tensor per feature: "
            + ", ".join(schema.FEATURES)
        )
    request_id = doc.get("id", binary.ABSENT)
    if request_id is binary.ABSENT:
        request_id = None
    elif not isinstance(request_id, str):
        raise ProtocolError(f"'id' must be a string, got {request_id!r}")
    absent = binary.ABSENT
    outputs = doc.get("outputs", absent)
    binary_output = binary.output_wanted(doc.get("parameters", absent), outputs, OUTPUT_NAME)

    columns: dict[str, list[Any] | np.ndarray | binary.BytesColumn] = {}
    datatypes: dict[str, str] = {}
    rows = 0
    first = ""
    offset = 0  # into the binary data
    for position, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise ProtocolError(
                f"inputs[{position}] must be an object with name, shape, datatype and data"
            )
        name = tensor.get("name")
        if not isinstance(name, str):
            raise ProtocolError(f"inputs[{position}]: 'name' must be a string")
        if name not in _FEATURES:
            raise ProtocolError(
                f"unknown input {name!r}: this model's inputs are {', '.join(schema.FEATURES)}"
            )
        if name in columns:
            raise ProtocolError(f"input {name!r} is given more than once")
        # ("in" first: a dict lookup is much cheaper than the call, and JSON is the hot path)
        size = binary.binary_size(name, tensor["parameters"]) if "parameters" in tensor else None
        if size is None:
            values, count, datatypes[name] = _decode_tensor(name, tensor)
        else:
            if blob is None:
                raise ProtocolError(
                    f"input {name!r} has parameters.{binary.SIZE} but the request has no "
                    "Inference-Header-Content-Length header saying where its JSON part ends"
                )
            if offset + size > len(blob):
                raise ProtocolError(
                    f"input {name!r}: {binary.SIZE} {size} from byte {offset} runs past the end "
                    f"of the {len(blob)} bytes of binary data after the JSON header"
                )
            values, count, datatypes[name] = _decode_binary(
                name, tensor, blob[offset : offset + size]
            )
            offset += size
        if not columns:
            rows, first = count, name
        elif count != rows:
            raise ProtocolError(
                f"input {name!r} has {count} rows but {first!r} has {rows}: "
                "every input must have one value per row"
            )
        columns[name] = values
    missing = [f for f in schema.FEATURES if f not in columns]
    if missing:
        raise ProtocolError(f"missing input(s): {', '.join(missing)}")
    if blob is not None and offset != len(blob):
        raise ProtocolError(
            f"the body has {len(blob)} bytes of binary data after its JSON header but the "
            f"inputs' {binary.SIZE} add up to {offset}"
        )
    return DecodedRequest(
        columns=columns,
        rows=rows,
        id=request_id,
        datatypes=datatypes,
        binary_output=binary_output,
    )


def _decode_tensor(name: str, tensor: dict[str, Any]) -> tuple[list[Any], int, str]:
    """Check one input tensor's shape and datatype; return its values, row count, datatype."""
    shape = tensor.get("shape")
    data = tensor.get("data")
    # The common case in one test: shape [N] with N flat values.
    if (
        type(shape) is list
        and len(shape) == 1
        and type(data) is list
        and len(data) == shape[0]
        and type(shape[0]) is int
        and shape[0] > 0
        and type(data[0]) is not list
    ):
        rows = shape[0]
    else:
        rows, data = _check_shape(name, shape, data)
    datatype = tensor.get("datatype")
    # Inline for the hot path (12 tensors a request): the usual datatypes, else the full check.
    if datatype == "BYTES" if name in _CATEGORICAL else datatype in NUMERIC_DATATYPES:
        return data, rows, datatype  # type: ignore[return-value]  # one of the str constants
    return data, rows, _check_datatype(name, datatype)


def _decode_binary(name: str, tensor: dict[str, Any], raw: memoryview) -> tuple[Any, int, str]:
    """One input sent as binary data: check its shape and datatype, decode its bytes."""
    if "data" in tensor:
        raise ProtocolError(
            f"input {name!r} has both 'data' and parameters.{binary.SIZE}: send one of them"
        )
    rows = _shape_rows(name, tensor.get("shape"))
    datatype = _check_datatype(name, tensor.get("datatype"))
    if datatype == "BYTES":
        return binary.strings(name, rows, raw), rows, datatype
    return binary.numeric(name, datatype, rows, raw), rows, datatype


def _check_datatype(name: str, datatype: Any) -> str:
    if name in _CATEGORICAL:
        if datatype != "BYTES":
            raise ProtocolError(
                f"input {name!r}: datatype must be BYTES (text such as "
                f"{schema.ALLOWED[name][0]!r}), got {datatype!r}"
            )
    elif datatype not in NUMERIC_DATATYPES:
        raise ProtocolError(
            f"input {name!r}: datatype must be one of {', '.join(NUMERIC_DATATYPES)}, "
            f"got {datatype!r}"
        )
    return str(datatype)


def _shape_rows(name: str, shape: Any) -> int:
    """The rows a shape declares, if it is one this model takes ([N] or [N, 1], N > 0)."""
    if not (isinstance(shape, list) and shape and all(type(d) is int and d >= 0 for d in shape)):
        raise ProtocolError(
            f"input {name!r}: 'shape' must be a list of non-negative integers, [N] or [N, 1]"
        )
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise ProtocolError(
            f"input {name!r}: shape {shape} is not supported; send one value per row, "
            "shape [N] or [N, 1]"
        )
    rows: int = shape[0]
    if rows == 0:
        raise ProtocolError(f"input {name!r}: shape {shape} has no rows")
    return rows


def _check_shape(name: str, shape: Any, data: Any) -> tuple[int, list[Any]]:
    """Shapes other than a flat [N]: check them, flatten nested rows, say what is wrong."""
    rows = _shape_rows(name, shape)
    if not isinstance(data, list):
        raise ProtocolError(f"input {name!r}: 'data' must be a list of {rows} value(s)")
    if data and isinstance(data[0], list):
        data = _flatten_rows(name, data)
    if len(data) != rows:
        raise ProtocolError(
            f"input {name!r}: shape {shape} needs {rows} value(s) but 'data' has {len(data)}"
        )
    return rows, data


def _flatten_rows(name: str, data: list[Any]) -> list[Any]:
    """``[[v1], [v2], ...]`` (shape ``[N, 1]`` sent nested) -> ``[v1, v2, ...]``."""
    flat = []
    for row in data:
        if not isinstance(row, list) or len(row) != 1:
            raise ProtocolError(
                f"input {name!r}: nested data must hold exactly one value per row, got {row!r}"
            )
        flat.append(row[0])
    return flat


def encode_response(
    model_name: str, model_version: str | None, request_id: str | None, prices: np.ndarray
) -> bytes:
    """The inference response document for ``prices``, as JSON bytes."""
    return orjson.dumps(
        {
            "model_name": model_name,
            "model_version": model_version,
            "id": request_id,
            "parameters": {},
            "outputs": [
                {
                    "name": OUTPUT_NAME,
                    "shape": [len(prices)],
                    "datatype": OUTPUT_DATATYPE,
                    "data": prices,
                }
            ],
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
