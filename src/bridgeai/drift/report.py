"""The Evidently 0.7 report of a drift comparison, and plain Evidently runs for cross-checks.

:func:`render_report` draws Evidently's data drift preset from a sample of at most
``sample_rows`` rows per side, and hands Evidently each column's full-data score and verdict (from
:mod:`bridgeai.drift.stats`) as a registered test, so the report's tables, counts and dataset
verdict always equal the returned :class:`~bridgeai.drift.result.DriftResult`. The HTML is
standalone: Evidently embeds its scripts and icon font, and the page fetches nothing from the
network.

:func:`evidently_run` runs plain Evidently on the full data (its own test choice and code): the
tests and the benchmark use it to show the verdicts are Evidently's.

``import evidently`` takes 10-20 s, so it happens inside these functions only.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from bridgeai.drift.result import DriftResult
from bridgeai.drift.stats import ColumnDrift, ColumnSpec, format_score

if TYPE_CHECKING:
    import pandas as pd

#: Rows per side drawn in the HTML report by default; verdicts always use every row.
DEFAULT_SAMPLE_ROWS = 20_000


@dataclass(frozen=True)
class RenderedReport:
    """An Evidently report as text, ready to store."""

    html: str
    json: str
    sample_rows: int | None


def render_report(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    result: DriftResult,
    specs: Sequence[ColumnSpec],
    *,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 42,
) -> RenderedReport:
    """Draw Evidently's data drift report, showing ``result``'s full-data scores and verdicts.

    Evidently draws its charts from at most ``sample_rows`` rows per side (seeded sample). Each
    column's test is handed to Evidently as a registered test that returns the full-data score
    and verdict already in ``result``, so the report's table, counts and dataset verdict match
    the returned result even when the charts are sampled.

    Returns:
        The standalone HTML (scripts and fonts embedded, nothing fetched from the network) and a
        JSON document with the summary, the per-column results and Evidently's metrics.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    by_name = {c.column: c for c in result.columns}
    sampled = max(reference.height, current.height) > sample_rows
    names = [s.name for s in specs]
    definition = DataDefinition(
        numerical_columns=[s.name for s in specs if s.kind == "num"],
        categorical_columns=[s.name for s in specs if s.kind == "cat"],
    )
    ref_pd = _sample(reference.select(names), sample_rows, seed).to_pandas()
    cur_pd = _sample(current.select(names), sample_rows, seed + 1).to_pandas()
    with _full_data_tests(result.columns, sampled) as methods:
        report = Report(
            [
                DataDriftPreset(
                    columns=names,
                    drift_share=result.drift_share_threshold,
                    per_column_method=methods,
                    per_column_threshold={c: by_name[c].threshold for c in names},
                )
            ],
            include_tests=True,
        )
        run = report.run(
            Dataset.from_pandas(cur_pd, data_definition=definition),
            Dataset.from_pandas(ref_pd, data_definition=definition),
        )
    _prepend_header(run, result, sample_rows if sampled else None)
    html = run.get_html_str(as_iframe=False)
    document = {
        "summary": json.loads(result.model_dump_json(exclude={"columns"})),
        "columns": [json.loads(c.model_dump_json()) for c in result.columns],
        "evidently": _strict_json(json.loads(run.json())),
    }
    return RenderedReport(
        html=html,
        json=json.dumps(document, indent=1, allow_nan=False),
        sample_rows=sample_rows if sampled else None,
    )


def _strict_json(value: Any) -> Any:
    """Evidently may write NaN or Infinity, which JSON lacks: spell them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict_json(v) for v in value]
    return value


def _sample(frame: pl.DataFrame, rows: int, seed: int) -> pl.DataFrame:
    return frame if frame.height <= rows else frame.sample(rows, seed=seed)


@contextmanager
def _full_data_tests(columns: Sequence[ColumnDrift], sampled: bool) -> Iterator[dict[str, str]]:
    """Register one Evidently test per column that returns its full-data score and verdict.

    Evidently looks tests up by name in a process-wide registry; the names are unique to this
    report and removed afterwards, so concurrent reports and plain Evidently runs are unaffected.
    """
    from evidently.legacy.calculations.stattests import registry
    from evidently.legacy.core import ColumnType

    token = secrets.token_hex(4)
    registered = []
    methods: dict[str, str] = {}
    try:
        for column in columns:
            name = f"{column.method}-full-data-{column.column}-{token}"

            def fixed(_ref: Any, _cur: Any, _type: Any, _threshold: float, c=column) -> Any:
                return c.score, c.drifted

            label = column.method_label + (" (all rows)" if sampled else "")
            test = registry.StatTest(
                name=name,
                display_name=label,
                allowed_feature_types=[ColumnType.Numerical, ColumnType.Categorical],
                default_threshold=column.threshold,
            )
            registry.register_stattest(test, default_impl=fixed)
            registered.append((test, fixed))
            methods[column.column] = name
        yield methods
    finally:
        for test, fixed in registered:
            registry._registered_stat_tests.pop(test.name, None)
            registry._registered_stat_test_funcs.pop(fixed, None)
            registry._impls.pop(test, None)


def _prepend_header(run: Any, result: DriftResult, sample_rows: int | None) -> None:
    """Put a BridgeAI summary (what was compared, on how many rows) at the top of the report."""
    from evidently.legacy.renderers.html_widgets import table_data, text_widget

    widgets = getattr(run, "_widgets", None)
    if not isinstance(widgets, list):  # Evidently changed its internals: keep its own report
        return
    if result.window_start and result.window_end:
        current = (
            f"production predictions from {result.window_start:%Y-%m-%d %H:%M} to "
            f"{result.window_end:%Y-%m-%d %H:%M} UTC"
        )
    else:
        current = f"data version `{result.current}` (train split)"
    lines = [
        "## BridgeAI drift report",
        "",
        f"Reference: data version `{result.reference}` (train split), "
        f"{result.reference_rows:,} rows. Current: {current}, {result.current_rows:,} rows.",
        "",
        f"**{result.message}.**",
    ]
    if sample_rows:
        lines += [
            "",
            f"Scores and verdicts use every row; the distribution charts below are drawn from "
            f"a random sample of {sample_rows:,} rows per side.",
        ]
    lines += [f"\n{note}" for note in result.notes]
    table = table_data(
        title="Per-column tests on all rows",
        column_names=["column", "role", "test", "statistic", "p-value", "threshold", "drifted"],
        data=[
            [
                c.column,
                c.role,
                c.method_label,
                format_score(c.statistic),
                format_score(c.p_value),
                format_score(c.threshold),
                "yes" if c.drifted else "no",
            ]
            for c in result.columns
        ],
    )
    widgets[:0] = [text_widget(text="\n".join(lines)), table]


# -- cross-check against plain Evidently ------------------------------------------------------
def evidently_run(
    reference: pl.DataFrame | pd.DataFrame,
    current: pl.DataFrame | pd.DataFrame,
    specs: Sequence[ColumnSpec],
    *,
    drift_share_threshold: float = 0.5,
    threshold: float | None = None,
    per_column_method: Mapping[str, str] | None = None,
) -> Any:
    """Run plain Evidently (its own test choice and computation) on the full data.

    Slow on large data (minutes for a million rows): meant for tests and the benchmark, which
    check that :func:`analyse` gives Evidently's verdicts. Returns Evidently's ``Snapshot``.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    names = [s.name for s in specs]
    definition = DataDefinition(
        numerical_columns=[s.name for s in specs if s.kind == "num"],
        categorical_columns=[s.name for s in specs if s.kind == "cat"],
    )

    def to_pandas(frame: Any) -> pd.DataFrame:
        return frame.select(names).to_pandas() if isinstance(frame, pl.DataFrame) else frame[names]

    preset = DataDriftPreset(
        columns=names,
        drift_share=drift_share_threshold,
        threshold=threshold,
        per_column_method=dict(per_column_method) if per_column_method else None,
    )
    return Report([preset], include_tests=True).run(
        Dataset.from_pandas(to_pandas(current), data_definition=definition),
        Dataset.from_pandas(to_pandas(reference), data_definition=definition),
    )


def evidently_verdicts(run: Any) -> dict[str, dict[str, Any]]:
    """Per-column results of an Evidently data drift run (see :func:`evidently_run`).

    Returns:
        ``{column: {"method", "score", "threshold", "drifted"}}``; ``method`` is Evidently's
        display name for a test it chose, or the name the user gave.
    """
    document = run.dict()
    verdicts: dict[str, dict[str, Any]] = {}
    for metric in document["metrics"]:
        config = metric["config"]
        if not config["type"].endswith(":ValueDrift"):
            continue
        verdicts[config["column"]] = {
            "method": config["method"],
            "score": float(metric["value"]),
            "threshold": float(config["threshold"]),
        }
    for test in document["tests"]:
        column = test.get("metric_config", {}).get("params", {}).get("column")
        if column in verdicts:
            verdicts[column]["drifted"] = test["status"] == "FAIL"
    missing = [c for c, v in verdicts.items() if "drifted" not in v]
    if missing:
        raise RuntimeError(f"Evidently reported no drift test for {missing}")
    return verdicts
