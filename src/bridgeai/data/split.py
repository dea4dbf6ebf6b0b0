"""The train/val/test split, as the original demonstrator made it.

The original split with scikit-learn's ``train_test_split``: ``test_size=0.2`` first, then
``val_size=0.2`` of the remainder, both with ``random_state=42`` (64/16/20). This module draws the
same permutations with numpy's legacy ``RandomState`` (what scikit-learn's ``ShuffleSplit`` does
underneath), so it reproduces that split row for row without importing scikit-learn, which costs
seconds; ``tests/bridgeai/test_splitting.py`` checks the equality against scikit-learn itself.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

SPLITS = ("train", "val", "test")


def _shuffle_split(index: np.ndarray, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held_out) as ``train_test_split(index, test_size=size, random_state=seed)``."""
    n_held = math.ceil(size * len(index))
    n_rest = len(index) - n_held
    if n_held == 0 or n_rest == 0:
        raise ValueError(f"a fraction of {size} leaves an empty split")
    permutation = np.random.RandomState(seed).permutation(len(index))
    return index[permutation[n_held:]], index[permutation[:n_held]]


def split_frame(
    frame: pl.DataFrame, test_size: float = 0.2, val_size: float = 0.2, seed: int = 42
) -> dict[str, pl.DataFrame]:
    """Split ``frame`` into ``train``/``val``/``test`` (64/16/20 with the defaults).

    Raises:
        ValueError: a fraction is outside (0, 1) or a split would be empty.
    """
    for name, value in (("test_size", test_size), ("val_size", val_size)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")
    try:
        rest, test = _shuffle_split(np.arange(frame.height), test_size, seed)
        train, val = _shuffle_split(rest, val_size, seed)
    except ValueError as exc:
        raise ValueError(f"cannot split {frame.height} rows: {exc}") from None
    return {"train": frame[train], "val": frame[val], "test": frame[test]}
