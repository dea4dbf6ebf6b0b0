"""Runs inside the kserve virtualenv (``kserve_python`` fixture): KServe's own
``InferenceRESTClient`` (protocol v2) and ``InferenceGRPCClient`` against the model server.

Reads ``{"url", "grpc", "model", "features", "datatypes", "cases"}`` as JSON on stdin; for each
case (``houses``, ``binary``, optionally a ``bad`` change) prints the prices or the error the
client raised, as one JSON document on stdout. Uses only kserve, numpy and the standard library.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.inference_client import InferenceGRPCClient

_NUMPY = {"BYTES": np.object_, "FP32": np.float32, "FP64": np.float64, "INT64": np.int64}


def _request(spec: dict[str, Any], case: dict[str, Any]) -> InferRequest:
    houses = case["houses"]
    inputs = []
    for name in spec["features"]:
        datatype = case.get("datatypes", {}).get(name, spec["datatypes"][name])
        values = np.array([h[name] for h in houses], dtype=_NUMPY[datatype])
        tensor = InferInput(name=name, shape=[len(houses)], datatype=datatype)
        tensor.set_data_from_numpy(values, binary_data=case["binary"])
        inputs.append(tensor)
    return InferRequest(model_name=spec["model"], infer_inputs=inputs, request_id="kserve-1")


async def _rest(spec: dict[str, Any]) -> list[dict[str, Any]]:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=60))
    out = []
    for case in spec["cases"]:
        try:
            response = await client.infer(
                spec["url"], _request(spec, case), model_name=spec["model"]
            )
        except Exception as exc:  # the client's own error, reported to the test
            status = getattr(getattr(exc, "response", None), "status_code", None)
            out.append({"label": case["label"], "status": status, "error": str(exc)})
            continue
        output = response.outputs[0]
        out.append(
            {
                "label": case["label"],
                "prices": output.as_numpy().tolist(),
                "id": response.id,
                "model_version": response.model_version,
            }
        )
    await client._client.aclose()
    return out


async def _grpc(spec: dict[str, Any]) -> list[dict[str, Any]]:
    client = InferenceGRPCClient(spec["grpc"], timeout=60)
    out = []
    for case in spec["cases"]:
        try:
            response = await client.infer(_request(spec, case))
        except Exception as exc:
            error = exc
            code = error.code() if hasattr(error, "code") else None
            details = error.details() if hasattr(error, "details") else str(error)
            out.append({"label": case["label"], "status": str(code), "error": details})
            continue
        out.append({"label": case["label"], "prices": response.outputs[0].as_numpy().tolist()})
    await client.close()
    return out


def main() -> None:
    spec = json.load(sys.stdin)
    results = {"rest": asyncio.run(_rest(spec))}
    if spec.get("grpc"):
        results["grpc"] = asyncio.run(_grpc(spec))
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
