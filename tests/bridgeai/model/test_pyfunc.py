"""The MLflow pyfunc: logged from code with only the modules it needs, it predicts like the model
on raw rows, also in a fresh process where the project is importable only from the model."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bridgeai
from bridgeai import schema
from bridgeai.model.house_price import HousePriceModel
from bridgeai.testing.models import tiny_model
from tests.support.model_server import reference_prices


@pytest.fixture(scope="module")
def model() -> HousePriceModel:
    return tiny_model()


@pytest.fixture(autouse=True)
def embedded_mlflow(bridgeai_home: Path) -> Iterator[None]:
    """MLflow's fluent API on this test's embedded store, as a notebook user would point it."""
    from blocks import MLflowServer
    from bridgeai.model.mlflow_client import fluent

    server = MLflowServer()
    server.client()  # creates the store
    with fluent(server.resolved_tracking_uri()):
        yield


def _log(model: HousePriceModel) -> Any:
    import mlflow

    from blocks import MLflowServer
    from bridgeai.model.pyfunc import log_model

    experiment_id = MLflowServer().ensure_experiment()
    with mlflow.start_run(experiment_id=experiment_id):
        return log_model(model)


def test_pyfunc_predicts_like_the_model_on_raw_rows(model: HousePriceModel) -> None:
    import mlflow
    import pandas as pd

    info = _log(model)
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


# Run with `python -I` (no PYTHONPATH, no script directory on sys.path); the editable install's
# .pth entries (the checkout and its src/) are dropped too, so only the model can provide bridgeai.
_FRESH_PROCESS = """
import importlib.util, json, sys
sys.path[:] = [p for p in sys.path if p not in CHECKOUT]
assert importlib.util.find_spec("bridgeai") is None, "bridgeai is importable outside the model"
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(MODEL)
import bridgeai
frame = pd.DataFrame([HOUSE])
frame["area"] = frame["area"].astype("float64")
print(json.dumps({
    "bridgeai": bridgeai.__file__,
    "modules": sorted(m for m in sys.modules if m.split(".")[0] == "bridgeai"),
    "prices": [float(p) for p in model.predict(frame)],
}))
"""


@pytest.mark.integration
def test_a_logged_model_loads_with_only_its_own_code_in_a_fresh_process(
    model: HousePriceModel, tmp_path: Path
) -> None:
    import mlflow

    from bridgeai.model.pyfunc import code_modules

    info = _log(model)
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "m")))
    code = local / "code"
    carried = sorted(p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file())
    assert carried == [
        "bridgeai/__init__.py",
        "bridgeai/model/__init__.py",
        "bridgeai/model/errors.py",
        "bridgeai/model/house_price.py",
        "bridgeai/model/packaging.py",
        "bridgeai/model/pyfunc.py",
        "bridgeai/schema.py",
    ]
    assert sorted(code_modules()) == [
        p.removesuffix("/__init__.py").removesuffix(".py").replace("/", ".") for p in carried
    ]

    source = Path(bridgeai.__file__).resolve().parent  # this checkout's src/bridgeai
    checkout = {str(source.parent), str(source.parents[1])}
    script = (
        f"CHECKOUT = {sorted(checkout)!r}\nMODEL = {str(local)!r}\n"
        f"HOUSE = {dict(schema.EXAMPLE_HOUSE)!r}\n" + _FRESH_PROCESS
    )
    clean = tmp_path / "clean"
    clean.mkdir()
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(answer["bridgeai"]).resolve().is_relative_to(code.resolve())
    assert set(answer["modules"]) <= set(code_modules())
    np.testing.assert_allclose(
        answer["prices"], reference_prices(model, [schema.EXAMPLE_HOUSE]), rtol=1e-12
    )
