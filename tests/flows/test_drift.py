"""The drift-monitoring flow end to end: real SeaweedFS, real data versions (the data-ingestion
flow with git + DVC), a real MLflow store, a real PostgreSQL prediction log and the session's
Prefect API (artifacts and events are read back from it)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from bridgeai import schema
from bridgeai.drift.analysis import DriftInputError
from bridgeai.service import prediction_log
from bridgeai.service.prediction_log import PredictionLogError
from bridgeai.testing.models import tiny_model
from bridgeai.testing.synthetic import housing_frame
from flows._tasks import is_transient
from flows.drift import DRIFT_EVENT, _window, drift_monitoring
from tests.support.drift import (
    DriftEnv,
    artifacts_of,
    ingest,
    register_champion,
    save_drift_blocks,
    wait_for_event,
)

WINDOW_START = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(hours=1)


def _run(**parameters):
    """Run the flow; return its result and its flow run id (for artifacts)."""
    state = drift_monitoring(**parameters, return_state=True)
    return state.result(), state.state_details.flow_run_id


# -- orchestration details that need no servers ---------------------------------------------------
def test_only_transient_errors_are_retried() -> None:
    import botocore.exceptions

    assert is_transient(ConnectionRefusedError("refused"))
    assert is_transient(botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"))
    unreachable = PredictionLogError("cannot read the prediction log at ...", transient=True)
    assert is_transient(unreachable)
    wrapped = OSError("could not store the drift report")
    wrapped.__cause__ = TimeoutError("read timed out")
    assert is_transient(wrapped)
    assert not is_transient(PredictionLogError("postgresql://... has no prediction_logs table"))
    assert not is_transient(DriftInputError("area: 'nope' is not an Evidently drift test"))
    assert not is_transient(PermissionError("Access Denied"))


def test_the_production_window_defaults_to_the_last_hours_and_must_not_be_empty() -> None:
    start, end = _window(None, None, 24)
    assert end.tzinfo is not None and (end - start) == timedelta(hours=24)
    naive = datetime(2025, 6, 1, 9, 0)
    assert _window(naive, None, 24)[0] == WINDOW_START  # naive means UTC
    with pytest.raises(DriftInputError, match="is not before window_end"):
        _window(WINDOW_END, WINDOW_START, 24)


# -- fixtures: one set of blocks, data versions and champion per module ---------------------------
@pytest.fixture(scope="module")
def env(prefect_harness, s3_server, tmp_path_factory: pytest.TempPathFactory) -> DriftEnv:
    return save_drift_blocks(s3_server, tmp_path_factory.mktemp("drift-env"))


@pytest.fixture(scope="module")
def housing_versions(env: DriftEnv, shared_data: Path) -> dict[str, str]:
    """The original's old and new CSVs, versioned as data-v1.0.0 and data-v1.1.0."""
    return {
        "old": ingest(env, shared_data / "HousingData-old.csv"),
        "new": ingest(env, shared_data / "HousingData-new.csv"),
    }


@pytest.fixture(scope="module")
def production_env(
    prefect_harness, s3_server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DriftEnv, str, object]]:
    """Blocks of their own, a synthetic data version and a champion trained for it."""
    root = tmp_path_factory.mktemp("drift-production")
    env = save_drift_blocks(s3_server, root)
    csv = root / "houses.csv"
    housing_frame(1000, seed=31).write_csv(csv)
    tag = ingest(env, csv)
    model = tiny_model(housing_frame(400, seed=33))
    version = register_champion(env, model, data_version=tag)
    yield env, version, model


def _log_window(url: str, model, frame: pl.DataFrame, start: datetime, version: str) -> None:
    """Write ``frame`` to the prediction log as successful predictions made from ``start`` on."""
    engine = prediction_log.create_log_engine(url)
    prediction_log.migrate(engine)
    predictions = model.predict_frame(frame)
    rows = [
        {
            **{name: row[name] for name in schema.FEATURES},
            "prediction": float(price),
            "model_name": "house_price_prediction_prod",
            "model_version": version,
            "request_id": secrets.token_hex(8),
            "batch_index": 0,
            "latency_ms": 3.0,
            "status": 200,
            "created_at": start + timedelta(seconds=5 * i),
        }
        for i, (row, price) in enumerate(zip(frame.iter_rows(named=True), predictions, strict=True))
    ]
    with engine.begin() as connection:
        prediction_log.insert_rows(connection, rows)
    engine.dispose()


# -- two data versions ---------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_old_vs_new_versions_store_a_report_with_price_drifted(
    env: DriftEnv, housing_versions: dict[str, str]
) -> None:
    result, run_id = _run(
        reference=housing_versions["old"], current=housing_versions["new"], **env.blocks()
    )
    assert (result.reference, result.current) == ("data-v1.0.0", "data-v1.1.0")
    assert result.status == "compared"
    assert "price" in result.drifted_columns
    assert result.column("price").role == "target"
    assert result.number_of_columns == 13
    assert result.drift_share == pytest.approx(len(result.drifted_columns) / 13)

    fs = env.storage.filesystem()
    bucket = env.storage.reports_bucket
    assert result.report_uri.startswith(f"s3://{bucket}/report_")
    assert fs.exists(result.report_uri) and fs.exists(result.json_uri)
    stored = json.loads(fs.cat_file(result.json_uri))
    assert stored["summary"]["drifted_columns"] == result.drifted_columns
    assert result.report_url.startswith(f"{env.storage.endpoint_url}/{bucket}/report_")

    artifacts = artifacts_of(run_id)
    assert {"drift-summary", "drift-columns", "drift-report"} <= set(artifacts)
    assert "price" in artifacts["drift-summary"].data
    table = json.loads(artifacts["drift-columns"].data)
    assert {row["column"]: row["drifted"] for row in table}["price"] is True
    assert f"({result.report_url})" in artifacts["drift-report"].data
    # The summary carries the report's presigned link and says when it stops working ...
    assert result.report_url_expires_at is not None
    assert "X-Amz-Signature=" in result.report_url
    assert f"({result.report_url})" in artifacts["drift-summary"].data
    assert f"link expires {result.report_url_expires_at:%Y-%m-%d %H:%M} UTC" in (
        artifacts["drift-summary"].data
    )
    # ... and the run's progress artifact went from loading to 100 % once the report was stored.
    assert float(artifacts["drift-progress"].data) == 100.0
    assert artifacts["drift-progress"].description == result.message


@pytest.mark.integration
@pytest.mark.slow
def test_the_champions_data_version_is_the_default_reference_and_has_no_drift_with_itself(
    env: DriftEnv, housing_versions: dict[str, str]
) -> None:
    register_champion(env, tiny_model(), data_version=housing_versions["new"])
    result, _ = _run(current="data-latest", drift_share_threshold=0.05, **env.blocks())
    assert result.reference == result.current == "data-v1.1.0"
    assert result.drifted_columns == []
    assert not result.drift_detected
    assert result.event_id is None


@pytest.mark.integration
@pytest.mark.slow
def test_a_bad_test_name_fails_before_any_loading(env: DriftEnv) -> None:
    with pytest.raises(ValueError, match="area: 'nope' is not an Evidently drift test"):
        drift_monitoring(
            reference="data-v9.9.9", per_column_method={"area": "nope"}, **env.blocks()
        )


# -- production traffic --------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_a_window_with_shifted_area_flags_area_and_emits_the_event(
    production_env, pg_database_url: str
) -> None:
    from blocks import PredictionDatabase

    env, version, model = production_env
    # Unshifted traffic the day before, shifted traffic in the window.
    _log_window(
        pg_database_url,
        model,
        housing_frame(500, seed=41),
        WINDOW_START - timedelta(days=1),
        version,
    )
    _log_window(
        pg_database_url, model, housing_frame(500, seed=42, area_shift=1.4), WINDOW_START, version
    )
    database = f"drift-db-{secrets.token_hex(3)}"
    PredictionDatabase.from_url(pg_database_url).save(database)
    common = {"current": "production", "database_block": database, **env.blocks()}

    before, _ = _run(
        window_start=WINDOW_START - timedelta(days=1),
        window_end=WINDOW_START - timedelta(hours=20),
        drift_share_threshold=0.1,
        **common,
    )
    assert before.current_rows == 500
    assert "area" not in before.drifted_columns

    result, run_id = _run(
        window_start=WINDOW_START, window_end=WINDOW_END, drift_share_threshold=0.1, **common
    )
    assert result.current == "production"
    assert (result.window_start, result.window_end) == (WINDOW_START, WINDOW_END)
    assert result.current_rows == 500
    assert "area" in result.drifted_columns
    assert result.column("prediction").role == "prediction"
    assert "price" not in {c.column for c in result.columns}
    assert result.drift_detected and result.event_id

    event = wait_for_event(result.event_id)
    assert event.event == DRIFT_EVENT
    assert event.resource.id == "bridgeai.model.house_price_prediction_prod"
    assert "area" in event.payload["drifted_columns"]
    assert event.payload["drift_share"] == pytest.approx(result.drift_share)
    assert event.payload["report_uri"] == result.report_uri
    related = {r.id: r.role for r in event.related}
    assert related[f"bridgeai.data-version.{result.reference}"] == "reference"
    assert f"prefect.flow-run.{run_id}" in related
    assert pg_database_url.split("@")[0] not in json.dumps(event.payload)  # no credentials


@pytest.mark.integration
@pytest.mark.slow
def test_an_empty_window_gives_a_clear_result(
    production_env, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _, _ = production_env
    engine = prediction_log.create_log_engine(pg_database_url)
    prediction_log.migrate(engine)
    engine.dispose()
    monkeypatch.setenv("BRIDGEAI_DATABASE_URL", pg_database_url)
    result, run_id = _run(
        current="production", window_start=WINDOW_START, window_end=WINDOW_END, **env.blocks()
    )
    assert result.status == "no-rows-in-window"
    assert result.message.startswith("no rows in window")
    assert (result.current_rows, result.drift_detected, result.report_uri) == (0, False, None)
    assert "no rows in window" in artifacts_of(run_id)["drift-summary"].data
