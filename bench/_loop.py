"""A closed-loop Python load client: N concurrent callers, each sending one request after another.

    python _loop.py rest http://127.0.0.1:8080/v2/models/m/infer body.json --seconds 20
    python _loop.py grpc 127.0.0.1:8081 body.json --model m --seconds 20

``rest`` POSTs the JSON body with aiohttp (one keep-alive connection per caller); ``grpc`` turns
the same v2 JSON request into a ``ModelInferRequest`` (KServe's v2 proto, from the ``kserve``
wheel's generated modules) and calls ``GRPCInferenceService/ModelInfer`` with ``grpc.aio`` over
one channel. It runs in the KServe anchor's venv (``bench/_venvs.py``), which has aiohttp,
grpcio and those modules, so it needs nothing from this project's environment. It prints one
``LOOPJSON {...}`` line: requests, seconds, req/s, p50/p99/max in microseconds, errors.

One Python process on one core: at a few thousand requests/s the client itself is a bottleneck,
the same for both protocols.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

_CONTENTS = {
    "BYTES": "bytes_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT64": "int64_contents",
    "INT32": "int_contents",
    "BOOL": "bool_contents",
}


def _flat(data: Any) -> list[Any]:
    if isinstance(data, list):
        out: list[Any] = []
        for item in data:
            out.extend(_flat(item))
        return out
    return [data]


def grpc_request(doc: dict[str, Any], model: str) -> Any:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    for tensor in doc["inputs"]:
        entry = request.inputs.add(
            name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
        )
        values = _flat(tensor["data"])
        if tensor["datatype"] == "BYTES":
            values = [v.encode() for v in values]
        getattr(entry.contents, _CONTENTS[tensor["datatype"]]).extend(values)
    return request


async def _callers(call: Any, seconds: float, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await call()
            except Exception:  # counted; the loop goes on
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e6 if latencies else 0

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "max_us": latencies[-1] * 1e6 if latencies else 0,
        "errors": errors,
    }


async def rest(url: str, body: bytes, seconds: float, concurrency: int) -> dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> None:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(response.status)

        await call()  # connect and warm once
        return await _callers(call, seconds, concurrency)


async def grpc_loop(
    target: str, doc: dict[str, Any], model: str, seconds: float, concurrency: int
) -> dict[str, Any]:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    request = grpc_request(doc, model)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        async def call() -> None:
            await stub.ModelInfer(request, timeout=10)

        await call()
        return await _callers(call, seconds, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["rest", "grpc"])
    parser.add_argument("target", help="REST URL, or host:port for gRPC")
    parser.add_argument("body", type=Path, help="a v2 JSON request body")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--model", default="house_price_prediction_prod")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    body = args.body.read_bytes()
    if args.mode == "rest":
        result = asyncio.run(rest(args.target, body, args.seconds, args.concurrency))
    else:
        doc = json.loads(body)
        result = asyncio.run(
            grpc_loop(args.target, doc, args.model, args.seconds, args.concurrency)
        )
    print("LOOPJSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
