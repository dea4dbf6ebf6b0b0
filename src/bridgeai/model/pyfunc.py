"""The house-price model as an MLflow pyfunc, for the registry and ``mlflow.pyfunc.load_model``.

The pyfunc wraps the same directory :class:`bridgeai.model.house_price.HousePriceModel` saves,
logged as the artifact ``model_dir``; the model server reads that directory directly and skips
the pyfunc.
The ``bridgeai`` modules that loading and predicting import travel with the model as code (its
``code/bridgeai/`` folder: :func:`code_modules`, derived from this module's imports), so loading
needs no install of this project and the model does not carry the rest of it.
The pyfunc is logged from code (:mod:`bridgeai.model.pyfunc_code`), not as a pickled object:
loading a model from the registry never unpickles anything.
"""

from __future__ import annotations

import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from bridgeai import schema
from bridgeai.model import ARTIFACT_KEY, packaging
from bridgeai.model.house_price import HousePriceModel

#: Packages the pyfunc needs at load time, pinned to the versions it was trained with.
_REQUIREMENTS = ("mlflow", "lightgbm", "numpy", "pandas", "scikit-learn")


class HousePricePyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """MLflow pyfunc over a saved :class:`HousePriceModel` directory."""

    def load_context(self, context):  # type: ignore[no-untyped-def]
        self._model = HousePriceModel.load(context.artifacts[ARTIFACT_KEY])

    # A DataFrame hint is one MLflow derives no signature from (the explicit one below is
    # kept) and, unlike no hint at all, does not warn about.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Predict prices (price units) for a DataFrame of the 12 raw feature columns."""
        return self._model.predict_frame(model_input)


def model_signature() -> Any:
    """The MLflow signature derived from the schema: 12 named inputs, one ``price`` output.

    Categoricals are strings; the five numerics are typed ``any``. MLflow's schema check
    refuses int64 for a ``double`` column ("cannot safely convert") and NaN in a ``long`` one,
    so a stricter type would reject the dataset's own rows (integer areas) or rows with a
    missing count, which the model imputes. The model itself checks every numeric value.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    def spec(name: str) -> ColSpec:
        if name in schema.CATEGORICAL:
            return ColSpec("string", name)
        return ColSpec(AnyType(), name)

    return ModelSignature(
        inputs=Schema([spec(f) for f in schema.FEATURES]),
        outputs=Schema([ColSpec("double", schema.TARGET)]),
    )


def pip_requirements() -> list[str]:
    """Explicit requirements (inferring them costs ~16 s in a subprocess)."""
    return [f"{name}=={metadata.version(name)}" for name in _REQUIREMENTS]


def input_example() -> Any:
    """One raw house as a pandas DataFrame, typed as the signature says."""
    row = {f: schema.EXAMPLE_HOUSE[f] for f in schema.FEATURES}
    frame = pd.DataFrame([row])
    frame["area"] = frame["area"].astype(np.float64)
    return frame


def code_modules() -> list[str]:
    """The ``bridgeai`` modules a logged model needs: what this module imports, transitively."""
    return list(packaging.closure(__name__))


def log_model(model: HousePriceModel, name: str = "model", **kwargs: Any) -> Any:
    """Log ``model`` as a pyfunc in the active MLflow run and return MLflow's ``ModelInfo``.

    Keyword arguments go to :func:`mlflow.pyfunc.log_model` (e.g. ``registered_model_name``).
    """
    with tempfile.TemporaryDirectory(prefix="bridgeai-model-") as tmp:
        model_dir = model.save(Path(tmp) / ARTIFACT_KEY)
        code = packaging.copy_tree(code_modules(), Path(tmp) / "code")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("pyfunc_code.py")),
            artifacts={ARTIFACT_KEY: str(model_dir)},
            code_paths=[str(code)],
            signature=model_signature(),
            input_example=input_example(),
            pip_requirements=pip_requirements(),
            **kwargs,
        )
