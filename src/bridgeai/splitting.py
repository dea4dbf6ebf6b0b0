"""The train/val/test split, as the original demonstrator made it.

The original split with scikit-learn's ``train_test_split``: ``test_size=0.2`` first, then
``val_size=0.2`` of the remainder, both with ``random_state=42`` (64/16/20). Using the same calls
on the cleaned rows, in source order, reproduces its split exactly.
"""

from __future__ import annotations

import numpy as np
import polars as pl

SPLITS = ("train", "val", "test")


def split_frame(
    frame: pl.DataFrame, test_size: float = 0.2, val_size: float = 0.2, seed: int = 42
) -> dict[str, pl.DataFrame]:
    """Split ``frame`` into ``train``/``val``/``test`` (64/16/20 with the defaults).

    Raises:
        ValueError: a fraction is outside (0, 1) or a split would be empty.
    """
    from sklearn.model_selection import train_test_split

    for name, value in (("test_size", test_size), ("val_size", val_size)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")
    index = np.arange(frame.height)
    try:
        rest, test = train_test_split(index, test_size=test_size, random_state=seed)
        train, val = train_test_split(rest, test_size=val_size, random_state=seed)
    except ValueError as exc:
        raise ValueError(f"cannot split {frame.height} rows: {exc}") from None
    return {"train": frame[train], "val": frame[val], "test": frame[test]}
