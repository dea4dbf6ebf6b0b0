"""The model server's Prometheus metrics (``GET /metrics``), summed over its worker processes.

What is counted, per protocol (``rest``, ``grpc``) and endpoint (``infer``, ``model_metadata``,
``model_ready``, ``server_metadata``, ``server_live``, ``server_ready``, ``metrics``,
``openapi``, ``other``):

* ``bridgeai_model_server_requests_total{protocol,endpoint,status}``: every answer, ``status``
  being the HTTP status (REST) or the gRPC status code's name (gRPC);
* ``bridgeai_model_server_request_errors_total{protocol,endpoint,status}``: those that were not
  a success;
* ``bridgeai_model_server_request_duration_seconds{protocol,endpoint}``: a latency histogram;
* ``bridgeai_model_server_request_rows{protocol}``: rows per inference request (histogram);
* ``bridgeai_model_server_model_info{model_name,model_version,run_id}``: 1 for the served model;
* ``bridgeai_model_server_workers``: worker processes alive.

Counting is plain dictionary arithmetic in the worker that answered (about a microsecond a
request: :mod:`prometheus_client` would cost several times that on the hot path, and its
multi-process mode a file write per update). With several workers, each writes a snapshot of its
counts to ``<directory>/worker-<pid>.json`` at most every ``interval`` seconds while it is busy
(atomically, by rename); whichever worker answers ``/metrics`` adds its live counts to the other
workers' latest snapshots, so another worker's last quarter-second may be missing from one scrape
but appears in the next. A dead worker's snapshot keeps counting, so the totals never go back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from bisect import bisect_left
from pathlib import Path
from typing import Any, Final

import orjson

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
ROW_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
_PREFIX = "bridgeai_model_server"
_SUCCESS = frozenset({"200", "OK"})

#: A histogram: one count per bucket (the last is +Inf), then the sum of observed values.
Histogram = list[float]


def _new_histogram(buckets: tuple[float, ...]) -> Histogram:
    return [0.0] * (len(buckets) + 2)


class ServerMetrics:
    """One worker's counts, and the exposition of every worker's.

    Args:
        directory: where the workers of one server share their snapshots (None: one process).
        interval: longest a busy worker's snapshot lags behind its counts, in seconds.
    """

    def __init__(self, directory: Path | None = None, interval: float = 0.25) -> None:
        self.directory = directory
        self.interval = interval
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.rows: dict[str, Histogram] = {}
        self.model: dict[str, str] | None = None
        self._scheduled = False
        self._snapshot = directory / f"worker-{os.getpid()}.json" if directory is not None else None

    def served(self, name: str, version: str, run_id: str | None) -> None:
        """Record the model this worker serves."""
        self.model = {"model_name": name, "model_version": version, "run_id": run_id or ""}
        self._changed()

    def observe(
        self, protocol: str, endpoint: str, status: str, seconds: float, rows: int | None = None
    ) -> None:
        """Count one answered request (called on the event loop, or under the GIL)."""
        key = (protocol, endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.latency.get((protocol, endpoint))
        if histogram is None:
            histogram = self.latency[protocol, endpoint] = _new_histogram(LATENCY_BUCKETS)
        histogram[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        histogram[-1] += seconds
        if rows is not None:
            histogram = self.rows.get(protocol)
            if histogram is None:
                histogram = self.rows[protocol] = _new_histogram(ROW_BUCKETS)
            histogram[bisect_left(ROW_BUCKETS, rows)] += 1
            histogram[-1] += rows
        if self._snapshot is not None and not self._scheduled:
            self._changed()

    # -- sharing between workers ------------------------------------------------------------
    def _changed(self) -> None:
        if self._snapshot is None:
            return
        self._scheduled = True
        try:
            asyncio.get_running_loop().call_later(self.interval, self.write_snapshot)
        except RuntimeError:  # no loop in this thread (a gRPC thread, start-up): write now
            self.write_snapshot()

    def _state(self) -> dict[str, Any]:
        return {
            "requests": [[*key, value] for key, value in self.requests.items()],
            "latency": [[*key, value] for key, value in self.latency.items()],
            "rows": [[key, value] for key, value in self.rows.items()],
            "model": self.model,
        }

    def write_snapshot(self) -> None:
        """Write this worker's counts for the others to read (atomically)."""
        self._scheduled = False
        if self._snapshot is None:
            return
        temporary = self._snapshot.with_suffix(".tmp")
        with contextlib.suppress(OSError):  # a full disk must not fail requests
            temporary.write_bytes(orjson.dumps(self._state()))
            os.replace(temporary, self._snapshot)

    def _states(self) -> tuple[list[dict[str, Any]], int]:
        """This worker's live state and every other worker's snapshot; live workers."""
        states = [self._state()]
        alive = 1
        if self.directory is None:
            return states, alive
        for path in sorted(self.directory.glob("worker-*.json")):
            if path == self._snapshot:
                continue
            try:
                states.append(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError):
                continue  # being replaced, or torn by a crash: the next scrape reads it
            alive += _alive(path.stem.removeprefix("worker-"))
        return states, alive

    # -- exposition -------------------------------------------------------------------------
    def render(self) -> bytes:
        """Every worker's counts, summed, in the Prometheus text format."""
        states, alive = self._states()
        requests: dict[tuple[str, ...], float] = {}
        latency: dict[tuple[str, ...], Histogram] = {}
        rows: dict[tuple[str, ...], Histogram] = {}
        model = self.model
        for state in states:
            for *key, value in state["requests"]:
                requests[tuple(key)] = requests.get(tuple(key), 0) + value
            _add(latency, state["latency"], LATENCY_BUCKETS)
            _add(rows, state["rows"], ROW_BUCKETS)
            model = model or state.get("model")
        lines: list[str] = []
        metric = f"{_PREFIX}_requests_total"
        lines += [f"# HELP {metric} Requests answered.", f"# TYPE {metric} counter"]
        for (protocol, endpoint, status), value in sorted(requests.items()):
            labels = _labels(protocol=protocol, endpoint=endpoint, status=status)
            lines.append(f"{metric}{labels} {_number(value)}")
        metric = f"{_PREFIX}_request_errors_total"
        lines += [f"# HELP {metric} Requests answered with an error.", f"# TYPE {metric} counter"]
        for (protocol, endpoint, status), value in sorted(requests.items()):
            if status not in _SUCCESS:
                labels = _labels(protocol=protocol, endpoint=endpoint, status=status)
                lines.append(f"{metric}{labels} {_number(value)}")
        lines += _histogram_lines(
            f"{_PREFIX}_request_duration_seconds",
            "Time from the request to the answer, in seconds.",
            latency,
            LATENCY_BUCKETS,
            ("protocol", "endpoint"),
        )
        lines += _histogram_lines(
            f"{_PREFIX}_request_rows",
            "Rows per inference request.",
            rows,
            ROW_BUCKETS,
            ("protocol",),
        )
        metric = f"{_PREFIX}_model_info"
        lines += [f"# HELP {metric} The model this server serves.", f"# TYPE {metric} gauge"]
        if model:
            lines.append(f"{metric}{_labels(**model)} 1")
        metric = f"{_PREFIX}_workers"
        lines += [f"# HELP {metric} Worker processes alive.", f"# TYPE {metric} gauge"]
        lines.append(f"{metric} {alive}")
        return ("\n".join(lines) + "\n").encode()


def _alive(pid: str) -> int:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return 0
    except PermissionError:
        return 1
    return 1


def _add(
    into: dict[tuple[str, ...], Histogram], items: list[Any], buckets: tuple[float, ...]
) -> None:
    for *key, values in items:
        total = into.setdefault(tuple(key), _new_histogram(buckets))
        for index, value in enumerate(values):
            total[index] += value


def _number(value: float) -> str:
    """A sample value: whole numbers in full (``%g`` would round a count to 6 digits)."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _histogram_lines(
    metric: str,
    description: str,
    histograms: dict[tuple[str, ...], Histogram],
    buckets: tuple[float, ...],
    names: tuple[str, ...],
) -> list[str]:
    lines = [f"# HELP {metric} {description}", f"# TYPE {metric} histogram"]
    for key, values in sorted(histograms.items()):
        base = dict(zip(names, key, strict=True))
        cumulative = 0.0
        for bound, count in zip((*buckets, float("inf")), values[:-1], strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f"{metric}_bucket{_labels(**base, le=le)} {_number(cumulative)}")
        lines.append(f"{metric}_sum{_labels(**base)} {_number(values[-1])}")
        lines.append(f"{metric}_count{_labels(**base)} {_number(cumulative)}")
    return lines
