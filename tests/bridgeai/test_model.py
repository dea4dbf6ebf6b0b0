"""HousePriceModel: encoding, case-insensitivity, imputation, save and load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bridgeai import schema
from bridgeai.model.house_price import CodedColumn, FeatureError, HousePriceModel, find_model_dir
from bridgeai.testing.models import tiny_model


@pytest.fixture(scope="module")
def model() -> HousePriceModel:
    return tiny_model()


def _rows(**changes: object) -> dict[str, list[object]]:
    row = {**schema.EXAMPLE_HOUSE, **changes}
    return {f: [row[f]] for f in schema.FEATURES}


def test_categoricals_in_any_case_give_identical_predictions(model: HousePriceModel) -> None:
    lower = model.predict(_rows())
    upper = model.predict(_rows(mainroad="YES", basement=" Yes ", furnishingstatus="FURNISHED"))
    assert lower[0] > 0
    np.testing.assert_array_equal(lower, upper)


def test_categoricals_change_the_prediction(model: HousePriceModel) -> None:
    # The original's bug made categoricals irrelevant; here they must matter.
    with_ac = model.predict(_rows(airconditioning="yes", prefarea="yes"))
    without = model.predict(_rows(airconditioning="no", prefarea="no"))
    assert with_ac[0] != without[0]


def test_unknown_category_and_bad_numbers_name_the_column(model: HousePriceModel) -> None:
    with pytest.raises(FeatureError, match="furnishingstatus: 'palace'"):
        model.encode(_rows(furnishingstatus="palace"))
    with pytest.raises(FeatureError, match="area: expected numbers"):
        model.encode(_rows(area="big"))
    columns = _rows()
    del columns["parking"]
    with pytest.raises(FeatureError, match=r"missing feature.*parking"):
        model.encode(columns)


def test_coded_categoricals_encode_as_their_spelled_out_rows(model: HousePriceModel) -> None:
    spellings = [b"yes", b"NO", b" Yes", b"no"]
    codes = np.array([0, 1, 1, 2, 3, 0, 2], dtype=np.int64)
    spelled = {f: [schema.EXAMPLE_HOUSE[f]] * len(codes) for f in schema.FEATURES}
    coded = dict(spelled)
    spelled["basement"] = [spellings[c] for c in codes]
    coded["basement"] = CodedColumn(codes, spellings)
    np.testing.assert_array_equal(model.encode(coded), model.encode(spelled))
    assert list(coded["basement"][2:4]) == [b"NO", b" Yes"]
    with pytest.raises(FeatureError, match="basement: 'maybe'"):
        model.encode({**coded, "basement": CodedColumn(codes * 0, [b"maybe"])})
    with pytest.raises(FeatureError, match="area: expected numbers"):
        model.encode({**coded, "area": CodedColumn(codes, [1.0, 2.0, 3.0, 4.0])})


def test_missing_numbers_are_imputed_with_training_medians(model: HousePriceModel) -> None:
    imputed = model.encode(_rows(area=None))
    assert imputed[0, schema.FEATURES.index("area")] == model.medians["area"]


def test_save_and_load_round_trip(tmp_path: Path, model: HousePriceModel) -> None:
    directory = model.save(tmp_path / "m")
    loaded = HousePriceModel.load(directory)
    assert find_model_dir(tmp_path) == directory
    batch = {f: [schema.EXAMPLE_HOUSE[f]] * 5 for f in schema.FEATURES}
    np.testing.assert_allclose(loaded.predict(batch), model.predict(batch))
    with pytest.raises(FileNotFoundError, match="not a BridgeAI model"):
        HousePriceModel.load(tmp_path)
