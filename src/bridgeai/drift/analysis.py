"""Drift analysis: compare a reference with current data on every row, column by column.

The reference is a data version's train split; the current data is another version's train split
(target drift on ``price``) or a window of logged production predictions (prediction drift on
``prediction``). Columns and their kinds come from :mod:`bridgeai.schema` (see
:func:`bridgeai.drift.result.column_specs`), never from guessing, and no index or id column is
ever compared.

Verdicts are computed on every row by :mod:`bridgeai.drift.stats` (Evidently's tests, chosen and
judged as Evidently does); :mod:`bridgeai.drift.report` draws the Evidently HTML from a sample
and shows those full-data verdicts, so the report and the :class:`DriftResult` always agree;
:mod:`bridgeai.drift.storage` puts it in the reports bucket.

Typical use (what the ``drift-monitoring`` flow does)::

    specs = column_specs(target=True)
    result = analyse(reference, current, specs, reference_name="data-v1.0.0",
                     current_name="data-v1.1.0")
    report = render_report(reference, current, result, specs)
    location = upload_report(storage, report)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl

from bridgeai import schema
from bridgeai.drift.result import PREDICTION, DriftResult
from bridgeai.drift.stats import (
    ColumnSpec,
    DriftInputError,
    compare_columns,
    dataset_drift,
    drifted_share,
)


def analyse(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    specs: Sequence[ColumnSpec],
    *,
    reference_name: str,
    current_name: str,
    drift_share_threshold: float = 0.5,
    threshold: float | None = None,
    per_column_method: Mapping[str, str] | None = None,
    per_column_threshold: Mapping[str, float] | None = None,
    window: tuple[datetime, datetime] | None = None,
    notes: Sequence[str] = (),
) -> DriftResult:
    """Compare ``current`` with ``reference`` column by column, on every row.

    Args:
        reference: reference rows.
        current: current rows.
        specs: the columns to compare (see :func:`column_specs`).
        reference_name: the reference's data version tag, for the result.
        current_name: the current data version tag, or ``production``.
        drift_share_threshold: dataset drift when at least this share of columns drift.
        threshold: one threshold for every column's test (default: each test's own).
        per_column_method: a test per column instead of Evidently's automatic choice.
        per_column_threshold: a threshold per column.
        window: the production window, if the current rows are one.
        notes: remarks to carry into the result.

    Raises:
        DriftInputError: see :func:`bridgeai.drift.stats.compare_columns`.
    """
    if not 0 < drift_share_threshold <= 1:
        raise DriftInputError(
            f"drift_share_threshold must be in (0, 1], got {drift_share_threshold}"
        )
    if reference.height == 0:
        raise DriftInputError(f"the reference {reference_name} has no rows")
    columns = compare_columns(
        reference,
        current,
        specs,
        threshold=threshold,
        per_column_method=per_column_method,
        per_column_threshold=per_column_threshold,
    )
    share = drifted_share(columns)
    detected = dataset_drift(columns, drift_share_threshold)
    drifted = [c.column for c in columns if c.drifted]
    verdict = "drift detected" if detected else "no dataset drift"
    message = (
        f"{verdict}: {len(drifted)} of {len(columns)} columns drifted "
        f"({share:.0%}, threshold {drift_share_threshold:.0%})"
        + (f": {', '.join(drifted)}" if drifted else "")
    )
    return DriftResult(
        status="compared",
        message=message,
        reference=reference_name,
        current=current_name,
        window_start=window[0] if window else None,
        window_end=window[1] if window else None,
        reference_rows=reference.height,
        current_rows=current.height,
        drift_detected=detected,
        drift_share=share,
        drift_share_threshold=drift_share_threshold,
        number_of_columns=len(columns),
        columns=columns,
        drifted_columns=drifted,
        notes=list(notes),
    )


def no_rows_result(
    *,
    reference_name: str,
    reference_rows: int,
    window: tuple[datetime, datetime],
    drift_share_threshold: float,
    source: str,
) -> DriftResult:
    """The result for an empty production window: nothing compared, nothing detected."""
    start, end = window
    return DriftResult(
        status="no-rows-in-window",
        message=(
            f"no rows in window [{start.isoformat()}, {end.isoformat()}) of {source}: "
            "nothing to compare; widen the window or check that the prediction service logs"
        ),
        reference=reference_name,
        current="production",
        window_start=start,
        window_end=end,
        reference_rows=reference_rows,
        current_rows=0,
        drift_detected=False,
        drift_share=0.0,
        drift_share_threshold=drift_share_threshold,
        number_of_columns=0,
    )


# -- the champion's side of a production comparison ------------------------------------------
def reference_data_version(model_version: Any) -> str:
    """The ``data_version`` tag of a registered model version (the data it was trained on).

    Raises:
        DriftInputError: the version has no ``data_version`` tag.
    """
    tag = (model_version.tags or {}).get("data_version")
    if not tag:
        raise DriftInputError(
            f"{model_version.name} version {model_version.version} has no data_version tag; "
            "pass reference='data-vX.Y.Z' explicitly"
        )
    return str(tag)


def predict_prices(model: Any, frame: pl.DataFrame) -> pl.Series:
    """A ``HousePriceModel``'s prices for the 12 features of ``frame`` (a ``prediction`` column)."""
    values = model.predict_frame(frame.select(schema.FEATURES), num_threads=2)
    return pl.Series(PREDICTION, values)
