"""The served model in-process: identity checks, inline and pipelined prediction, one pool."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import orjson
import pytest

from bridgeai import schema
from bridgeai.model.house_price import HousePriceModel
from bridgeai.serving import codec
from bridgeai.serving.errors import ModelNotFoundError, ProtocolError
from bridgeai.serving.served_model import PREDICT_THREAD, ServedModel, load_served_model
from bridgeai.testing.synthetic import housing_frame
from tests.support.model_server import save_with_info


@pytest.fixture
def served(model: HousePriceModel, tmp_path: Path) -> Iterator[ServedModel]:
    """The model loaded as the server loads it, with thresholds small enough to pipeline."""
    model_dir = save_with_info(model, tmp_path / "model", version="4")
    loaded = load_served_model(str(model_dir), batch_rows=64, chunk_rows=256)
    try:
        yield loaded
    finally:
        loaded.close()


def _request(rows: int, seed: int) -> codec.DecodedRequest:
    houses = housing_frame(rows, seed=seed).select(schema.FEATURES).to_dicts()
    return codec.decode_request(orjson.dumps(codec.build_request(houses)))


def _predict_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(PREDICT_THREAD)]


def test_identity_comes_from_the_model_directory(served: ServedModel) -> None:
    assert (served.name, served.version) == ("house_price_prediction_prod", "4")
    served.check("house_price_prediction_prod", None)
    served.check("house_price_prediction_prod", "4")
    with pytest.raises(ModelNotFoundError, match="version '5' is not served here") as caught:
        served.check("house_price_prediction_prod", "5")
    assert caught.value.status_code == 404


@pytest.mark.parametrize("rows", [1, 63, 64, 256, 257, 1000])
def test_inline_and_pipelined_paths_predict_the_same_prices(
    served: ServedModel, model: HousePriceModel, rows: int
) -> None:
    # 1-63 rows inline with one thread, 64-256 in one call, beyond 256 chunk by chunk.
    request = _request(rows, seed=rows)
    expected = model.predict(request.rows_between())
    np.testing.assert_allclose(served.predict(request), expected, rtol=1e-12)


def test_concurrent_large_requests_share_the_one_pool_made_at_load(
    served: ServedModel, model: HousePriceModel
) -> None:
    pool = served._pool  # made at load, before any request could race to make it
    before = len(_predict_threads())
    requests = [_request(2_000, seed=s) for s in range(8)]
    start = threading.Barrier(len(requests))

    def predict(request: codec.DecodedRequest) -> np.ndarray:
        start.wait()
        return served.predict(request)

    with ThreadPoolExecutor(len(requests)) as callers:
        results = list(callers.map(predict, requests))
    assert served._pool is pool
    assert len(_predict_threads()) == before + 1  # one prediction thread, not one per request
    for request, prices in zip(requests, results, strict=True):
        np.testing.assert_allclose(prices, model.predict(request.rows_between()), rtol=1e-12)


def test_close_stops_the_prediction_thread(model: HousePriceModel, tmp_path: Path) -> None:
    model_dir = save_with_info(model, tmp_path / "model", version="1")
    loaded = load_served_model(str(model_dir), batch_rows=64, chunk_rows=256)
    before = set(_predict_threads())
    loaded.predict(_request(1_000, seed=1))
    started = set(_predict_threads()) - before
    assert len(started) == 1
    loaded.close()
    assert not any(t.is_alive() for t in started)


def test_a_bad_category_is_a_400_naming_the_input(served: ServedModel) -> None:
    body = codec.build_request([{**schema.EXAMPLE_HOUSE, "mainroad": "maybe"}])
    with pytest.raises(ProtocolError, match="input mainroad: 'maybe' is not one of") as caught:
        served.infer(orjson.dumps(body), "rid")
    assert caught.value.status_code == 400
