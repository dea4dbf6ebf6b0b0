"""A tiny HousePriceModel trained in a fixture, for tests of code that loads or serves models."""

from __future__ import annotations

import numpy as np
import polars as pl

from bridgeai import schema
from bridgeai.model.house_price import HousePriceModel


def tiny_model(frame: pl.DataFrame | None = None, rounds: int = 30) -> HousePriceModel:
    """Train a small LightGBM model on synthetic (or given) housing rows; deterministic."""
    import lightgbm

    from bridgeai.testing.synthetic import housing_frame

    frame = frame if frame is not None else housing_frame(300, seed=3)
    medians = {c: float(frame[c].median()) for c in schema.NUMERIC}  # type: ignore[arg-type]
    untrained = HousePriceModel(booster=None, medians=medians, target_transform="log")
    matrix = untrained.encode({c: frame[c].to_list() for c in schema.FEATURES})
    target = np.log1p(frame[schema.TARGET].to_numpy().astype(np.float64))
    params = {
        "objective": "regression",
        "learning_rate": 0.1,
        "num_leaves": 7,
        "min_data_in_leaf": 5,
        "num_threads": 1,
        "deterministic": True,
        "seed": 42,
        "verbose": -1,
    }
    dataset = lightgbm.Dataset(matrix, label=target, feature_name=list(schema.FEATURES))
    booster = lightgbm.train(params, dataset, num_boost_round=rounds)
    return HousePriceModel(booster=booster, medians=medians, target_transform="log")
