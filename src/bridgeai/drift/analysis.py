"""Drift monitoring: compare a reference with current data, report it, store the report.

The reference is a data version's train split; the current data is another version's train split
(target drift on ``price``) or a window of logged production predictions (prediction drift on
``prediction``). Columns and their kinds come from :mod:`bridgeai.schema`, never from guessing,
and no index or id column is ever compared.

Verdicts are computed on every row by :mod:`bridgeai.drift.stats` (Evidently's tests, chosen and
judged as Evidently does); :mod:`bridgeai.drift.report` draws the Evidently HTML from a sample
and shows those full-data verdicts, so the report and the :class:`DriftResult` always agree.
Reports go to the storage block's reports bucket as ``report_<YYYYmmdd_HHMMSS>.html`` and
``.json``.

Typical use (what the ``drift-monitoring`` flow does)::

    specs = column_specs(target=True)
    result = analyse(reference, current, specs, reference_name="data-v1.0.0",
                     current_name="data-v1.1.0")
    report = render_report(reference, current, result, specs)
    location = upload_report(storage, report)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, Field

from bridgeai import schema
from bridgeai.drift.report import (
    DEFAULT_SAMPLE_ROWS,
    RenderedReport,
    evidently_run,
    evidently_verdicts,
    render_report,
)
from bridgeai.drift.stats import (
    ColumnDrift,
    ColumnSpec,
    DriftInputError,
    check_methods,
    compare_columns,
    dataset_drift,
    drifted_share,
)
from bridgeai.paths import home_dir

__all__ = [
    "DEFAULT_SAMPLE_ROWS",
    "PREDICTION",
    "ColumnDrift",
    "ColumnSpec",
    "DriftInputError",
    "DriftResult",
    "RenderedReport",
    "ReportLocation",
    "analyse",
    "browsable_url",
    "champion_data_version",
    "champion_version",
    "check_methods",
    "column_specs",
    "evidently_run",
    "evidently_verdicts",
    "no_rows_result",
    "predict_prices",
    "render_report",
    "report_keys",
    "upload_report",
]

#: The prediction log's column holding the model's price.
PREDICTION = "prediction"
Status = Literal["compared", "no-rows-in-window"]


def column_specs(*, target: bool = False, prediction: bool = False) -> list[ColumnSpec]:
    """The columns to compare, from the schema: the 12 features, plus price and/or prediction.

    Args:
        target: compare the target ``price`` (two data versions).
        prediction: compare the model's ``prediction`` (a production window).
    """
    specs = []
    if target:
        specs.append(ColumnSpec(schema.TARGET, "num", "target"))
    for name in schema.FEATURES:
        specs.append(ColumnSpec(name, "num" if name in schema.NUMERIC else "cat"))
    if prediction:
        specs.append(ColumnSpec(PREDICTION, "num", "prediction"))
    return specs


class DriftResult(BaseModel):
    """What one drift comparison found, and where its report is."""

    status: Status = Field(
        description="compared, or no-rows-in-window when the production window was empty"
    )
    message: str = Field(description="One line saying what was found")
    reference: str = Field(description="The reference data version (concrete tag)")
    current: str = Field(description="The current data version, or 'production'")
    window_start: datetime | None = Field(default=None, description="Production window start")
    window_end: datetime | None = Field(default=None, description="Production window end")
    reference_rows: int
    current_rows: int
    drift_detected: bool = Field(
        description="The share of drifted columns reached drift_share_threshold"
    )
    drift_share: float = Field(description="Share of compared columns that drifted")
    drift_share_threshold: float
    number_of_columns: int
    columns: list[ColumnDrift] = Field(default_factory=list)
    drifted_columns: list[str] = Field(default_factory=list)
    report_uri: str | None = Field(default=None, description="fsspec URI of the HTML report")
    json_uri: str | None = Field(default=None, description="fsspec URI of the JSON report")
    report_url: str | None = Field(
        default=None, description="A link to open the HTML (file:// or the S3 endpoint URL)"
    )
    report_sample_rows: int | None = Field(
        default=None,
        description="Rows per side drawn in the HTML charts when sampled (scores use all rows)",
    )
    event_id: str | None = Field(default=None, description="Id of the drift event, if emitted")
    notes: list[str] = Field(default_factory=list)

    def column(self, name: str) -> ColumnDrift:
        """The verdict for one column.

        Raises:
            KeyError: the column was not compared.
        """
        for column in self.columns:
            if column.column == name:
                return column
        raise KeyError(f"{name!r} was not compared; columns: {[c.column for c in self.columns]}")


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


# -- storing the report -----------------------------------------------------------------------
class ReportLocation(BaseModel):
    """Where a stored report is."""

    report_uri: str = Field(description="fsspec URI of the HTML")
    json_uri: str = Field(description="fsspec URI of the JSON")
    report_url: str = Field(description="A link a browser can open")


def report_keys(now: datetime | None = None, attempt: int = 0) -> tuple[str, str]:
    """``report_<YYYYmmdd_HHMMSS>.html`` and ``.json`` (UTC); ``_<n>`` added on a collision."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    stem = f"report_{stamp}" + (f"_{attempt + 1}" if attempt else "")
    return f"{stem}.html", f"{stem}.json"


def upload_report(
    storage: Any, report: RenderedReport, now: datetime | None = None
) -> ReportLocation:
    """Store the HTML and JSON in the storage block's reports bucket.

    A copy is written under ``$BRIDGEAI_HOME/drift/reports`` first and removed once both
    uploads succeed, so a report is never lost to a storage outage; its name depends only on
    the report's timestamp and content, so retrying the upload reuses the same copy.

    Args:
        storage: an ``ObjectStorage`` block (``blocks.ObjectStorage``).
        report: the rendered report.
        now: the report's timestamp (default: now, UTC).

    Raises:
        OSError: the storage refused or could not be reached; the message says where the
            local copy is.
    """
    now = now or datetime.now(UTC)
    html_key, json_key = report_keys(now)
    digest = hashlib.sha256(report.html.encode()).hexdigest()[:12]
    spool = home_dir("drift", "reports")
    html_copy = spool / html_key.replace(".html", f".{digest}.html")
    json_copy = spool / json_key.replace(".json", f".{digest}.json")
    html_copy.write_text(report.html, encoding="utf-8")
    json_copy.write_text(report.json, encoding="utf-8")
    bucket = storage.reports_bucket
    try:
        fs = storage.filesystem()
        for attempt in range(1000):  # same second as an earlier report: report_<stamp>_2, ...
            html_key, json_key = report_keys(now, attempt)
            html_uri, json_uri = storage.uri(bucket, html_key), storage.uri(bucket, json_key)
            if not fs.exists(html_uri) and not fs.exists(json_uri):
                break
        _put(fs, storage, html_uri, html_copy, "text/html; charset=utf-8")
        _put(fs, storage, json_uri, json_copy, "application/json")
    except Exception as exc:
        raise OSError(
            f"could not store the drift report in {storage.uri(bucket)} "
            f"({type(exc).__name__}: {exc}); it is kept in {html_copy} and {json_copy.name}"
        ) from exc
    html_copy.unlink(missing_ok=True)
    json_copy.unlink(missing_ok=True)
    return ReportLocation(
        report_uri=html_uri, json_uri=json_uri, report_url=browsable_url(storage, html_key)
    )


def _put(fs: Any, storage: Any, uri: str, source: Path, content_type: str) -> None:
    if storage.is_local:
        fs.put_file(str(source), uri)
    else:
        # The content type lets a browser open the HTML from the bucket instead of downloading it.
        fs.pipe_file(uri, source.read_bytes(), ContentType=content_type)


def browsable_url(storage: Any, key: str) -> str:
    """A link to ``key`` in the reports bucket: ``file://`` locally, else the S3 endpoint URL."""
    if storage.is_local:
        return str(storage.uri(storage.reports_bucket, key))
    return f"{str(storage.endpoint_url).rstrip('/')}/{storage.reports_bucket}/{key}"


# -- reference predictions and the champion's data version -----------------------------------
def champion_data_version(client: Any, registered_model: str, alias: str) -> str:
    """The ``data_version`` tag of the model version holding ``alias`` (the champion).

    Raises:
        DriftInputError: no version holds the alias, or it has no ``data_version`` tag.
    """
    version = champion_version(client, registered_model, alias)
    tag = (version.tags or {}).get("data_version")
    if not tag:
        raise DriftInputError(
            f"{registered_model} version {version.version} (@{alias}) has no data_version tag; "
            "pass reference='data-vX.Y.Z' explicitly"
        )
    return str(tag)


def champion_version(client: Any, registered_model: str, alias: str) -> Any:
    """The registered model version holding ``alias``.

    Raises:
        DriftInputError: no version holds the alias (or the model is not registered).
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(registered_model, alias)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") not in (
            "RESOURCE_DOES_NOT_EXIST",
            "INVALID_PARAMETER_VALUE",
        ):
            raise
        raise DriftInputError(
            f"no version of {registered_model!r} has the alias {alias!r} yet: train and "
            "promote a model first (model-training), or pass reference='data-vX.Y.Z'"
        ) from None


def predict_prices(model_dir: str | Path, frame: pl.DataFrame) -> pl.Series:
    """The model's prices for the 12 features of ``frame`` (a ``prediction`` column)."""
    from bridgeai.model.house_price import HousePriceModel, find_model_dir

    model = HousePriceModel.load(find_model_dir(model_dir))
    values = model.predict_frame(frame.select(schema.FEATURES), num_threads=2)
    return pl.Series(PREDICTION, values)
