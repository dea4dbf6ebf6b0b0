"""Training the house-price model: LightGBM boosted from a linear baseline, early-stopped on val.

Why a linear baseline. On the original's split of ``HousingData.csv`` (348/88/109 rows) a plain
linear regression reaches test R² 0.65 while LightGBM on its own tops out near 0.62-0.64: with a
few hundred rows, trees spend their splits approximating the near-linear effect of area,
bathrooms and stories as staircases. Boosting from a ridge fit instead (LightGBM's
``init_score``) lets the trees model only what the linear fit misses. Repeated five-fold
cross-validation on train+val (never test) preferred it for every configuration of the search
grid: mean R² 0.670-0.674 against 0.630-0.635 for the same configurations without it
(``docs/training.md`` has the numbers). The baseline is part of the
saved model (:class:`bridgeai.model.house_price.LinearBaseline`), clipped to the training range
so it never extrapolates; ``linear_baseline=False`` gives a plain booster.

Everything here is deterministic: single-threaded LightGBM with ``deterministic=True`` and fixed
seeds, a closed-form ridge fit, so the same data and parameters give bit-identical metrics.

This module is Prefect-free and works on polars frames; :mod:`flows.train` orchestrates it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from bridgeai import schema
from bridgeai.model.house_price import HousePriceModel, LinearBaseline, TargetTransform
from bridgeai.training.evaluation import Metrics, regression_metrics

#: Features whose larger values should never lower the predicted price (``monotone=True``).
MONOTONE_FEATURES = ("area", "bathrooms", "stories", "parking")


class TrainingError(ValueError):
    """The data cannot be trained on; the message says what to fix."""


class TrainingParams(BaseModel):
    """LightGBM hyperparameters and the linear baseline, with defaults for a few hundred rows.

    The defaults are the configuration of :data:`SEARCH_GRID` that scored best both on the
    validation split of the original's data and in cross-validation on train+val (see
    ``docs/training.md``); the test split played no part.
    """

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(default=0.1, gt=0, le=1, description="Shrinkage per tree.")
    num_leaves: int = Field(default=8, ge=2, le=256, description="Maximum leaves per tree.")
    min_data_in_leaf: int = Field(default=10, ge=1, description="Minimum rows in a leaf.")
    lambda_l2: float = Field(default=0.0, ge=0, description="L2 regularisation of leaf values.")
    feature_fraction: float = Field(
        default=1.0, gt=0, le=1, description="Fraction of features each tree may use."
    )
    num_boost_round: int = Field(
        default=1000, ge=1, le=20_000, description="Upper bound on trees; early stopping decides."
    )
    early_stopping_rounds: int = Field(
        default=50, ge=1, description="Stop after this many rounds without a better val loss."
    )
    linear_baseline: bool = Field(
        default=True,
        description="Boost from a ridge fit on the features instead of a constant.",
    )
    ridge_alpha: float = Field(
        default=1.0, ge=0, description="Ridge penalty of the linear baseline (standardised)."
    )
    linear_tree: bool = Field(
        default=False, description="LightGBM linear trees (a linear model in each leaf)."
    )
    monotone: bool = Field(
        default=False,
        description="Predicted price never falls as area, bathrooms, stories or parking grow "
        "(constrains the trees; the linear baseline is unconstrained).",
    )
    seed: int = Field(default=42, description="Seed of every random choice LightGBM makes.")

    def lightgbm_params(self) -> dict[str, Any]:
        """The parameter dict handed to ``lightgbm.train``."""
        params: dict[str, Any] = {
            "objective": "regression",
            "metric": "l2",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "lambda_l2": self.lambda_l2,
            "feature_fraction": self.feature_fraction,
            "linear_tree": self.linear_tree,
            # Determinism: one thread (also fastest on a few hundred rows), fixed seeds, no
            # automatic row/col-wise choice that depends on timing.
            "num_threads": 1,
            "deterministic": True,
            "force_row_wise": True,
            "seed": self.seed,
            "verbosity": -1,
        }
        if self.monotone:
            params["monotone_constraints"] = [
                1 if f in MONOTONE_FEATURES else 0 for f in schema.FEATURES
            ]
        return params

    def mlflow_params(self) -> dict[str, Any]:
        """Flat parameters for MLflow's run page."""
        return self.model_dump()


@dataclass
class TrainedModel:
    """A fitted model and what training learned about it."""

    model: HousePriceModel
    params: TrainingParams
    target_transform: TargetTransform
    best_iteration: int
    val_metrics: Metrics
    train_rows: int
    val_rows: int


@dataclass
class SearchResult:
    """The outcome of :func:`search`: every candidate's val score and the chosen one."""

    best: TrainedModel
    candidates: list[dict[str, Any]] = field(default_factory=list)


# -- data -------------------------------------------------------------------------------------
def check_frame(frame: pl.DataFrame, split: str, *, min_rows: int = 1) -> None:
    """Check ``frame`` has the dataset's columns and a usable target.

    Raises:
        TrainingError: a column is missing, the split is too small, or the price is missing or
            not positive.
    """
    missing = [c for c in schema.COLUMNS if c not in frame.columns]
    if missing:
        raise TrainingError(
            f"{split} split lacks column(s) {', '.join(missing)}; "
            f"expected {', '.join(schema.COLUMNS)}"
        )
    if frame.height < min_rows:
        raise TrainingError(f"{split} split has {frame.height} rows; training needs {min_rows}+")
    price = frame[schema.TARGET]
    if price.null_count():
        raise TrainingError(
            f"{split} split has {price.null_count()} missing prices: clean the data first "
            f"(the data-ingestion flow drops such rows)"
        )
    if (price.cast(pl.Float64) <= 0).any():
        raise TrainingError(f"{split} split has prices <= 0; prices must be positive")


def fit_medians(train: pl.DataFrame) -> dict[str, float]:
    """Imputation values for the numeric features, from the training split only.

    Raises:
        TrainingError: a numeric column has no values at all.
    """
    medians: dict[str, float] = {}
    for name in schema.NUMERIC:
        value = train[name].cast(pl.Float64).drop_nulls().drop_nans().median()
        if value is None or math.isnan(float(value)):  # type: ignore[arg-type]
            raise TrainingError(f"train split has no values in {name}: cannot impute it")
        medians[name] = float(value)  # type: ignore[arg-type]
    return medians


def encode(model: HousePriceModel, frame: pl.DataFrame) -> np.ndarray:
    """The model's feature matrix for ``frame`` (the same encoding serving uses)."""
    return model.encode({name: frame[name].to_list() for name in schema.FEATURES})


def target(frame: pl.DataFrame) -> np.ndarray:
    """The price column as float64, in price units."""
    return frame[schema.TARGET].cast(pl.Float64).to_numpy()


def _forward(values: np.ndarray, transform: TargetTransform) -> np.ndarray:
    return np.log1p(values) if transform == "log" else values


def fit_linear_baseline(matrix: np.ndarray, y: np.ndarray, alpha: float) -> LinearBaseline:
    """Closed-form ridge on standardised features, folded back to the encoded feature units.

    Constant features (e.g. a yes/no column that is always "no" in train) get weight 0.
    """
    lower = matrix.min(axis=0)
    upper = matrix.max(axis=0)
    mean = matrix.mean(axis=0)
    scale = matrix.std(axis=0)
    usable = scale > 0
    z = (matrix[:, usable] - mean[usable]) / scale[usable]
    y_mean = float(y.mean())
    gram = z.T @ z + alpha * np.eye(z.shape[1])
    weights = np.linalg.solve(gram, z.T @ (y - y_mean))
    coefficients = np.zeros(matrix.shape[1])
    coefficients[usable] = weights / scale[usable]
    intercept = y_mean - float(mean @ coefficients)
    return LinearBaseline(intercept, coefficients, lower, upper)


# -- training ---------------------------------------------------------------------------------
def train_model(
    frames: Mapping[str, pl.DataFrame],
    params: TrainingParams | None = None,
    target_transform: TargetTransform = "log",
) -> TrainedModel:
    """Fit a :class:`HousePriceModel` on ``frames["train"]``, early-stopped on ``frames["val"]``.

    Args:
        frames: at least ``train`` and ``val`` splits with the dataset's 13 columns.
        params: hyperparameters (defaults when None).
        target_transform: ``"log"`` fits ``log1p(price)``; ``"none"`` fits the price itself.

    Raises:
        TrainingError: a split is missing, too small or malformed.
    """
    import lightgbm

    params = params or TrainingParams()
    for split in ("train", "val"):
        if split not in frames:
            raise TrainingError(f"training needs a {split!r} split; got {', '.join(frames)}")
    train, val = frames["train"], frames["val"]
    check_frame(train, "train", min_rows=max(2 * params.min_data_in_leaf, 10))
    check_frame(val, "val")

    model = HousePriceModel(
        booster=None, medians=fit_medians(train), target_transform=target_transform
    )
    x_train, x_val = encode(model, train), encode(model, val)
    y_train, y_val = (
        _forward(target(train), target_transform),
        _forward(target(val), target_transform),
    )

    baseline = None
    init_train = init_val = None
    if params.linear_baseline:
        baseline = fit_linear_baseline(x_train, y_train, params.ridge_alpha)
        init_train, init_val = baseline.predict(x_train), baseline.predict(x_val)

    names = list(schema.FEATURES)
    train_set = lightgbm.Dataset(
        x_train, label=y_train, init_score=init_train, feature_name=names, free_raw_data=False
    )
    val_set = lightgbm.Dataset(
        x_val, label=y_val, init_score=init_val, feature_name=names, reference=train_set
    )
    booster = lightgbm.train(
        params.lightgbm_params(),
        train_set,
        num_boost_round=params.num_boost_round,
        valid_sets=[val_set],
        valid_names=["val"],
        callbacks=[lightgbm.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
    best = int(booster.best_iteration or booster.current_iteration())
    # Keep only the trees up to the best iteration, so the saved model is exactly what was
    # evaluated whichever num_iteration a reader passes.
    booster = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best))
    model = HousePriceModel(
        booster=booster,
        medians=model.medians,
        target_transform=target_transform,
        metadata={"best_iteration": best, "train_rows": train.height, "val_rows": val.height},
        baseline=baseline,
    )
    val_metrics = regression_metrics(target(val), model.predict_matrix(x_val))
    return TrainedModel(
        model=model,
        params=params,
        target_transform=target_transform,
        best_iteration=best,
        val_metrics=val_metrics,
        train_rows=train.height,
        val_rows=val.height,
    )


# -- a small search, scored on val ------------------------------------------------------------
#: The grid :func:`search` explores around the given parameters (4 x 2 = 8 candidates).
SEARCH_GRID: dict[str, Sequence[Any]] = {
    "num_leaves": (4, 8),
    "learning_rate": (0.03, 0.1),
    "lambda_l2": (0.0, 10.0),
}


def search_candidates(
    base: TrainingParams | None = None, grid: Mapping[str, Sequence[Any]] | None = None
) -> list[TrainingParams]:
    """``base`` first, then every grid combination that differs from it, in a fixed order."""
    base = base or TrainingParams()
    grid = SEARCH_GRID if grid is None else grid
    found = [base]
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        candidate = base.model_copy(update=dict(zip(keys, values, strict=True)))
        if candidate not in found:
            found.append(candidate)
    return found


def search(
    frames: Mapping[str, pl.DataFrame],
    candidates: Sequence[TrainingParams] | None = None,
    target_transform: TargetTransform = "log",
) -> SearchResult:
    """Train each candidate and keep the one with the lowest val RMSE (ties: the earliest).

    Only ``train`` and ``val`` are read: the test split must never choose hyperparameters.
    """
    candidates = list(candidates) if candidates is not None else search_candidates()
    if not candidates:
        raise TrainingError("search needs at least one candidate")
    best: TrainedModel | None = None
    rows: list[dict[str, Any]] = []
    for index, candidate in enumerate(candidates):
        trained = train_model(frames, candidate, target_transform)
        rows.append(
            {
                "candidate": index,
                **{k: getattr(candidate, k) for k in (*SEARCH_GRID, "linear_baseline")},
                "best_iteration": trained.best_iteration,
                **{f"val_{k}": v for k, v in trained.val_metrics.as_dict().items()},
            }
        )
        if best is None or trained.val_metrics.rmse < best.val_metrics.rmse:
            best = trained
    assert best is not None
    for row in rows:
        row["chosen"] = row["candidate"] == candidates.index(best.params)
    return SearchResult(best=best, candidates=rows)
