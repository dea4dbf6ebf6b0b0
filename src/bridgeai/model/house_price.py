"""The house-price model as it is saved, logged to MLflow, baked into images and served.

A :class:`HousePriceModel` is a LightGBM booster plus everything needed to turn the 12 raw
features into the booster's matrix: categorical normalisation (from :mod:`bridgeai.schema`, the same
at training and serving), numeric imputation values fitted on the training split only, the target
transform and, optionally, the :class:`LinearBaseline` the booster was boosted from (its trees
then correct a linear model instead of a constant; see :mod:`bridgeai.training.fit` for why). It
saves to a plain directory (``model.txt`` + ``preprocessing.json``) that the OIP v2 server loads
directly, so the serving hot path never goes through MLflow's pyfunc wrapper
(~10 ms a call); :mod:`bridgeai.model.pyfunc` wraps the same directory as an MLflow pyfunc.

This module imports only numpy and lightgbm so a model server starts fast.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bridgeai import schema
from bridgeai.model.errors import InvalidInput

#: Written by :meth:`HousePriceModel.save`; 2 added the optional ``linear_baseline``. A reader
#: that predates a format refuses it rather than silently dropping part of the model.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
BOOSTER_FILE = "model.txt"
PREPROCESSING_FILE = "preprocessing.json"

TargetTransform = Literal["log", "none"]


class FeatureError(InvalidInput):
    """Raised when input columns cannot be encoded; the message says which column and why."""


def category_codes(column: str) -> dict[str, int]:
    """Map each allowed (normalised) value of a categorical column to its integer code.

    Yes/no columns map ``no`` to 0 and ``yes`` to 1; ``furnishingstatus`` follows
    :data:`bridgeai.schema.FURNISHING` order.
    """
    if column in schema.BINARY:
        return {"no": 0, "yes": 1}
    return {value: code for code, value in enumerate(schema.ALLOWED[column])}


@dataclass(frozen=True)
class CodedColumn:
    """A categorical column given as a few distinct raw values and one code per row into them.

    Row ``i`` holds ``values[codes[i]]``. The binary tensor decoder produces this for a column
    of few spellings (:mod:`bridgeai.serving.binary`): encoding it looks each distinct value up
    once (and rejects a disallowed one as usual) instead of once per row. Slicing gives the
    rows' codes into the same values.
    """

    codes: np.ndarray
    values: Sequence[Any]

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, rows: slice) -> CodedColumn:
        return CodedColumn(self.codes[rows], self.values)

    def __iter__(self) -> Any:
        return (self.values[code] for code in self.codes.tolist())


#: One feature's values, as :meth:`HousePriceModel.encode` takes them.
Column = Sequence[Any] | np.ndarray | CodedColumn


class LinearBaseline:
    """A linear model on the encoded features, in target-transform units, that trees correct.

    Inputs are clipped to the range seen in training before the dot product, so the baseline
    stays flat outside the data (as trees do) instead of extrapolating a price for a
    1,000,000 sq ft house.

    Args:
        intercept: the constant term.
        coefficients: one weight per feature in :data:`bridgeai.schema.FEATURES` order, applied
            to the encoded matrix (categoricals as their integer codes).
        lower: per-feature lower clip bound (the training minimum).
        upper: per-feature upper clip bound (the training maximum).
    """

    def __init__(
        self,
        intercept: float,
        coefficients: Sequence[float] | np.ndarray,
        lower: Sequence[float] | np.ndarray,
        upper: Sequence[float] | np.ndarray,
    ) -> None:
        sizes = {len(coefficients), len(lower), len(upper)}
        if sizes != {len(schema.FEATURES)}:
            raise ValueError(
                f"a linear baseline needs {len(schema.FEATURES)} coefficients and bounds"
            )
        self.intercept = float(intercept)
        self.coefficients = np.asarray(coefficients, dtype=np.float64)
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """The baseline for each row of an encoded matrix."""
        clipped = np.clip(matrix, self.lower, self.upper)
        return np.asarray(clipped @ self.coefficients + self.intercept, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, keyed by feature name."""
        return {
            "intercept": self.intercept,
            "features": {
                name: {
                    "coefficient": float(self.coefficients[j]),
                    "lower": float(self.lower[j]),
                    "upper": float(self.upper[j]),
                }
                for j, name in enumerate(schema.FEATURES)
            },
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> LinearBaseline:
        """Read :meth:`to_dict`'s form back.

        Raises:
            ValueError: a feature of the schema is missing.
        """
        features = doc["features"]
        missing = [f for f in schema.FEATURES if f not in features]
        if missing:
            raise ValueError(f"linear baseline lacks feature(s) {', '.join(missing)}")
        return cls(
            intercept=doc["intercept"],
            coefficients=[features[f]["coefficient"] for f in schema.FEATURES],
            lower=[features[f]["lower"] for f in schema.FEATURES],
            upper=[features[f]["upper"] for f in schema.FEATURES],
        )


@dataclass
class HousePriceModel:
    """A trained booster with its preprocessing; see the module docstring."""

    booster: Any  # lightgbm.Booster; typed loosely so this module imports without lightgbm stubs
    medians: dict[str, float]
    target_transform: TargetTransform = "log"
    metadata: dict[str, Any] = field(default_factory=dict)

    features: tuple[str, ...] = schema.FEATURES
    #: The linear model the booster was boosted from (its ``init_score``), or None.
    baseline: LinearBaseline | None = None

    def __post_init__(self) -> None:
        self._codes = {c: category_codes(c) for c in schema.CATEGORICAL}
        # Raw spellings seen so far ("YES", " yes") -> code; keeps big batches off str.lower().
        self._raw_codes: dict[str, dict[Any, int]] = {c: {} for c in schema.CATEGORICAL}

    # -- encoding -------------------------------------------------------------------------
    def encode(self, columns: Mapping[str, Column]) -> np.ndarray:
        """Build the booster's float64 matrix from raw feature columns.

        Args:
            columns: one sequence per feature name (extra keys are ignored). Categoricals may
                be in any case, or a :class:`CodedColumn`; numerics may hold ``None``/NaN,
                which are imputed with the training medians.

        Raises:
            FeatureError: a feature is missing, columns differ in length, a categorical value
                is not allowed, or a numeric value is not a number.
        """
        missing = [f for f in self.features if f not in columns]
        if missing:
            raise FeatureError(f"missing feature(s): {', '.join(missing)}")
        lengths = {len(columns[f]) for f in self.features}
        if len(lengths) != 1:
            raise FeatureError("all features must have the same number of rows")
        n_rows = lengths.pop()
        matrix = np.empty((n_rows, len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            values = columns[name]
            if name in self._codes:
                matrix[:, j] = self._encode_category(name, values)
            elif isinstance(values, CodedColumn):
                raise FeatureError(f"{name}: expected numbers, got coded categories")
            else:
                matrix[:, j] = self._encode_numeric(name, values)
        return matrix

    def _encode_category(self, name: str, values: Column) -> np.ndarray:
        if isinstance(values, CodedColumn):
            return self._encode_category(name, values.values)[values.codes]
        raw = self._raw_codes[name]
        try:
            # Every spelling seen before (the usual case): one C-level pass, ~10x faster on
            # large batches than the loop below, which validates and learns new spellings.
            return np.fromiter(map(raw.__getitem__, values), dtype=np.float64, count=len(values))
        except (KeyError, TypeError):
            pass
        codes = self._codes[name]
        out = np.empty(len(values), dtype=np.float64)
        for i, value in enumerate(values):
            code = raw.get(value) if isinstance(value, str | bytes) else None
            if code is None:
                text = value.decode() if isinstance(value, bytes) else value
                if not isinstance(text, str):
                    raise FeatureError(f"{name}: expected text, got {value!r}")
                norm = schema.normalize_category(text)
                if norm not in codes:
                    allowed = ", ".join(schema.ALLOWED[name])
                    raise FeatureError(f"{name}: {text!r} is not one of {allowed} (any case)")
                code = codes[norm]
                if len(raw) < 1024:  # bounded: a client cannot grow it without limit
                    raw[value] = code
            out[i] = code
        return out

    def _encode_numeric(self, name: str, values: Sequence[Any] | np.ndarray) -> np.ndarray:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise FeatureError(f"{name}: expected numbers") from None
        if arr.ndim != 1:
            arr = arr.reshape(-1)
        missing = np.isnan(arr)
        if missing.any():
            arr = np.where(missing, self.medians[name], arr)
        return arr

    # -- prediction -----------------------------------------------------------------------
    def predict_matrix(self, matrix: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """Predict prices (in price units) from an encoded matrix.

        One thread by default: LightGBM's OpenMP threads spin between small calls and make
        single-row predictions much slower; pass more threads for large batches.
        """
        raw = self.booster.predict(matrix, num_threads=num_threads)
        raw = np.asarray(raw, dtype=np.float64)
        if self.baseline is not None:
            raw = raw + self.baseline.predict(matrix)
        return np.expm1(raw) if self.target_transform == "log" else raw

    def predict(self, columns: Mapping[str, Column], num_threads: int = 1) -> np.ndarray:
        """Predict prices from raw feature columns (see :meth:`encode`)."""
        return self.predict_matrix(self.encode(columns), num_threads=num_threads)

    def predict_frame(self, frame: Any, num_threads: int = 1) -> np.ndarray:
        """Predict from a polars or pandas DataFrame holding the 12 feature columns."""
        columns = {f: frame[f].to_numpy() for f in self.features if f in frame.columns}
        return self.predict(columns, num_threads=num_threads)

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model to a directory (created if needed) and return it."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / BOOSTER_FILE))
        doc = {
            "format_version": FORMAT_VERSION,
            "features": list(self.features),
            "categorical_codes": {c: category_codes(c) for c in schema.CATEGORICAL},
            "medians": self.medians,
            "target_transform": self.target_transform,
            "metadata": self.metadata,
            "linear_baseline": self.baseline.to_dict() if self.baseline is not None else None,
        }
        (directory / PREPROCESSING_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True))
        return directory

    @classmethod
    def load(cls, path: str | Path) -> HousePriceModel:
        """Load a directory written by :meth:`save`.

        Raises:
            FileNotFoundError: the directory lacks the model files.
            ValueError: the files were written by an incompatible version.
        """
        import lightgbm

        directory = Path(path)
        doc_path = directory / PREPROCESSING_FILE
        if not doc_path.is_file() or not (directory / BOOSTER_FILE).is_file():
            raise FileNotFoundError(
                f"{directory} is not a BridgeAI model directory "
                f"(expected {BOOSTER_FILE} and {PREPROCESSING_FILE})"
            )
        doc = json.loads(doc_path.read_text())
        if doc.get("format_version") not in READABLE_FORMATS:
            readable = ", ".join(map(str, READABLE_FORMATS))
            raise ValueError(
                f"{directory}: model format {doc.get('format_version')!r}, "
                f"this code reads {readable}"
            )
        if tuple(doc["features"]) != schema.FEATURES:
            raise ValueError(f"{directory}: features {doc['features']} differ from the schema")
        booster = lightgbm.Booster(model_file=str(directory / BOOSTER_FILE))
        medians = {k: float(v) for k, v in doc["medians"].items()}
        for name in schema.NUMERIC:
            if name not in medians or math.isnan(medians[name]):
                raise ValueError(f"{directory}: no imputation value for {name}")
        baseline_doc = doc.get("linear_baseline")
        return cls(
            booster=booster,
            medians=medians,
            target_transform=doc["target_transform"],
            metadata=doc.get("metadata", {}),
            baseline=LinearBaseline.from_dict(baseline_doc) if baseline_doc else None,
        )


def find_model_dir(root: str | Path) -> Path:
    """Find the model directory inside ``root`` (itself, or an MLflow model's artifact copy)."""
    root = Path(root)
    if (root / PREPROCESSING_FILE).is_file():
        return root
    for candidate in sorted(root.rglob(PREPROCESSING_FILE)):
        return candidate.parent
    raise FileNotFoundError(f"no {PREPROCESSING_FILE} under {root}: not a BridgeAI model")
