"""FastBooster predicts exactly what LightGBM's own predict does, on every path."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bridgeai import schema
from bridgeai.model import fast_booster
from bridgeai.model.house_price import HousePriceModel
from bridgeai.testing.models import tiny_model
from bridgeai.testing.synthetic import housing_frame


@pytest.fixture(scope="module")
def model() -> HousePriceModel:
    return tiny_model()


@pytest.fixture(scope="module")
def matrix(model: HousePriceModel) -> np.ndarray:
    frame = housing_frame(3000, seed=4)
    return model.encode({f: frame[f].to_list() for f in schema.FEATURES})


@pytest.mark.parametrize("rows", [1, 2, 17, 2048, 3000])
def test_predictions_equal_lightgbm(model: HousePriceModel, matrix: np.ndarray, rows: int) -> None:
    fast = fast_booster.FastBooster(model.booster, max_rows=2048)
    expected = model.booster.predict(matrix[:rows], num_threads=1)
    np.testing.assert_array_equal(fast.predict(matrix[:rows], num_threads=1), expected)
    np.testing.assert_array_equal(fast.predict(matrix[:rows], num_threads=2), expected)
    fast.close()


def test_non_contiguous_and_float32_inputs_are_handled(
    model: HousePriceModel, matrix: np.ndarray
) -> None:
    fast = fast_booster.FastBooster(model.booster)
    strided = matrix[::3][:5]
    np.testing.assert_array_equal(
        fast.predict(strided, num_threads=1), model.booster.predict(strided, num_threads=1)
    )
    single = matrix[:1].astype(np.float32)
    np.testing.assert_allclose(
        fast.predict(single, num_threads=1), model.booster.predict(single, num_threads=1)
    )


def test_single_rows_from_many_threads_stay_correct(
    model: HousePriceModel, matrix: np.ndarray
) -> None:
    fast = fast_booster.FastBooster(model.booster)
    expected = model.booster.predict(matrix[:400], num_threads=1)
    errors: list[int] = []

    def work(offset: int) -> None:
        for i in range(offset, 400, 4):
            if fast.predict(matrix[i : i + 1], num_threads=1)[0] != expected[i]:
                errors.append(i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    fast.close()


def test_wrapped_model_keeps_the_boosters_other_methods(model: HousePriceModel) -> None:
    wrapped = fast_booster.wrap(model.booster)
    assert isinstance(wrapped, fast_booster.FastBooster)
    assert wrapped.num_trees() == model.booster.num_trees()
    assert wrapped.feature_name() == list(schema.FEATURES)
