"""The KServe/Triton binary tensor data extension of the Open Inference Protocol v2 (REST).

A request may carry tensors as raw bytes after its JSON header: the header
``Inference-Header-Content-Length: <n>`` says the first ``n`` bytes of the body are the JSON
document, and each input whose ``parameters`` hold ``binary_data_size: <size>`` has no ``data``;
its ``size`` bytes follow the JSON, in the order of the inputs. Numbers are little-endian
(``INT64`` 8 bytes, ``INT32`` 4, ``FP64`` 8, ``FP32`` 4 per element); each ``BYTES`` element is a
4-byte little-endian length and that many bytes. An answer is binary when the request asks for
it (``parameters.binary_data_output: true``, or ``binary_data: true`` on the requested output):
the output then has ``parameters.binary_data_size`` and no ``data``, and its bytes follow the
JSON, whose length the response's ``Inference-Header-Content-Length`` gives.

Every way the lengths can fail to add up is a :class:`~bridgeai.serving.errors.ProtocolError`
(400) saying which lengths disagree.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any, Final

import numpy as np
import orjson

from bridgeai.serving.errors import ProtocolError

#: The request and response header naming the JSON part's length (lower case, as ASGI has it).
HEADER: Final = b"inference-header-content-length"
#: The parameter of an input (and an output) whose bytes follow the JSON.
SIZE: Final = "binary_data_size"
#: Little-endian numpy types of the numeric datatypes this server accepts.
NUMERIC_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "INT64": np.dtype("<i8"),
    "INT32": np.dtype("<i4"),
    "FP64": np.dtype("<f8"),
    "FP32": np.dtype("<f4"),
}
_LENGTH = struct.Struct("<I")
#: Stands for a ``parameters`` key that is absent (``null`` is present, and not an object).
ABSENT: Final = object()
_SEPARATOR = b"\x00\x00\x00"


def header_length(value: bytes, body_size: int) -> int:
    """The JSON part's length from the header's raw value, checked against the body's size."""
    text = value.decode("latin-1").strip()
    if not text.isdigit():
        raise ProtocolError(
            f"Inference-Header-Content-Length must be a whole number of bytes, got {text!r}"
        )
    length = int(text)
    if length == 0 or length > body_size:
        raise ProtocolError(
            f"Inference-Header-Content-Length is {length} but the body has {body_size} bytes: "
            "it must be the length of the JSON part, which comes first"
        )
    return length


def binary_size(name: str, parameters: Any) -> int | None:
    """The input's ``binary_data_size`` (its ``parameters`` given), or None when its data is in
    the JSON."""
    if not isinstance(parameters, dict):
        raise ProtocolError(f"input {name!r}: 'parameters' must be an object, got {parameters!r}")
    if SIZE not in parameters:
        return None
    size = parameters[SIZE]
    if type(size) is not int or size < 0:
        raise ProtocolError(
            f"input {name!r}: parameters.{SIZE} must be a non-negative whole number of bytes, "
            f"got {size!r}"
        )
    return size


def numeric(name: str, datatype: str, rows: int, raw: memoryview) -> np.ndarray:
    """``rows`` little-endian numbers of ``datatype`` as float64 (finite, checked)."""
    dtype = NUMERIC_DTYPES[datatype]
    if len(raw) != rows * dtype.itemsize:
        raise ProtocolError(
            f"input {name!r}: {rows} {datatype} value(s) take {rows * dtype.itemsize} bytes "
            f"but {SIZE} is {len(raw)}"
        )
    values = np.frombuffer(raw, dtype=dtype).astype(np.float64)
    if dtype.kind == "f" and not np.isfinite(values).all():
        bad = values[~np.isfinite(values)][0]
        raise ProtocolError(f"input {name!r}: {datatype} data must be finite numbers; got {bad}")
    return values


def strings(name: str, rows: int, raw: memoryview) -> list[bytes] | np.ndarray:
    """``rows`` length-prefixed ``BYTES`` elements, as ``bytes`` (checked to be UTF-8).

    Categorical columns hold a few spellings many times over; :func:`_split_few` reads those
    with numpy and returns an object array of the few ``bytes`` objects (what the model's
    encoder looks up), anything else is parsed element by element.
    """
    data = bytes(raw)
    few = _split_few(data, rows)
    values: list[bytes] | np.ndarray
    if few is None:
        values = _split(name, data, rows)
        distinct: Any = set(values)
    else:
        values, distinct = few
    check_utf8(name, distinct)
    return values


def check_utf8(name: str, values: Iterable[bytes]) -> None:
    """Raise ``ProtocolError`` naming input ``name`` unless every BYTES element is UTF-8 text."""
    for value in values:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(
                f"input {name!r}: BYTES element {value[:40]!r} is not valid UTF-8 text"
            ) from None


#: More distinct spellings than this in one column: the element-by-element parse is as fast.
_FEW = 32
#: Values up to this many bytes are told apart by two 64-bit words.
_WIDEST = 16
#: ``_MASKS[n]`` keeps the low ``n`` bytes of a little-endian 64-bit word.
_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)


def _split_few(data: bytes, rows: int) -> tuple[np.ndarray, list[bytes]] | None:
    """The common case in numpy: elements of 1-16 bytes, few distinct, no run of NULs.

    Such a buffer is ``L0 000000 v0 L1 000000 v1 ...``: the three-NUL separators are found at
    once, and accepted only if every value's length is the length byte before it, which is
    exactly the condition for the element-by-element parse to read the same values; the values
    are then told apart by two 64-bit words each, one distinct spelling at a time.
    Returns the values (an object array of the distinct ``bytes``) and the distinct values.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    if rows == 0 or len(buffer) < 5 * rows:
        return None
    zero = buffer == 0
    triple = zero[:-2] & zero[1:-1] & zero[2:]
    separators = np.flatnonzero(triple)
    if len(separators) != rows or separators[0] != 1:
        return None
    lengths = buffer[separators - 1].astype(np.int64)
    starts = separators + 3
    ends = np.empty_like(starts)
    ends[:-1] = separators[1:] - 1
    ends[-1] = len(buffer)
    if int(lengths.max()) > _WIDEST or not np.array_equal(ends - starts, lengths):
        return None
    # Each value as two 64-bit words (its first and next 8 bytes, NULs past its length) and
    # its length: read from an unaligned view of the (padded) buffer at every byte offset.
    padded = data + bytes(16)
    words = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    first = words[starts] & _MASKS[np.minimum(lengths, 8)]
    second = words[starts + 8] & _MASKS[np.clip(lengths - 8, 0, 8)]
    codes = np.full(rows, -1, dtype=np.int64)
    distinct: list[bytes] = []
    while True:
        at = int(np.argmax(codes < 0))
        if codes[at] >= 0:
            break
        if len(distinct) == _FEW:
            return None
        same = (first == first[at]) & (second == second[at]) & (lengths == lengths[at])
        codes[same] = len(distinct)
        start = int(starts[at])
        distinct.append(data[start : start + int(lengths[at])])
    table = np.empty(len(distinct), dtype=object)
    table[:] = distinct
    return table[codes], distinct


def _split(name: str, data: bytes, rows: int) -> list[bytes]:
    """The general parse, one element at a time."""
    values = []
    offset, end = 0, len(data)
    unpack = _LENGTH.unpack_from
    for index in range(rows):
        if offset + 4 > end:
            raise ProtocolError(
                f"input {name!r}: its {len(data)} bytes of BYTES data end before element "
                f"{index} of {rows} (each element is a 4-byte length, then that many bytes)"
            )
        (length,) = unpack(data, offset)
        offset += 4
        if offset + length > end:
            raise ProtocolError(
                f"input {name!r}: BYTES element {index} declares {length} bytes but only "
                f"{end - offset} remain in its {len(data)} bytes"
            )
        values.append(data[offset : offset + length])
        offset += length
    if offset != end:
        raise ProtocolError(
            f"input {name!r}: {rows} BYTES element(s) take {offset} bytes but {SIZE} is {end}"
        )
    return values


def _flag(where: str, parameters: Any, key: str) -> bool | None:
    if parameters is ABSENT:
        return None
    if not isinstance(parameters, dict):
        raise ProtocolError(f"{where}'parameters' must be an object, got {parameters!r}")
    if key not in parameters:
        return None
    value = parameters[key]
    if type(value) is not bool:
        raise ProtocolError(f"{where}parameters.{key} must be true or false, got {value!r}")
    return value


def output_wanted(parameters: Any, outputs: Any, output_name: str) -> bool:
    """Whether the answer goes back in binary: the output's ``binary_data`` wins over the
    request's ``binary_data_output``, as in Triton. Also checks the requested outputs' names."""
    wanted = bool(_flag("", parameters, "binary_data_output"))
    if outputs is ABSENT:
        return wanted
    if not isinstance(outputs, list):
        raise ProtocolError("'outputs' must be a list of {'name': ...} objects")
    for output in outputs:
        name = output.get("name") if isinstance(output, dict) else None
        if name != output_name:
            raise ProtocolError(
                f"unknown output {name!r}: this model has one output, {output_name!r}"
            )
        flag = _flag(f"output {name!r}: ", output.get("parameters", ABSENT), "binary_data")
        if flag is not None:
            wanted = flag
    return wanted


def encode_response(
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    prices: np.ndarray,
    output_name: str = "price",
) -> tuple[bytes, int]:
    """The response with ``price`` as binary data: the body and the length of its JSON part."""
    data = encode_prices(prices)
    header = orjson.dumps(
        {
            "model_name": model_name,
            "model_version": model_version,
            "id": request_id,
            "parameters": {},
            "outputs": [
                {
                    "name": output_name,
                    "shape": [len(prices)],
                    "datatype": "FP64",
                    "parameters": {SIZE: len(data)},
                }
            ],
        }
    )
    return header + data, len(header)


def encode_prices(prices: np.ndarray) -> bytes:
    """The ``price`` output's bytes: little-endian FP64."""
    return np.ascontiguousarray(prices, dtype="<f8").tobytes()
