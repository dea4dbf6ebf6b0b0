"""Load generation and server accounting shared by the serving benchmarks.

* :func:`wrk` runs Debian's ``wrk`` (C, HdrHistogram latencies) with a Lua script that POSTs
  one fixed body and prints a JSON summary line.
* :func:`python_loop` runs ``bench/_loop.py`` (REST with aiohttp, or gRPC with grpc.aio) in a
  given interpreter: a Python client for what wrk cannot send (gRPC), and for REST next to it
  with the same client so the two protocols are compared like for like.
* :func:`cpu_seconds` sums the CPU time of a process group (a server and the workers it forked).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import BENCH

LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[BODY]==]
function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""
_ERRORS = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")


def cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) of every live process in the process group ``pgid``."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wrk(url: str, body: bytes, seconds: float, connections: int, work: Path) -> dict[str, Any]:
    """One wrk run (one thread, ``connections`` keep-alive connections): requests, req/s,
    p50/p90/p99/max in microseconds, and the error count."""
    work.mkdir(parents=True, exist_ok=True)
    script = work / "post.lua"
    script.write_text(LUA.replace("BODY", body.decode()))
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(seconds, 1):.0f}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"WRKJSON (\{.*\})", out)
    if not match:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    doc: dict[str, Any] = json.loads(match.group(1))
    doc["rps"] = doc["requests"] / (doc["duration_us"] / 1e6)
    doc["errors"] = sum(doc[k] for k in _ERRORS)
    return doc


def with_cpu(pgid: int, run: Any) -> dict[str, Any]:
    """Call ``run()`` (a load run returning ``requests``) and add the server's CPU per 1k."""
    before = cpu_seconds(pgid)
    result: dict[str, Any] = run()
    spent = cpu_seconds(pgid) - before
    result["cpu_ms_per_1k"] = spent * 1000 / max(result["requests"], 1) * 1000
    return result


def python_loop(
    python: str,
    mode: str,
    target: str,
    body: Path,
    *,
    seconds: float,
    concurrency: int,
    model: str,
) -> dict[str, Any]:
    """Run ``_loop.py`` (``mode`` ``rest`` or ``grpc``) with ``python`` and return its summary."""
    command = [
        python, str(BENCH / "_loop.py"), mode, target, str(body),
        "--seconds", str(seconds), "--concurrency", str(concurrency), "--model", model,
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    match = re.search(r"LOOPJSON (\{.*\})", proc.stdout)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"{mode} load loop failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    doc: dict[str, Any] = json.loads(match.group(1))
    return doc


def post_timed(
    port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[float, bytes, dict[str, str]]:
    """POST ``body`` once on a fresh connection; (seconds, response body, response headers).

    Raises:
        RuntimeError: the answer was not a 200.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    try:
        started = time.perf_counter()
        connection.request(
            "POST", path, body=body, headers=headers or {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"POST {path} -> {response.status}: {payload[:300]!r}")
    return elapsed, payload, {k.lower(): v for k, v in response.getheaders()}


def get(port: int, path: str) -> tuple[int, bytes]:
    """GET ``path``: (status, body); (0, b"") when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        connection.close()
