"""The MLflow pyfunc: logged from code, it predicts like the model on raw rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bridgeai import schema
from bridgeai.model.house_price import HousePriceModel
from tests.support.models import tiny_model


@pytest.fixture(scope="module")
def model() -> HousePriceModel:
    return tiny_model()


def test_pyfunc_predicts_like_the_model_on_raw_rows(model: HousePriceModel) -> None:
    import mlflow
    import pandas as pd

    from blocks import MLflowServer
    from bridgeai.model.pyfunc import log_model

    server = MLflowServer()
    server.client()
    experiment_id = server.ensure_experiment()
    with mlflow.start_run(experiment_id=experiment_id):
        info = log_model(model)
    # Logged from code, not pickled: loading it never unpickles anything.
    files = {p.name for p in Path(mlflow.artifacts.download_artifacts(info.model_uri)).iterdir()}
    assert "pyfunc_code.py" in files
    assert not any(name.endswith(".pkl") for name in files), files
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    frame = pd.DataFrame([{**schema.EXAMPLE_HOUSE, "area": 1200.0}] * 3)
    frame.loc[1, "mainroad"] = "YES"
    frame.loc[2, "mainroad"] = "Yes"
    predictions = np.asarray(loaded.predict(frame))
    assert predictions[0] == predictions[1] == predictions[2]
    expected = model.predict({f: frame[f].tolist() for f in schema.FEATURES})
    np.testing.assert_allclose(predictions, expected)
