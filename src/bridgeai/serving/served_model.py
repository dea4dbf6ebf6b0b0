"""The model a server process serves: loaded once, identified, predicting inline or pipelined.

Small batches are predicted inline with one thread (LightGBM's OpenMP threads spin between small
calls); large ones are encoded in chunks, ahead of one prediction thread that predicts them in
order.

Takes plain parameters, not the process settings: :mod:`bridgeai.serving.main` reads those.
"""

from __future__ import annotations

import collections
import itertools
import logging
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bridgeai import schema
from bridgeai.model.house_price import FeatureError, HousePriceModel
from bridgeai.model.source import ModelInfo, ModelSourceError
from bridgeai.serving import binary, codec
from bridgeai.serving.errors import ModelNotFoundError, ProtocolError

logger = logging.getLogger("bridgeai.serving.app")

#: Name prefix of the one thread that predicts large requests' chunks.
PREDICT_THREAD = "bridgeai-predict"
#: Encoded chunks of a large request that may wait for the prediction thread (memory bound:
#: ``AHEAD * chunk_rows`` rows of float64 features).
AHEAD = 8


@dataclass
class Answer:
    """An inference answer: the response body and what the server reports about it.

    Args:
        payload: the response body.
        json_length: the length of its JSON part when it carries binary data (for the
            response's ``Inference-Header-Content-Length``); None for plain JSON.
        rows: the number of rows predicted.
        request: the decoded request. A large JSON request is a million Python objects whose
            freeing takes ~10 ms: the server drops this after the response is sent
            (:meth:`release`), not before.
    """

    payload: bytes
    json_length: int | None
    rows: int
    request: codec.DecodedRequest | None

    def release(self) -> None:
        """Drop the decoded request."""
        self.request = None


@dataclass
class ServedModel:
    """The loaded model, the identity it is served under, and how it predicts.

    Args:
        model: the house-price model.
        info: its registry identity.
        name: the name it is served under.
        version: the version it is served under.
        batch_rows: requests with at least this many rows predict with ``batch_threads``.
        batch_threads: LightGBM threads for those.
        chunk_rows: requests with more rows are encoded chunk by chunk while the previous chunk
            predicts on the prediction thread.
    """

    model: HousePriceModel
    info: ModelInfo
    name: str
    version: str
    batch_rows: int = 2048
    batch_threads: int = 1
    chunk_rows: int = 16384
    # Made here, once: concurrent large requests share it (its one worker starts on first use).
    _pool: ThreadPoolExecutor = field(
        init=False,
        repr=False,
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix=PREDICT_THREAD),
    )

    def check(self, name: str, version: str | None) -> None:
        """Raise ``ModelNotFoundError`` unless this is the model that was asked for."""
        if name != self.name:
            raise ModelNotFoundError(
                f"model {name!r} is not served here; this server serves {self.name!r}"
            )
        if version is not None and version != self.version:
            raise ModelNotFoundError(
                f"model {name!r} version {version!r} is not served here; "
                f"this server serves version {self.version!r}"
            )

    def infer(self, body: bytes, request_id: str, json_length: int | None = None) -> Answer:
        """Decode a v2 request body, predict, and encode the response (blocking).

        Args:
            body: the request body.
            request_id: the id to answer with when the request has none.
            json_length: the ``Inference-Header-Content-Length`` header, for binary requests.
        """
        decoded = codec.decode_request(body, json_length)
        prices = self.prices(decoded)
        answer_id = decoded.id or request_id
        if decoded.binary_output:
            payload, header = binary.encode_response(self.name, self.version, answer_id, prices)
            return Answer(payload, header, decoded.rows, decoded)
        payload = codec.encode_response(self.name, self.version, answer_id, prices)
        return Answer(payload, None, decoded.rows, decoded)

    def prices(self, decoded: codec.DecodedRequest) -> np.ndarray:
        """:meth:`predict`, with a categorical the model does not know reported as a 400."""
        try:
            return self.predict(decoded)
        except FeatureError as exc:
            raise ProtocolError(f"input {exc}") from None

    def predict(self, request: codec.DecodedRequest) -> np.ndarray:
        """Prices for a decoded request: inline for small batches, pipelined for large ones.

        Raises:
            bridgeai.serving.errors.ProtocolError: a numeric value does not match its datatype.
            bridgeai.model.house_price.FeatureError: a categorical value is not allowed.
        """
        rows = request.rows
        if rows < self.batch_rows:
            return self.model.predict(request.rows_between(), num_threads=1)
        if rows <= self.chunk_rows:
            return self.model.predict(request.rows_between(), num_threads=self.batch_threads)
        out = np.empty(rows, dtype=np.float64)
        # A small first chunk so LightGBM starts early; then chunk_rows at a time. Chunks are
        # encoded as fast as they can be (up to AHEAD waiting): while this thread encodes it
        # holds the GIL, which the prediction thread needs between LightGBM calls, so encoding
        # everything early, then waiting (without the GIL), keeps the prediction thread busy.
        first = min(self.chunk_rows, max(self.chunk_rows // 4, 256))
        bounds = [0, *range(first, rows, self.chunk_rows), rows]
        waiting: collections.deque[Future[None]] = collections.deque()
        try:
            for start, stop in itertools.pairwise(bounds):
                if len(waiting) >= AHEAD:
                    waiting.popleft().result()
                matrix = self.model.encode(request.rows_between(start, stop))
                waiting.append(self._pool.submit(self._predict_into, matrix, out, start, stop))
        except BaseException:
            for future in waiting:
                future.cancel()
            wait(waiting)  # the chunk being predicted writes into ``out``: let it finish
            raise
        for future in waiting:
            future.result()
        return out

    def _predict_into(self, matrix: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
        out[start:stop] = self.model.predict_matrix(matrix, num_threads=self.batch_threads)

    def warm_up(self) -> None:
        """Predict the example house in common spellings; fail now if the model is broken."""
        rows = []
        for spell in (str.lower, str.upper, str.capitalize):
            rows.append(
                {k: spell(v) if isinstance(v, str) else v for k, v in schema.EXAMPLE_HOUSE.items()}
            )
        for column in schema.CATEGORICAL:  # every allowed value once, so all spellings are cached
            for value in schema.ALLOWED[column]:
                for spell in (str.lower, str.upper, str.capitalize):
                    rows.append({**rows[0], column: spell(value)})
        columns = {f: [row[f] for row in rows] for f in schema.FEATURES}
        prices = self.model.predict(columns, num_threads=1)
        if not np.all(np.isfinite(prices)):
            raise ModelSourceError("the model predicts non-finite prices for the example house")

    def close(self) -> None:
        """Stop the prediction thread and free LightGBM's per-thread buffers."""
        self._pool.shutdown(wait=True)
        close = getattr(self.model.booster, "close", None)
        if close is not None:
            close()


def load_served_model(
    model_uri: str,
    *,
    name: str | None = None,
    batch_rows: int = 2048,
    batch_threads: int = 1,
    chunk_rows: int = 16384,
) -> ServedModel:
    """Load the model ``model_uri`` names (downloading it if it is a registry URI), warmed up.

    Args:
        model_uri: a model directory, ``file://`` URI, ``models:/`` or ``runs:/`` URI.
        name: the name to serve it under (default: its registered name).
        batch_rows: see :class:`ServedModel`; also the fast booster's row limit.
        batch_threads: see :class:`ServedModel`.
        chunk_rows: see :class:`ServedModel`.

    Raises:
        ModelSourceError: the URI or directory cannot be used; the message says why.
    """
    from bridgeai.model import fast_booster
    from bridgeai.model import source as model_source

    started = time.perf_counter()
    if model_source.is_registry_uri(model_uri):
        # Kept for the life of the process; removed at exit by the OS's tmp cleaning.
        dest = Path(tempfile.mkdtemp(prefix="bridgeai-model-")) / "model"
        model_dir, info = model_source.fetch(model_uri, dest)
    else:
        model_dir, info = model_source.read_local(model_uri)
    try:
        model = HousePriceModel.load(model_dir)
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"cannot load the model in {model_dir}: {exc}") from None
    model.booster = fast_booster.wrap(model.booster, max_rows=batch_rows)
    served = ServedModel(
        model=model,
        info=info,
        name=name or info.name,
        version=info.version or info.run_id or "unversioned",
        batch_rows=batch_rows,
        batch_threads=batch_threads,
        chunk_rows=chunk_rows,
    )
    served.warm_up()
    logger.info(
        "model loaded",
        extra={
            "fields": {
                "model_name": served.name,
                "model_version": served.version,
                "run_id": info.run_id,
                "source": info.source or model_uri,
                "trees": int(model.booster.num_trees()),
                "seconds": round(time.perf_counter() - started, 3),
            }
        },
    )
    return served
