"""Small, deterministic, housing-shaped data for tests, benchmarks and offline demos.

The frames have the real dataset's columns, types and value ranges, and a price that depends on
the features the way the real one roughly does, so a model trained on them learns something. They
are generated, never copied from any dataset.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from bridgeai import schema


def housing_frame(
    rows: int = 300,
    seed: int = 42,
    *,
    area_shift: float = 1.0,
    price_shift: float = 1.0,
) -> pl.DataFrame:
    """Generate ``rows`` houses with the dataset's 13 columns in the original's order.

    Args:
        rows: number of rows.
        seed: random seed; the same seed gives the same frame.
        area_shift: multiply every area by this (simulates covariate drift).
        price_shift: multiply every price by this (simulates target drift).
    """
    rng = np.random.default_rng(seed)
    area = np.clip(rng.lognormal(mean=8.4, sigma=0.35, size=rows), 1650, 16200) * area_shift
    area = np.round(area).astype(np.int64)
    bedrooms = rng.choice([1, 2, 3, 4, 5, 6], size=rows, p=[0.02, 0.25, 0.55, 0.15, 0.02, 0.01])
    bathrooms = rng.choice([1, 2, 3, 4], size=rows, p=[0.73, 0.24, 0.025, 0.005])
    stories = rng.choice([1, 2, 3, 4], size=rows, p=[0.42, 0.44, 0.07, 0.07])
    parking = rng.choice([0, 1, 2, 3], size=rows, p=[0.55, 0.23, 0.2, 0.02])
    probabilities = {
        "mainroad": 0.86,
        "guestroom": 0.18,
        "basement": 0.35,
        "hotwaterheating": 0.05,
        "airconditioning": 0.32,
        "prefarea": 0.23,
    }
    yes = {c: rng.random(rows) < p for c, p in probabilities.items()}
    furnishing = rng.choice(schema.FURNISHING, size=rows, p=[0.26, 0.42, 0.32])

    price = (
        -1_330_000
        + 420.0 * area / area_shift
        + 250_000 * bedrooms
        + 1_000_000 * bathrooms
        + 450_000 * stories
        + 300_000 * parking
        + 400_000 * yes["mainroad"]
        + 300_000 * yes["guestroom"]
        + 350_000 * yes["basement"]
        + 800_000 * yes["hotwaterheating"]
        + 850_000 * yes["airconditioning"]
        + 650_000 * yes["prefarea"]
        + np.where(furnishing == "furnished", 400_000, 0)
        - np.where(furnishing == "unfurnished", 350_000, 0)
    )
    price = price * rng.lognormal(mean=0.0, sigma=0.12, size=rows) * price_shift
    price = np.round(np.clip(price, 1_000_000, None) / 1000) * 1000

    columns: dict[str, object] = {
        "price": price.astype(np.int64),
        "area": area,
        "bedrooms": bedrooms,
        "bathrooms": bathrooms,
        "stories": stories,
        **{c: np.where(yes[c], "yes", "no") for c in ("mainroad", "guestroom", "basement")},
        "hotwaterheating": np.where(yes["hotwaterheating"], "yes", "no"),
        "airconditioning": np.where(yes["airconditioning"], "yes", "no"),
        "parking": parking,
        "prefarea": np.where(yes["prefarea"], "yes", "no"),
        "furnishingstatus": furnishing,
    }
    return pl.DataFrame({c: columns[c] for c in schema.COLUMNS})
