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
from collections.abc import Iterable, Iterator
from typing import Any, Final

import numpy as np
import orjson

from bridgeai.model.house_price import CodedColumn
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
#: More distinct spellings than this in one column: the element-by-element parse is as fast.
_FEW = 32
#: Fewer rows than this: the element-by-element parse is faster than numpy's set-up.
_NUMPY_ROWS = 64
#: Values up to this many bytes are told apart by two 64-bit words.
_WIDEST = 16
#: ``_MASKS[n]`` keeps the low ``n`` bytes of a little-endian 64-bit word.
_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)


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


def strings(name: str, rows: int, raw: memoryview) -> list[bytes] | BytesColumn:
    """``rows`` length-prefixed ``BYTES`` elements, as ``bytes`` (checked to be UTF-8).

    Categorical columns hold a few spellings many times over: when :func:`_layout` finds the
    elements with numpy, they are a :class:`BytesColumn`, which tells the spellings apart
    range by range; anything else (and a few rows) is parsed element by element into a list.

    Raises:
        ProtocolError: the lengths do not add up, or an element is not UTF-8 text (for a
            :class:`BytesColumn`, a spelling that is not UTF-8 is refused when its rows are
            read).
    """
    data = bytes(raw)
    layout = _layout(data, rows) if rows >= _NUMPY_ROWS else None
    if layout is not None:
        return BytesColumn(name, data, *layout)
    values = _split(name, data, rows)
    check_utf8(name, set(values))
    return values


class BytesColumn:
    """A ``BYTES`` tensor of short elements, its spellings told apart range by range.

    Where every element starts, and that its lengths add up, is checked at once for the whole
    tensor (:func:`_layout`), so a malformed body is refused before anything is predicted.
    Which spelling each row holds (two 64-bit words and a length per row, compared with the
    few distinct spellings seen so far) is worked out only up to the rows asked for: for a
    large request, that overlaps the prediction of the rows before
    (:meth:`bridgeai.serving.served_model.ServedModel.predict`). Slicing gives a
    :class:`~bridgeai.model.house_price.CodedColumn` (codes into :attr:`values`), or a list
    of ``bytes`` once more than a few spellings have turned up.
    """

    def __init__(self, name: str, data: bytes, starts: np.ndarray, lengths: np.ndarray) -> None:
        self.name = name
        self._data = data
        # Every byte offset's next 8 bytes as a little-endian word, NULs past the end.
        padded = data + bytes(16)
        self._words = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
        self._starts = starts
        self._lengths = lengths
        self._codes = np.empty(len(starts), dtype=np.int64)
        self._done = 0  # rows [0, _done) have codes
        self._keys: list[tuple[int, int, int]] = []
        #: The distinct spellings found so far, in order of first appearance.
        self.values: list[bytes] = []
        self._listed: list[bytes] | None = None  # every row, once there are too many spellings

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, rows: slice) -> CodedColumn | list[bytes]:
        start, stop, _ = rows.indices(len(self))
        self._read(stop)
        if self._listed is not None:
            return self._listed[start:stop]
        return CodedColumn(self._codes[start:stop], self.values)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self[0 : len(self)])

    def _read(self, stop: int) -> None:
        """Give rows ``[_done, stop)`` their codes (or list every row, past ``_FEW`` spellings)."""
        done = self._done
        if stop <= done or self._listed is not None:
            return
        starts, lengths = self._starts[done:stop], self._lengths[done:stop]
        first = self._words[starts] & _MASKS[np.minimum(lengths, 8)]
        second = self._words[starts + 8] & _MASKS[np.clip(lengths - 8, 0, 8)]
        codes = self._codes[done:stop]
        codes.fill(-1)

        def spelled(key: tuple[int, int, int]) -> np.ndarray:
            return (first == key[0]) & (second == key[1]) & (lengths == key[2])

        for code, key in enumerate(self._keys):
            codes[spelled(key)] = code
        while True:
            at = int(np.argmax(codes < 0))
            if codes[at] >= 0:
                break
            if len(self.values) == _FEW:  # many spellings: element by element is as fast
                # (the layout is checked, so this reads the elements the codes would have)
                self._listed = _split(self.name, self._data, len(self))
                check_utf8(self.name, set(self._listed))
                return
            key = (int(first[at]), int(second[at]), int(lengths[at]))
            begin = int(starts[at])
            value = self._data[begin : begin + key[2]]
            check_utf8(self.name, (value,))
            codes[spelled(key)] = len(self.values)
            self._keys.append(key)
            self.values.append(value)
        self._done = stop


def check_utf8(name: str, values: Iterable[bytes]) -> None:
    """Raise ``ProtocolError`` naming input ``name`` unless every BYTES element is UTF-8 text."""
    for value in values:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(
                f"input {name!r}: BYTES element {value[:40]!r} is not valid UTF-8 text"
            ) from None


def _layout(data: bytes, rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Where each element starts and how long it is, in numpy, in the common case: elements of
    1-16 bytes and no run of NULs; None otherwise (the element-by-element parse then decides).

    Such a buffer is ``L0 000000 v0 L1 000000 v1 ...``: the three-NUL separators are found at
    once, and accepted only if every value's length is the length byte before it, which is
    exactly the condition for the element-by-element parse to read the same values.
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
    return starts, lengths


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
