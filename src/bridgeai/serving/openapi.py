"""The model server's OpenAPI document (``GET /openapi.json``): the OIP v2 REST protocol for this
model.

It follows the Open Inference Protocol's REST specification (KServe's ``rest_predict_v2.yaml``:
the health, metadata and inference endpoints; tensors with ``name``, ``shape``, ``datatype``,
``parameters`` and ``data``; ``{"error": "..."}`` bodies) and narrows it to the model served:
the 12 inputs by name, in the dataset's order, each with the datatypes the server accepts for it
(``BYTES`` with the allowed values, in any case, for the categoricals; ``INT64``/``INT32``/
``FP64``/``FP32`` for the numerics), the one output ``price`` (``FP64``), the served name and
version. So a request that is valid against the document is one the server answers 200, and an
invalid one gets a 4xx, which is what schemathesis checks.

What JSON Schema cannot say is said in the descriptions: the document describes one row per
request (shape ``[1]`` or ``[1, 1]``) because it cannot tie a tensor's ``shape`` to the length
of its ``data`` or to the other tensors' row counts; the server takes any ``[N]`` or ``[N, 1]``
with N values per input, the inputs in any order, and the binary tensor data extension
(``Inference-Header-Content-Length``, :mod:`bridgeai.serving.binary`).
"""

from __future__ import annotations

from typing import Any

from bridgeai import schema
from bridgeai.serving import codec

_REF = "#/components/schemas/"
_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _content(name: str) -> dict[str, Any]:
    return {_JSON: {"schema": _ref(name)}}


def _case_insensitive(values: tuple[str, ...]) -> str:
    parts = [
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else "\\-" if c == "-" else c for c in v)
        for v in values
    ]
    return "^\\s*(" + "|".join(parts) + ")\\s*$"


def _row_data(value: dict[str, Any]) -> dict[str, Any]:
    """``data`` of one row: the value, flat (``[v]``) or nested as shape ``[1, 1]`` (``[[v]]``)."""
    nested = {"type": "array", "items": value, "minItems": 1, "maxItems": 1}
    return {"type": "array", "items": {"anyOf": [value, nested]}, "minItems": 1, "maxItems": 1}


#: Input parameters without ``binary_data_size``: that one needs the binary extension's header.
_INPUT_PARAMETERS = {
    "type": "object",
    "description": "Free-form; binary_data_size needs the binary tensor data extension.",
    "not": {"required": ["binary_data_size"]},
}


def _tensor(name: str, datatype: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "const": name},
            "shape": {
                "type": "array",
                "items": {"type": "integer", "const": 1},
                "minItems": 1,
                "maxItems": 2,
                "description": "[1] or [1, 1] here; the server takes [N] or [N, 1].",
            },
            "datatype": {"type": "string", "const": datatype},
            "parameters": _INPUT_PARAMETERS,
            "data": _row_data(value),
        },
    }


def input_schema(name: str) -> dict[str, Any]:
    """One input tensor of this model: its name, the datatypes it takes and their values."""
    if name in schema.CATEGORICAL:
        allowed = schema.ALLOWED[name]
        text = {
            "type": "string",
            "pattern": _case_insensitive(allowed),
            "description": f"One of {', '.join(allowed)} (any case, surrounding spaces allowed).",
        }
        return {**_tensor(name, "BYTES", text), "title": name}
    variants = []
    for datatype in codec.NUMERIC_DATATYPES:
        if datatype in codec.INTEGER_RANGES:
            low, high = codec.INTEGER_RANGES[datatype]
            value = {"type": "integer", "minimum": low, "maximum": high}
        else:
            value = {"type": "number"}
        variants.append(_tensor(name, datatype, value))
    return {"title": name, "anyOf": variants}


def _inference_request() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["inputs"],
        "description": (
            "One tensor per feature. Listed here in the dataset's order with one row each; the "
            "server accepts them in any order, with N rows each (shape [N] or [N, 1], N values)."
        ),
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {
                    "binary_data_output": {
                        "type": "boolean",
                        "description": "Answer with the binary tensor data extension.",
                    }
                },
            },
            "inputs": {
                "type": "array",
                "prefixItems": [_ref(f"input_{name}") for name in schema.FEATURES],
                "items": False,
                "minItems": len(schema.FEATURES),
                "maxItems": len(schema.FEATURES),
            },
            "outputs": {"type": "array", "items": _ref("request_output")},
        },
        "example": codec.build_request([schema.EXAMPLE_HOUSE]),
    }


def _schemas(model_name: str) -> dict[str, Any]:
    tensor_metadata = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    }
    return {
        "inference_request": _inference_request(),
        **{f"input_{name}": input_schema(name) for name in schema.FEATURES},
        "request_output": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "const": codec.OUTPUT_NAME},
                "parameters": {
                    "type": "object",
                    "properties": {"binary_data": {"type": "boolean"}},
                },
            },
        },
        "inference_response": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string", "const": model_name},
                "model_version": {"type": ["string", "null"]},
                "id": {"type": ["string", "null"]},
                "parameters": {"type": "object"},
                "outputs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "shape", "datatype"],
                        "properties": {
                            "name": {"type": "string", "const": codec.OUTPUT_NAME},
                            "shape": {"type": "array", "items": {"type": "integer"}},
                            "datatype": {"type": "string", "const": codec.OUTPUT_DATATYPE},
                            "parameters": {"type": "object"},
                            "data": {"type": "array", "items": {"type": "number"}},
                        },
                    },
                },
            },
        },
        "error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "server_live": {
            "type": "object",
            "required": ["live"],
            "properties": {"live": {"type": "boolean"}},
        },
        "server_ready": {
            "type": "object",
            "required": ["ready"],
            "properties": {"ready": {"type": "boolean"}},
        },
        "model_ready": {
            "type": "object",
            "required": ["name", "ready"],
            "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
        },
        "server_metadata": {
            "type": "object",
            "required": ["name", "version", "extensions"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            },
        },
        "model_metadata": {
            "type": "object",
            "required": ["name", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": tensor_metadata},
                "outputs": {"type": "array", "items": tensor_metadata},
                "parameters": {"type": "object"},
            },
        },
    }


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "The request is not valid for this model; the error names the input.",
        404: "No such model or version on this server.",
        413: "The request body is larger than BRIDGEAI_MODEL_SERVER_MAX_BODY_BYTES.",
        503: "The model is still loading.",
    }
    return {str(s): {"description": reasons[s], "content": _content("error")} for s in statuses}


def document(model_name: str, model_version: str, server_version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a server serving ``model_name`` at ``model_version``."""
    name = {
        "name": "model_name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [model_name]},
    }
    version = {
        "name": "model_version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [model_version]},
    }

    def get(summary: str, body: str, *errors: int) -> dict[str, Any]:
        ok = {"200": {"description": "OK", "content": _content(body)}}
        return {"get": {"summary": summary, "responses": {**ok, **_errors(*errors)}}}

    def infer() -> dict[str, Any]:  # one per path: each path item gets its own parameters
        return {
            "post": {
                "summary": "Predict house prices",
                "requestBody": {"required": True, "content": _content("inference_request")},
                "responses": {
                    "200": {
                        "description": (
                            "The prices, one per row, as JSON or (when asked for) as binary data "
                            "after a JSON header (its length in Inference-Header-Content-Length)."
                        ),
                        "content": {
                            **_content("inference_response"),
                            "application/octet-stream": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, 404, 413, 503),
                },
            }
        }

    model = "/v2/models/{model_name}"
    versioned = model + "/versions/{model_version}"
    paths: dict[str, Any] = {
        "/v2/health/live": get("Server liveness", "server_live"),
        "/v2/health/ready": {
            "get": {
                "summary": "Server readiness",
                "responses": {
                    "200": {"description": "Ready", "content": _content("server_ready")},
                    "503": {"description": "Not ready", "content": _content("server_ready")},
                },
            }
        },
        "/v2": get("Server metadata", "server_metadata"),
        model: get("Model metadata", "model_metadata", 404, 503),
        versioned: get("Model metadata (a version)", "model_metadata", 404, 503),
        model + "/ready": get("Model readiness", "model_ready", 404, 503),
        versioned + "/ready": get("Model readiness (a version)", "model_ready", 404, 503),
        model + "/infer": infer(),
        versioned + "/infer": infer(),
    }
    for path, item in paths.items():
        parameters = [name, version] if "{model_version}" in path else [name] if "{" in path else []
        if parameters:
            item["parameters"] = parameters
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "BridgeAI model server (Open Inference Protocol v2)",
            "version": server_version,
            "description": __doc__.split("\n\n", 1)[1] if __doc__ else "",
        },
        "paths": paths,
        "components": {"schemas": _schemas(model_name)},
    }
