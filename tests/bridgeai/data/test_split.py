"""split_frame reproduces scikit-learn's train_test_split (the original's split) exactly."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.model_selection import train_test_split

from bridgeai.data.split import split_frame


@pytest.mark.parametrize(
    ("rows", "test_size", "val_size", "seed"),
    [(545, 0.2, 0.2, 42), (408, 0.2, 0.2, 42), (97, 0.3, 0.25, 7), (10, 0.2, 0.2, 0)],
)
def test_split_matches_scikit_learn_row_for_row(
    rows: int, test_size: float, val_size: float, seed: int
) -> None:
    frame = pl.DataFrame({"row": np.arange(rows)})
    ours = split_frame(frame, test_size, val_size, seed)
    rest, test = train_test_split(np.arange(rows), test_size=test_size, random_state=seed)
    train, val = train_test_split(rest, test_size=val_size, random_state=seed)
    assert ours["test"]["row"].to_list() == test.tolist()
    assert ours["val"]["row"].to_list() == val.tolist()
    assert ours["train"]["row"].to_list() == train.tolist()


def test_the_original_sizes_are_64_16_20() -> None:
    sizes = {k: v.height for k, v in split_frame(pl.DataFrame({"x": range(545)})).items()}
    assert sizes == {"train": 348, "val": 88, "test": 109}


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_fractions_outside_zero_one_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_frame(pl.DataFrame({"x": range(10)}), test_size=bad)


def test_too_few_rows_say_so() -> None:
    with pytest.raises(ValueError, match="cannot split 1 rows"):
        split_frame(pl.DataFrame({"x": [1]}))
