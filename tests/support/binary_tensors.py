"""The binary tensor data extension written out independently of the server's code: requests
built with :mod:`struct`, element by element, and binary answers read back."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from tests.support.model_server import BOOSTER_COLUMNS, CATEGORY_CODES

HEADER = "Inference-Header-Content-Length"
_FORMATS = {"INT64": "<q", "INT32": "<i", "FP64": "<d", "FP32": "<f"}
#: How the original client typed each feature (written out here, not taken from bridgeai.schema).
DATATYPES = {c: "BYTES" if c in CATEGORY_CODES else "FP32" for c in BOOSTER_COLUMNS} | {
    "bedrooms": "INT64",
    "bathrooms": "INT64",
    "stories": "INT64",
    "parking": "INT64",
}


def element_bytes(datatype: str, values: Sequence[Any]) -> bytes:
    """``values`` as the extension lays them out: little-endian numbers, length-prefixed bytes."""
    if datatype == "BYTES":
        parts = []
        for value in values:
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return b"".join(struct.pack(_FORMATS[datatype], v) for v in values)


def tensors(
    houses: Sequence[Mapping[str, Any]], datatypes: Mapping[str, str] | None = None
) -> list[tuple[dict[str, Any], bytes]]:
    """One (JSON tensor, raw bytes) pair per feature, in the dataset's order."""
    kinds = {**DATATYPES, **(datatypes or {})}
    out = []
    for name in BOOSTER_COLUMNS:
        raw = element_bytes(kinds[name], [h[name] for h in houses])
        tensor = {
            "name": name,
            "shape": [len(houses)],
            "datatype": kinds[name],
            "parameters": {"binary_data_size": len(raw)},
        }
        out.append((tensor, raw))
    return out


def body(
    pairs: Sequence[tuple[dict[str, Any], bytes]], **request: Any
) -> tuple[bytes, dict[str, str]]:
    """The request body for ``pairs`` and its headers (``request`` adds top-level fields)."""
    header = orjson.dumps({"inputs": [t for t, _ in pairs], **request})
    data = header + b"".join(raw for _, raw in pairs)
    return data, {HEADER: str(len(header)), "Content-Type": "application/octet-stream"}


def binary_prices(content: bytes, header_length: str) -> tuple[dict[str, Any], list[float]]:
    """The JSON part of a binary answer and its ``price`` values."""
    split = int(header_length)
    doc = orjson.loads(content[:split])
    (output,) = doc["outputs"]
    size = output["parameters"]["binary_data_size"]
    raw = content[split:]
    assert len(raw) == size == 8 * output["shape"][0]
    return doc, [v for (v,) in struct.iter_unpack("<d", raw)]
