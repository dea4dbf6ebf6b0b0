"""Smoke predictions: real houses sent through the prediction service after a deployment.

The pipeline checks a fresh deployment end to end the way a client would use it: it posts held-out
houses (the data version's test split) to ``POST /predict`` one by one and compares the answers
with their known prices. Every request lands in the prediction log, so the same window feeds the
production drift check.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from bridgeai import schema


class SmokeError(RuntimeError):
    """The prediction service failed a smoke request; the message says which and why."""


class SmokeResult(BaseModel):
    """What the smoke predictions saw."""

    service_url: str = Field(description="Base URL of the prediction service that answered.")
    requests: int = Field(description="Predictions requested (one house each).")
    model_name: str
    model_version: str
    example_prediction: float = Field(description="Price for the original's example house.")
    unit: str
    mape: float | None = Field(
        default=None, description="Mean absolute percentage error against the known prices."
    )
    mean_latency_ms: float
    started_at: float = Field(description="Unix time of the first request (the log window).")
    finished_at: float


def run_smoke(
    service_url: str,
    houses: Sequence[Mapping[str, Any]],
    *,
    api_key: str | None = None,
    timeout: float = 10.0,
    ready_timeout: float = 180.0,
) -> SmokeResult:
    """Wait until the service is ready, then post the original's example house and each of
    ``houses`` to ``/predict``.

    Args:
        service_url: the service's base URL, e.g. ``http://127.0.0.1:8000``.
        houses: rows with the 12 features and, optionally, the known ``price``.
        api_key: sent as ``X-API-Key`` when the service requires one.
        timeout: seconds per request.
        ready_timeout: seconds to wait for ``/ready``. On a cluster the Service routes to a
            replica only once its readiness probe passes, which is some seconds after the model
            it depends on became ready.

    Raises:
        SmokeError: the service did not get ready, or a request failed or answered something
            other than the original's contract.
    """
    import httpx

    headers = {"X-API-Key": api_key} if api_key else {}
    base = service_url.rstrip("/")
    started = time.time()
    latencies: list[float] = []
    errors: list[float] = []
    with httpx.Client(base_url=base, headers=headers, timeout=timeout) as client:
        _wait_ready(client, base, ready_timeout)
        first = _predict(client, dict(schema.EXAMPLE_HOUSE), latencies)
        for house in houses:
            body = {name: _plain(house[name]) for name in schema.FEATURES}
            answer = _predict(client, body, latencies)
            price = house.get(schema.TARGET)
            if price:
                predicted = float(answer["response"]["prediction"])
                errors.append(abs(predicted - float(price)) / float(price))
    return SmokeResult(
        service_url=base,
        requests=len(latencies),
        model_name=str(first.get("model_name", "")),
        model_version=str(first.get("model_version", "")),
        example_prediction=float(first["response"]["prediction"]),
        unit=str(first["response"].get("unit", "")),
        mape=sum(errors) / len(errors) if errors else None,
        mean_latency_ms=1000 * sum(latencies) / len(latencies),
        started_at=started,
        finished_at=time.time(),
    )


def _wait_ready(client: Any, base: str, ready_timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + ready_timeout
    last = "no answer"
    while True:
        try:
            answer = client.get("/ready")
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text[:300]}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise SmokeError(
                f"the prediction service at {base} was not ready within {ready_timeout:.0f} s "
                f"(last /ready: {last})"
            )
        time.sleep(1.0)


def _predict(client: Any, body: dict[str, Any], latencies: list[float]) -> dict[str, Any]:
    import httpx

    began = time.perf_counter()
    try:
        response = client.post("/predict", json=body)
    except httpx.HTTPError as exc:
        where = client.base_url
        raise SmokeError(f"the prediction service at {where} is unreachable: {exc}") from None
    latencies.append(time.perf_counter() - began)
    if response.status_code != 200:
        raise SmokeError(f"POST /predict answered {response.status_code}: {response.text[:300]}")
    answer: dict[str, Any] = response.json()
    prediction = answer.get("response", {}).get("prediction")
    if answer.get("status") != 200 or not isinstance(prediction, int | float) or prediction <= 0:
        raise SmokeError(f"POST /predict answered an unexpected body: {str(answer)[:300]}")
    return answer


def _plain(value: Any) -> Any:
    # numpy scalars from a polars row are not JSON serialisable.
    return value.item() if hasattr(value, "item") else value
