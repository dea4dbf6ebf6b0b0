"""Cleaning the validated rows and identifying their content.

* :func:`clean` drops rows with no price and exact duplicates, and keeps only the schema's columns
  (never an index column). It imputes nothing: imputation is fitted by the model on train only.
* :func:`checksum` identifies the cleaned content (plus split parameters), so ingesting the same
  data twice creates one version.
* :func:`column_summary` describes each column for the ingestion's artifact.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from bridgeai import schema


@dataclass
class Cleaned:
    """The cleaned frame and what cleaning removed."""

    frame: pl.DataFrame
    rows_read: int
    duplicates: int
    missing_price: int
    dropped_columns: list[str]

    def report(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_kept": self.frame.height,
            "duplicates_dropped": self.duplicates,
            "missing_price_dropped": self.missing_price,
            "columns_dropped": self.dropped_columns,
        }


def clean(frame: pl.DataFrame) -> Cleaned:
    """Drop rows with no price and exact duplicates; keep only the schema's columns.

    Row order is kept (the split depends on it), the first of each set of duplicates stays, and
    nothing is imputed.
    """
    dropped_columns = [c for c in frame.columns if c not in schema.COLUMNS]
    data = frame.select(schema.COLUMNS)
    priced = data.filter(pl.col(schema.TARGET).is_not_null())
    unique = priced.unique(keep="first", maintain_order=True)
    return Cleaned(
        frame=unique,
        rows_read=frame.height,
        duplicates=priced.height - unique.height,
        missing_price=data.height - priced.height,
        dropped_columns=dropped_columns,
    )


def checksum(frame: pl.DataFrame, params: dict[str, Any]) -> str:
    """sha256 of the cleaned rows (as CSV, a stable text form) and the split parameters."""
    digest = hashlib.sha256()
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(b"\n")
    digest.update(frame.write_csv().encode())
    return digest.hexdigest()


def column_summary(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """One row per column: type, missing values, and range (numeric) or value counts (text)."""
    summary = []
    for column in frame.columns:
        series = frame[column]
        row: dict[str, Any] = {
            "column": column,
            "dtype": str(series.dtype),
            "missing": series.null_count(),
        }
        if series.dtype.is_numeric():
            row.update(
                min=_number(series.min()), max=_number(series.max()), mean=_number(series.mean())
            )
            row["values"] = ""
        else:
            counts = series.drop_nulls().value_counts(sort=True)
            row.update(min=None, max=None, mean=None)
            row["values"] = ", ".join(f"{v}: {n}" for v, n in counts.iter_rows())
        summary.append(row)
    return summary


def _number(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)
