"""The drift-monitoring flow: is the data the model meets still like the data it learned from?

From a notebook::

    from flows.drift import drift_monitoring
    drift_monitoring(reference="data-v1.0.0", current="data-v1.1.0")   # two data versions
    drift_monitoring(current="production", window_hours=24)            # the last day's traffic

The work is done by :mod:`bridgeai.drift`; this module only orchestrates it: load the two
sides, compare, draw and store the Evidently report, publish artifacts, and emit
``bridgeai.drift.detected`` when the drifted share reaches the threshold.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from pydantic import Field

from blocks import DataRepository, MLflowServer, ObjectStorage, PredictionDatabase, load_block
from bridgeai.data import versions as data_versions
from bridgeai.drift import analysis, report
from bridgeai.drift import storage as report_storage
from bridgeai.drift.result import ColumnSpec, DriftResult, column_specs
from bridgeai.drift.stats import DriftInputError, check_methods, format_score
from bridgeai.model import source
from bridgeai.service import prediction_log
from flows._events import DRIFT_DETECTED, emit
from flows._progress import Progress
from flows._tasks import IN_PROCESS, IO_RETRIES

#: Name of the event emitted when drift reaches the threshold (prefect.yaml triggers on it).
DRIFT_EVENT = DRIFT_DETECTED
#: Label on the event's resource: "production" (a window of logged predictions) or
#: "data-version" (two data versions). The drift-alert automation matches production.
MODE_LABEL = "bridgeai.drift.mode"
PRODUCTION = "production"


# -- I/O tasks ------------------------------------------------------------------------------
@task(name="champion", **IO_RETRIES)
def champion(server: MLflowServer) -> Any:
    """The registered version holding the serving alias (the champion)."""
    return source.resolve_version(server.client(), server.registered_model, alias=server.alias)


@task(name="load-train-split", **IO_RETRIES, **IN_PROCESS)
def load_train_split(
    tag: str, storage: ObjectStorage, repository: DataRepository
) -> tuple[str, pl.DataFrame]:
    """The train split of data version ``tag``, and the concrete tag it resolved to."""
    version = data_versions.describe(tag, repository=repository)
    frame = data_versions.load_split(version.tag, "train", storage=storage, repository=repository)
    return version.tag, frame


@task(name="read-prediction-window", **IO_RETRIES, **IN_PROCESS)
def read_prediction_window(
    start: datetime, end: datetime, database: PredictionDatabase
) -> tuple[pl.DataFrame, str]:
    """Logged successful predictions in ``[start, end)``, and the (redacted) database URL."""
    url = database.database_url()
    return prediction_log.read_window(url, start, end), prediction_log.redacted(url)


@task(name="score-reference", **IO_RETRIES, **IN_PROCESS)
def score_reference(reference: pl.DataFrame, server: MLflowServer, version: str) -> pl.Series:
    """The champion's predictions for the reference rows."""
    model, _ = source.load(server.model_uri(version), server.client())
    return analysis.predict_prices(model, reference)


@task(name="store-report", **IO_RETRIES)
def store_report(
    rendered: report.RenderedReport, storage: ObjectStorage, link_hours: int
) -> report_storage.ReportLocation:
    """Upload the HTML and JSON to the reports bucket; presign a link valid ``link_hours``."""
    return report_storage.upload_report(storage, rendered, link_seconds=3600 * link_hours)


# -- pure tasks -------------------------------------------------------------------------------
@task(name="compare", **IN_PROCESS)
def compare(
    reference: pl.DataFrame, current: pl.DataFrame, specs: list[ColumnSpec], **kwargs: Any
) -> DriftResult:
    """Per-column tests on every row (see :func:`bridgeai.drift.analysis.analyse`)."""
    return analysis.analyse(reference, current, specs, **kwargs)


@task(name="render-report", **IN_PROCESS)
def render_report(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    result: DriftResult,
    specs: list[ColumnSpec],
    sample_rows: int,
) -> report.RenderedReport:
    """Evidently's HTML and JSON report (charts sampled, scores from all rows)."""
    return report.render_report(reference, current, result, specs, sample_rows=sample_rows)


# -- the flow ---------------------------------------------------------------------------------
@flow(name="drift-monitoring")
def drift_monitoring(
    reference: Annotated[
        str | None,
        Field(
            description="Data version whose train split is the reference (data-vX.Y.Z, "
            "data-latest, data-previous). Empty: the version the champion was trained on."
        ),
    ] = None,
    current: Annotated[
        str,
        Field(
            description="Another data version (its train split), or 'production' for a "
            "window of logged predictions."
        ),
    ] = "data-latest",
    window_start: Annotated[
        datetime | None,
        Field(description="Production window start (UTC if naive). Empty: end - window_hours."),
    ] = None,
    window_end: Annotated[
        datetime | None,
        Field(description="Production window end, exclusive (UTC if naive). Empty: now."),
    ] = None,
    window_hours: Annotated[
        float, Field(gt=0, description="Production window length when window_start is empty.")
    ] = 24.0,
    drift_share_threshold: Annotated[
        float,
        Field(
            gt=0,
            le=1,
            description="Dataset drift (and the bridgeai.drift.detected event) when at least "
            "this share of the compared columns drift.",
        ),
    ] = 0.5,
    stattest_threshold: Annotated[
        float | None,
        Field(
            gt=0,
            description="One threshold for every column's test. Empty: each test's default "
            "(0.05 for p-values, 0.1 for distances).",
        ),
    ] = None,
    per_column_method: Annotated[
        dict[str, str] | None,
        Field(
            description="Drift test per column instead of Evidently's automatic choice, e.g. "
            '{"area": "psi"}.'
        ),
    ] = None,
    per_column_threshold: Annotated[
        dict[str, float] | None,
        Field(description='Threshold per column, e.g. {"price": 0.01}.'),
    ] = None,
    prediction_drift: Annotated[
        bool,
        Field(
            description="Production mode: also compare the logged predictions with the "
            "champion's predictions for the reference rows."
        ),
    ] = True,
    report_sample_rows: Annotated[
        int,
        Field(ge=100, description="Rows per side drawn in the HTML charts (scores use all)."),
    ] = report.DEFAULT_SAMPLE_ROWS,
    emit_drift_event: Annotated[
        bool, Field(description="Emit bridgeai.drift.detected when dataset drift is detected.")
    ] = True,
    report_link_hours: Annotated[
        int,
        Field(
            ge=1,
            le=168,
            description="How long the report's presigned link works (1 hour to 7 days).",
        ),
    ] = 168,
    storage_block: Annotated[
        str, Field(description="ObjectStorage block: data versions' remote, reports bucket.")
    ] = "bridgeai",
    mlflow_block: Annotated[
        str, Field(description="MLflowServer block: the champion and its data version.")
    ] = "bridgeai",
    repository_block: Annotated[
        str, Field(description="DataRepository block: the git repository of the data versions.")
    ] = "bridgeai",
    database_block: Annotated[
        str,
        Field(description="PredictionDatabase block: the prediction log read in production mode."),
    ] = "bridgeai",
) -> DriftResult:
    """Compare current data with the reference, store an Evidently report, alert on drift.

    Args:
        reference: Data version whose train split is the reference (data-vX.Y.Z, data-latest,
            data-previous). Empty: the version the champion model was trained on.
        current: Another data version (its train split), or "production" for a window of
            logged predictions.
        window_start: Production window start (UTC when naive). Empty: window_end minus
            window_hours.
        window_end: Production window end, exclusive (UTC when naive). Empty: now.
        window_hours: Length of the production window when window_start is empty.
        drift_share_threshold: Dataset drift (and the bridgeai.drift.detected event) when at
            least this share of the compared columns drift (Evidently's drift_share).
        stattest_threshold: One threshold for every column's test. Empty: each test's default
            (0.05 for p-values, 0.1 for distances).
        per_column_method: Drift test per column, e.g. {"area": "psi"}, instead of Evidently's
            automatic choice (ks, chisquare, z, wasserstein, jensenshannon, or any Evidently test).
        per_column_threshold: Threshold per column, e.g. {"price": 0.01}.
        prediction_drift: In production mode, also compare the logged predictions with the
            champion's predictions for the reference rows.
        report_sample_rows: Rows per side drawn in the HTML charts (scores use all rows).
        emit_drift_event: Emit bridgeai.drift.detected when dataset drift is detected.
        report_link_hours: How long the report's presigned link works (1 hour to 7 days; the
            bucket itself stays private).
        storage_block: ObjectStorage block holding the data versions and the reports bucket.
        mlflow_block: MLflowServer block (champion model and its data version).
        repository_block: DataRepository block (the data versions' git repository).
        database_block: PredictionDatabase block holding the prediction log's database
            (production mode). Its embedded default is $BRIDGEAI_DATABASE_URL, else the
            embedded SQLite log, as for the prediction service on this machine.

    Returns:
        A DriftResult: verdict, drifted share and columns, per-column tests, report URIs.
    """
    logger = get_run_logger()
    production = current == PRODUCTION
    notes: list[str] = []
    # Fail on a bad test name before loading anything (it may import Evidently: seconds, not
    # minutes of loading first).
    specs = column_specs(target=not production, prediction=production and prediction_drift)
    check_methods(per_column_method, specs)
    server = load_block(MLflowServer, mlflow_block)
    storage = load_block(ObjectStorage, storage_block)
    repository = load_block(DataRepository, repository_block)
    progress = Progress("drift-progress", "Loading the reference")

    if reference is None:
        reference = analysis.reference_data_version(_champion_or_explain(server))
        logger.info("Reference: %s, the champion's training data", reference)
    reference_tag, reference_frame = load_train_split(reference, storage, repository)

    window: tuple[datetime, datetime] | None = None
    progress.update(
        10, f"Loaded {reference_tag} ({reference_frame.height:,} rows); loading current"
    )
    if production:
        window = _window(window_start, window_end, window_hours)
        database = load_block(PredictionDatabase, database_block)
        current_frame, source = read_prediction_window(*window, database)
        current_name = PRODUCTION
        if current_frame.height == 0:
            result = analysis.no_rows_result(
                reference_name=reference_tag,
                reference_rows=reference_frame.height,
                window=window,
                drift_share_threshold=drift_share_threshold,
                source=f"prediction_logs at {source}",
            )
            logger.warning(result.message)
            progress.done(result.message)
            _publish(result)
            return result
        if prediction_drift:
            reference_frame, specs = _with_reference_predictions(
                reference_frame, current_frame, specs, server, notes
            )
    else:
        current_name, current_frame = load_train_split(current, storage, repository)

    rows = f"{reference_frame.height:,} vs {current_frame.height:,} rows"
    progress.update(30, f"Comparing {reference_tag} with {current_name}: {rows}")
    result = compare(
        reference_frame,
        current_frame,
        specs,
        reference_name=reference_tag,
        current_name=current_name,
        drift_share_threshold=drift_share_threshold,
        threshold=stattest_threshold,
        per_column_method=per_column_method,
        per_column_threshold=per_column_threshold,
        window=window,
        notes=notes,
    )
    logger.info("%s vs %s: %s", reference_tag, current_name, result.message)
    progress.update(60, f"{result.message}; drawing the Evidently report")
    rendered = render_report(reference_frame, current_frame, result, specs, report_sample_rows)
    progress.update(85, "Storing the report")
    location = store_report(rendered, storage, report_link_hours)
    result = result.model_copy(
        update={**location.model_dump(), "report_sample_rows": rendered.sample_rows}
    )
    logger.info("Report: %s (link expires %s)", location.report_uri, location.report_url_expires_at)
    if result.drift_detected and emit_drift_event:
        event_id = _emit_drift_event(result, server.registered_model)
        result = result.model_copy(update={"event_id": event_id})
        logger.warning("Drift detected: emitted %s (%s)", DRIFT_EVENT, result.event_id)
    progress.done(result.message)
    _publish(result)
    return result


def _window(
    start: datetime | None, end: datetime | None, hours: float
) -> tuple[datetime, datetime]:
    end = _utc(end) if end else datetime.now(UTC)
    start = _utc(start) if start else end - timedelta(hours=hours)
    if start >= end:
        raise DriftInputError(
            f"the production window is empty: window_start {start.isoformat()} is not before "
            f"window_end {end.isoformat()}"
        )
    return start, end


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _champion_or_explain(server: MLflowServer) -> Any:
    try:
        return champion(server)
    except source.ModelNotFound as exc:
        raise DriftInputError(f"{exc}; or pass reference='data-vX.Y.Z'") from None


def _with_reference_predictions(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    specs: list[ColumnSpec],
    server: MLflowServer,
    notes: list[str],
) -> tuple[pl.DataFrame, list[ColumnSpec]]:
    """Add the champion's predictions to the reference, or drop prediction drift with a note.

    Logged predictions are compared with the same model's predictions on the reference rows,
    not with the reference prices: a regression model's predictions are narrower than the
    prices it learned from, so that comparison would report drift when nothing changed.
    """
    logger = get_run_logger()
    try:
        version = str(champion(server).version)
    except source.ModelNotFound as exc:
        notes.append(f"Prediction drift not compared: {exc}")
        logger.warning(notes[-1])
        return reference, [s for s in specs if s.role != "prediction"]
    predictions = score_reference(reference, server, version)
    served = sorted(set(current["model_version"].drop_nulls().to_list()))
    if served and served != [version]:
        notes.append(
            f"The window was served by model version(s) {', '.join(served)}; the reference "
            f"predictions are the champion's (version {version})."
        )
        logger.info(notes[-1])
    return reference.with_columns(predictions), specs


def _emit_drift_event(result: DriftResult, model: str) -> str | None:
    """Emit ``bridgeai.drift.detected`` about the registered model, carrying the figures."""
    related = [
        {
            "prefect.resource.id": f"bridgeai.data-version.{result.reference}",
            "prefect.resource.role": "reference",
        }
    ]
    if result.current != PRODUCTION:
        related.append(
            {
                "prefect.resource.id": f"bridgeai.data-version.{result.current}",
                "prefect.resource.role": "current",
            }
        )
    return emit(
        DRIFT_EVENT,
        {
            "prefect.resource.id": f"bridgeai.model.{model}",
            "prefect.resource.name": model,
            MODE_LABEL: PRODUCTION if result.current == PRODUCTION else "data-version",
        },
        related=related,
        payload={
            "reference": result.reference,
            "current": result.current,
            "window_start": result.window_start.isoformat() if result.window_start else None,
            "window_end": result.window_end.isoformat() if result.window_end else None,
            "drift_share": result.drift_share,
            "drift_share_threshold": result.drift_share_threshold,
            "number_of_columns": result.number_of_columns,
            "drifted_columns": result.drifted_columns,
            "scores": {c.column: c.score for c in result.columns if c.drifted},
            "reference_rows": result.reference_rows,
            "current_rows": result.current_rows,
            "report_uri": result.report_uri,
            "json_uri": result.json_uri,
            "report_url": result.report_url,
            "report_url_expires_at": (
                result.report_url_expires_at.isoformat() if result.report_url_expires_at else None
            ),
        },
    )


def _publish(result: DriftResult) -> None:
    """The run's artifacts: a markdown summary, the per-column table, a link to the report."""
    if result.status == "no-rows-in-window":
        create_markdown_artifact(
            key="drift-summary",
            markdown=f"# Drift monitoring\n\n**{result.message}**\n",
            description="Drift monitoring: no rows in the production window",
        )
        return
    current = (
        f"production, {result.window_start:%Y-%m-%d %H:%M} to {result.window_end:%Y-%m-%d %H:%M}"
        f" UTC"
        if result.window_start and result.window_end
        else f"`{result.current}`"
    )
    lines = [
        "# Drift monitoring",
        "",
        f"**{'Drift detected' if result.drift_detected else 'No dataset drift'}**: "
        f"{len(result.drifted_columns)} of {result.number_of_columns} columns drifted "
        f"({result.drift_share:.0%}; threshold {result.drift_share_threshold:.0%}).",
        "",
        "| | |",
        "|---|---|",
        f"| reference | `{result.reference}` (train split), {result.reference_rows:,} rows |",
        f"| current | {current}, {result.current_rows:,} rows |",
        f"| drifted columns | {', '.join(result.drifted_columns) or 'none'} |",
        f"| report | [{result.report_uri}]({result.report_url}){_expiry(result)} |",
        f"| JSON | `{result.json_uri}` |",
    ]
    if result.event_id:
        lines.append(f"| event | `{DRIFT_EVENT}` {result.event_id} |")
    lines += [""] + [f"- {note}" for note in result.notes]
    create_markdown_artifact(
        key="drift-summary", markdown="\n".join(lines), description=result.message
    )
    create_table_artifact(
        key="drift-columns",
        table=[
            {
                "column": c.column,
                "role": c.role,
                "kind": c.kind,
                "test": c.method_label,
                "statistic": format_score(c.statistic),
                "p_value": format_score(c.p_value),
                "threshold": format_score(c.threshold),
                "drifted": c.drifted,
            }
            for c in result.columns
        ],
        description="Per-column drift tests on every row",
    )
    if result.report_url:
        create_link_artifact(
            key="drift-report",
            link=result.report_url,
            link_text=f"Evidently drift report: {result.reference} vs {result.current}",
            description=f"{result.report_uri}{_expiry(result)}",
        )


def _expiry(result: DriftResult) -> str:
    expires = result.report_url_expires_at
    return f" (link expires {expires:%Y-%m-%d %H:%M} UTC)" if expires else ""
