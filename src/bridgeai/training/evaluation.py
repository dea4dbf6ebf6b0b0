"""Scoring a house-price model in price units, a median-price baseline, and diagnostic plots.

Metrics are computed on prices, never on the log target, so they mean what a user reads: RMSE and
MAE in the dataset's currency, MAPE as a fraction (0.2 = 20 %), R² against the test mean.

Plots use matplotlib's object API with the Agg canvas (no pyplot, no display, no global state),
so they render in a worker, a container or a test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from bridgeai import schema

if TYPE_CHECKING:
    import polars as pl

    from bridgeai.model.house_price import HousePriceModel

MetricName = Literal["rmse", "mae", "mape", "r2"]
METRICS: tuple[MetricName, ...] = ("rmse", "mae", "mape", "r2")
#: Metrics where a larger value is better; the others are errors.
HIGHER_IS_BETTER: frozenset[str] = frozenset({"r2"})


@dataclass(frozen=True)
class Metrics:
    """Regression metrics in price units."""

    rmse: float
    mae: float
    mape: float
    r2: float

    def as_dict(self) -> dict[str, float]:
        """``{"rmse": ..., "mae": ..., "mape": ..., "r2": ...}``."""
        return asdict(self)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> Metrics:
    """RMSE, MAE, MAPE (a fraction) and R² of ``y_pred`` against ``y_true``.

    Raises:
        ValueError: the arrays differ in length or are empty.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"cannot score {y_pred.size} predictions against {y_true.size} targets")
    error = y_pred - y_true
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    residual = float(np.sum(error**2))
    # A constant target leaves R² undefined; 0 for a perfect fit's 0/0 would be misleading.
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)
    eps = np.finfo(np.float64).eps
    return Metrics(
        rmse=float(np.sqrt(np.mean(error**2))),
        mae=float(np.mean(np.abs(error))),
        mape=float(np.mean(np.abs(error) / np.maximum(np.abs(y_true), eps))),
        r2=float(r2),
    )


def median_baseline(train_prices: np.ndarray, y_true: np.ndarray) -> Metrics:
    """Metrics of predicting the training median price for every house."""
    median = float(np.median(np.asarray(train_prices, dtype=np.float64)))
    return regression_metrics(y_true, np.full(len(y_true), median))


def is_better(metric: MetricName, new: float, old: float, min_improvement: float = 0.0) -> bool:
    """True when ``new`` beats ``old`` on ``metric`` by more than ``min_improvement`` (relative).

    ``min_improvement=0`` means strictly better; ``0.01`` means better by more than 1 % of
    ``|old|``. Equal scores never win, so retraining on the same inputs never promotes.
    """
    margin = min_improvement * abs(old)
    if metric in HIGHER_IS_BETTER:
        return new > old + margin
    return new < old - margin


# -- tables -----------------------------------------------------------------------------------
def feature_importance(model: HousePriceModel) -> pl.DataFrame:
    """One row per feature: tree gain and split counts, and the linear baseline's weight.

    ``baseline_weight`` is the baseline coefficient times the feature's training range (the
    most it can move the target-transform value, e.g. log-price), so features compare fairly;
    it is 0 when the model has no baseline.
    """
    import polars as pl

    names = list(schema.FEATURES)
    gain = np.asarray(model.booster.feature_importance("gain"), dtype=np.float64)
    splits = np.asarray(model.booster.feature_importance("split"), dtype=np.int64)
    total = float(gain.sum())
    if model.baseline is not None:
        span = model.baseline.upper - model.baseline.lower
        weight = model.baseline.coefficients * span
    else:
        weight = np.zeros(len(names))
    return pl.DataFrame(
        {
            "feature": names,
            "gain": gain,
            "gain_share": gain / total if total > 0 else np.zeros(len(names)),
            "splits": splits,
            "baseline_weight": weight,
        }
    ).sort(["gain", "feature"], descending=[True, False])


# -- plots ------------------------------------------------------------------------------------
def _figure(width: float, height: float, columns: int = 1, left: float = 0.1):  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Fixed margins: constrained layout measures every label and doubles the render time.
    figure = Figure(figsize=(width, height), dpi=90)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, columns)
    figure.subplots_adjust(left=left, right=0.97, bottom=0.13, top=0.86, wspace=0.45)
    return figure, axes


def plot_feature_importance(table: pl.DataFrame, path: str | Path) -> Path:
    """Horizontal bars of each feature's tree-gain share (and baseline weight, if any)."""
    has_baseline = bool(np.any(table["baseline_weight"].to_numpy() != 0))
    figure, axes = _figure(
        11 if has_baseline else 6,
        4.5,
        2 if has_baseline else 1,
        left=0.14 if has_baseline else 0.25,
    )
    axes = np.atleast_1d(axes)
    ordered = table.sort("gain_share")
    names = ordered["feature"].to_list()
    axes[0].barh(names, ordered["gain_share"].to_numpy(), color="#1f77b4")
    axes[0].set_xlabel("share of total split gain")
    axes[0].set_title("LightGBM trees")
    if has_baseline:
        axes[1].barh(names, ordered["baseline_weight"].to_numpy(), color="#ff7f0e")
        axes[1].axvline(0, color="black", linewidth=0.8)
        axes[1].set_xlabel("coefficient x training range (target-transform units)")
        axes[1].set_title("linear baseline")
    figure.suptitle("Feature importance")
    return _save(figure, path)


def plot_residuals(y_true: np.ndarray, y_pred: np.ndarray, path: str | Path) -> Path:
    """Predicted against actual price, and residual against predicted price."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    figure, (left, right) = _figure(11, 4.5, 2)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    left.scatter(y_true, y_pred, s=14, alpha=0.7)
    left.plot([low, high], [low, high], color="black", linewidth=0.8)
    left.set_xlabel("actual price")
    left.set_ylabel("predicted price")
    left.set_title("Predicted vs actual (test)")
    right.scatter(y_pred, y_true - y_pred, s=14, alpha=0.7, color="#d62728")
    right.axhline(0, color="black", linewidth=0.8)
    right.set_xlabel("predicted price")
    right.set_ylabel("actual - predicted")
    right.set_title("Residuals (test)")
    return _save(figure, path)


def _save(figure, path: str | Path) -> Path:  # type: ignore[no-untyped-def]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png")
    return target
