"""Coalesces concurrent predictions into one v2 call (dynamic batching, as MLServer and Triton do).

Requests that reach the model in the same event-loop iteration (or within ``max_wait`` seconds,
when set) are sent as one v2 request of shape ``[N]`` and the prices are handed back to each
caller in order. Under concurrency this divides the per-call cost (HTTP round trip, JSON,
LightGBM's call overhead) by the batch size, on both sides; a lone request waits for nothing
extra: its flush is scheduled for the next loop iteration.

Failures reach every caller of the batch. If the model server rejects a coalesced call as a bad
request (it should not, after validation), each caller's rows are retried alone so one request
can never fail another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from bridgeai.service.errors import ModelFailed, ServiceError
from bridgeai.service.model_client import Inference, ModelClient

_Pending = tuple[Sequence[Mapping[str, Any]], "asyncio.Future[Inference]"]


class InferenceBatcher:
    """Dynamic batching in front of a :class:`ModelClient`."""

    def __init__(self, client: ModelClient, *, max_rows: int = 64, max_wait: float = 0.0) -> None:
        self.client = client
        self.max_rows = max_rows
        self.max_wait = max_wait
        self._pending: list[_Pending] = []
        self._rows = 0
        self._handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Model calls made and rows sent, to see the batching at work in tests and metrics.
        self.calls = 0
        self.rows = 0

    async def infer(self, houses: Sequence[Mapping[str, Any]]) -> Inference:
        """Price ``houses``, sharing a model call with concurrent callers when possible."""
        if self.max_rows <= 1 or len(houses) >= self.max_rows:
            self.calls += 1
            self.rows += len(houses)
            return await self.client.infer(houses)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Inference] = loop.create_future()
        self._pending.append((houses, future))
        self._rows += len(houses)
        if self._rows >= self.max_rows:
            self._flush()
        elif self._handle is None:
            if self.max_wait > 0:
                self._handle = loop.call_later(self.max_wait, self._flush)
            else:
                self._handle = loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        pending, self._pending, self._rows = self._pending, [], 0
        if pending:
            task = asyncio.get_running_loop().create_task(self._call(pending))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _call(self, pending: list[_Pending]) -> None:
        houses = [house for rows, _ in pending for house in rows]
        self.calls += 1
        self.rows += len(houses)
        try:
            inference = await self.client.infer(houses)
        except ServiceError as exc:
            if isinstance(exc, ModelFailed) and len(pending) > 1:
                await asyncio.gather(*(self._alone(rows, future) for rows, future in pending))
            else:
                _fail(pending, type(exc), exc.message)
            return
        except BaseException as exc:  # never leave a caller waiting forever
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            raise
        start = 0
        for rows, future in pending:
            end = start + len(rows)
            if not future.done():  # the caller may have gone (client disconnected)
                future.set_result(Inference(inference.prices[start:end], inference.model_version))
            start = end

    async def _alone(self, rows: Sequence[Mapping[str, Any]], future: asyncio.Future[Inference]):
        try:
            result = await self.client.infer(rows)
        except ServiceError as exc:
            if not future.done():
                future.set_exception(type(exc)(exc.message))
            return
        if not future.done():
            future.set_result(result)


def _fail(pending: list[_Pending], kind: type[ServiceError], message: str) -> None:
    for _, future in pending:
        if not future.done():
            # A fresh exception per caller: one object raised in many tasks would share (and
            # grow) a single traceback.
            future.set_exception(kind(message))
