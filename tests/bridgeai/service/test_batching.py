"""Dynamic batching: concurrent callers share model calls and still get their own prices."""

from __future__ import annotations

import asyncio

import pytest

from bridgeai import procs, schema
from bridgeai.service.batching import InferenceBatcher
from bridgeai.service.errors import ModelFailed, ModelUnavailable
from bridgeai.service.model_client import ModelClient
from tests.support.model_server import MODEL_NAME, reference_prices

pytestmark = pytest.mark.integration


def _houses(n: int) -> list[dict[str, object]]:
    return [
        {
            **schema.EXAMPLE_HOUSE,
            "area": 1000 + 37 * i,
            "bedrooms": i % 6,
            "airconditioning": "yes" if i % 2 else "no",
        }
        for i in range(n)
    ]


async def _run(url: str, scenario, **batcher_args):  # type: ignore[no-untyped-def]
    client = ModelClient(url, MODEL_NAME, retries=0)
    await client.open()
    try:
        return await scenario(InferenceBatcher(client, **batcher_args))
    finally:
        await client.close()


def test_concurrent_callers_share_calls_and_get_their_own_prices(model_server, local_model) -> None:
    houses = _houses(40)

    async def scenario(batcher: InferenceBatcher):
        results = await asyncio.gather(
            *(batcher.infer([h]) for h in houses[:30]), batcher.infer(houses[30:])
        )
        return results, batcher.calls

    results, calls = asyncio.run(_run(model_server.url, scenario, max_rows=64))
    expected = reference_prices(local_model, houses).tolist()
    got = [r.prices[0] for r in results[:30]] + results[30].prices
    assert got == pytest.approx(expected, rel=1e-9)
    assert calls < 5  # 31 callers, a handful of model calls


def test_batches_are_capped_at_max_rows(model_server) -> None:
    async def scenario(batcher: InferenceBatcher):
        await asyncio.gather(*(batcher.infer([h]) for h in _houses(20)))
        return batcher.calls, batcher.rows

    calls, rows = asyncio.run(_run(model_server.url, scenario, max_rows=4))
    assert rows == 20 and calls >= 5


def test_max_rows_one_turns_batching_off(model_server) -> None:
    async def scenario(batcher: InferenceBatcher):
        await asyncio.gather(*(batcher.infer([h]) for h in _houses(6)))
        return batcher.calls

    assert asyncio.run(_run(model_server.url, scenario, max_rows=1)) == 6


def test_one_rejected_request_does_not_fail_the_others_in_its_batch(model_server) -> None:
    good = _houses(3)
    bad = {**schema.EXAMPLE_HOUSE, "mainroad": "maybe"}  # bypasses validation on purpose

    async def scenario(batcher: InferenceBatcher):
        return await asyncio.gather(
            *(batcher.infer([h]) for h in [good[0], bad, good[1], good[2]]),
            return_exceptions=True,
        )

    results = asyncio.run(_run(model_server.url, scenario))
    assert isinstance(results[1], ModelFailed) and "mainroad" in results[1].message
    assert all(not isinstance(r, BaseException) for i, r in enumerate(results) if i != 1)


def test_an_unreachable_server_fails_every_caller_with_503() -> None:
    async def scenario(batcher: InferenceBatcher):
        return await asyncio.gather(
            *(batcher.infer([h]) for h in _houses(5)), return_exceptions=True
        )

    results = asyncio.run(_run(f"http://127.0.0.1:{procs.free_port()}", scenario))
    assert all(isinstance(r, ModelUnavailable) for r in results)
    assert len({id(r) for r in results}) == 5  # each caller its own exception object
