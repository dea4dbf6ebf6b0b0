"""Prometheus metrics of one service instance, in its own registry (served at ``/metrics``).

Request counts and latencies are recorded by a pure ASGI middleware (cheap: no Starlette
``BaseHTTPMiddleware``) for the prediction endpoints, labelled by endpoint, HTTP status and the
model version that answered. The prediction log's queue, spool and database state, and the
model calls after dynamic batching, are read when Prometheus scrapes, so the request path pays
nothing for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from bridgeai.service.batching import InferenceBatcher
    from bridgeai.service.log_writer import LogWriter

#: Paths measured; anything else (docs, probes, 404s from fuzzers) stays out of the labels.
PREDICT_PATHS = frozenset({"/predict", "/predict/batch"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NO_VERSION = "none"


class _StateCollector(Collector):
    def __init__(
        self,
        writer: Callable[[], LogWriter | None],
        batcher: Callable[[], InferenceBatcher | None],
        lane_requests: Callable[[], int],
    ) -> None:
        self._writer = writer
        self._batcher = batcher
        self._lane_requests = lane_requests

    def collect(self) -> Iterator[Any]:
        yield CounterMetricFamily(
            "bridgeai_fast_lane_requests",
            "Prediction requests the fast lane took (0 with BRIDGEAI_FAST_LANE=false).",
            value=self._lane_requests(),
        )
        batcher = self._batcher()
        if batcher is not None:
            yield CounterMetricFamily(
                "bridgeai_model_calls",
                "v2 inference calls made to the model server (after dynamic batching).",
                value=batcher.calls,
            )
            yield CounterMetricFamily(
                "bridgeai_model_rows", "Houses sent to the model server.", value=batcher.rows
            )
        writer = self._writer()
        if writer is None:
            return
        yield GaugeMetricFamily(
            "bridgeai_prediction_log_spool_depth",
            "Prediction-log rows in the spool on disk, waiting for the database.",
            value=writer.spool_depth,
        )
        yield GaugeMetricFamily(
            "bridgeai_prediction_log_queue_depth",
            "Prediction-log rows queued in memory for the next batch.",
            value=writer.queue_depth,
        )
        yield GaugeMetricFamily(
            "bridgeai_prediction_log_database_up",
            "1 while the writer can reach the prediction-log database.",
            value=1 if writer.db_up else 0,
        )
        for name, value, text in (
            ("written", writer.rows_written, "committed to the database"),
            ("spooled", writer.rows_spooled, "written to the disk spool"),
            ("rejected", writer.rows_rejected, "rejected by the database and set aside"),
            ("adopted", writer.rows_adopted, "found in the spool of a dead process"),
            ("torn", writer.rows_torn, "found torn in a spool (cut mid-write, never answered)"),
        ):
            yield CounterMetricFamily(
                f"bridgeai_prediction_log_rows_{name}", f"Prediction-log rows {text}.", value=value
            )


class ServiceMetrics:
    """The metrics of one app instance (a registry per app keeps tests independent)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "bridgeai_prediction_requests",
            "Prediction requests by endpoint, HTTP status and model version.",
            ["endpoint", "status", "model_version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bridgeai_prediction_request_duration_seconds",
            "Prediction request latency by endpoint, HTTP status and model version.",
            ["endpoint", "status", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.writer: LogWriter | None = None
        self.batcher: InferenceBatcher | None = None
        #: Requests the fast lane took (a plain int: the lane runs on the event loop only).
        self.lane_requests = 0
        self.registry.register(
            _StateCollector(lambda: self.writer, lambda: self.batcher, lambda: self.lane_requests)
        )

    def observe(
        self, endpoint: str, status: int, model_version: str | None, seconds: float
    ) -> None:
        labels = (endpoint, str(status), model_version or NO_VERSION)
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)


class MetricsMiddleware:
    """Pure ASGI middleware timing the prediction endpoints and stamping their start time."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or path not in PREDICT_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        state["started"] = started
        status = 500

        async def send_and_watch(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self.metrics.observe(
                path, status, state.get("model_version"), time.perf_counter() - started
            )
