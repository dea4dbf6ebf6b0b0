"""The model-training flow end to end: real ingestion first, then training, gate and registry.

Embedded mode (local storage folder, local git data repository, SQLite MLflow) and the local
stack's set-up (SeaweedFS S3 for data and MLflow artifacts, a real ``mlflow server`` process).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from blocks import DataRepository, MLflowServer, ObjectStorage
from bridgeai import schema
from bridgeai.data.dvc_store import DataRepoError
from bridgeai.data.versions import describe
from bridgeai.model.mlflow_client import fluent
from bridgeai.testing.synthetic import housing_frame
from bridgeai.training.fit import TrainingParams
from bridgeai.training.registry import format_metric
from flows.ingest import data_ingestion
from flows.train import TrainResult, model_training
from tests.support.drift import wait_for_event
from tests.support.train import MLflowProcess

pytestmark = [
    pytest.mark.usefixtures("prefect_harness"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dvc.*"),
]

NAME = "house_price_prediction_prod"


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _blocks(tmp_path: Path, storage: ObjectStorage, mlflow_block: MLflowServer) -> dict[str, str]:
    """Save the blocks under names only this test uses; return the flows' block parameters."""
    names = {
        "storage_block": _name("train-storage"),
        "repository_block": _name("train-repo"),
        "mlflow_block": _name("train-mlflow"),
    }
    storage.save(names["storage_block"])
    DataRepository(workdir=str(tmp_path / "data-repo")).save(names["repository_block"])
    mlflow_block.save(names["mlflow_block"])
    return names


def _train(names: dict[str, str], **kwargs: Any) -> tuple[TrainResult, str]:
    state = model_training(**names, **kwargs, return_state=True)
    return state.result(), str(state.state_details.flow_run_id)


def _artifacts(flow_run_id: str) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def _assert_champion_pyfunc(rows: pd.DataFrame, tracking_uri: str) -> np.ndarray:
    """The champion loads with plain MLflow and ignores the case of categoricals."""
    with fluent(tracking_uri):  # a notebook user sets the URI: the flow leaves no MLflow global
        pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    base = {f: schema.EXAMPLE_HOUSE[f] for f in schema.FEATURES}
    spelled = pd.DataFrame(
        [{**base, "basement": s, "prefarea": s, "mainroad": s} for s in ("yes", "YES", "Yes")]
    )
    prices = np.asarray(pyfunc.predict(spelled))
    assert prices[0] > 0 and prices[0] == prices[1] == prices[2]
    raw = np.asarray(pyfunc.predict(rows))  # the dataset's own rows: int areas, price column
    assert raw.shape == (len(rows),) and np.isfinite(raw).all()
    return raw


# -- the Show, embedded -----------------------------------------------------------------
@pytest.mark.slow
def test_embedded_training_on_the_originals_data(tmp_path: Path, shared_data: Path) -> None:
    names = _blocks(tmp_path, ObjectStorage(local_root=str(tmp_path / "storage")), MLflowServer())
    version = data_ingestion(
        source=str(shared_data / "HousingData.csv"),
        storage_block=names["storage_block"],
        repository_block=names["repository_block"],
    )
    assert version.tag == "data-v1.0.0" and version.rows["test"] == 109

    first, first_run = _train(names, data_version="data-v1.0.0")
    assert (first.model_version, first.promoted) == ("1", True)
    assert first.reason.startswith("no champion yet")
    assert set(first.metrics) == set(first.baseline_metrics) == {"rmse", "mae", "mape", "r2"}
    # The quality goal, and far above the median-price baseline (R² < 0 on this split).
    assert first.metrics["r2"] >= 0.65
    assert first.baseline_metrics["r2"] < 0
    assert first.metrics["rmse"] < 0.6 * first.baseline_metrics["rmse"]

    second, second_run = _train(names, data_version="data-latest")
    assert second.model_version == "2" and not second.promoted
    assert second.metrics == first.metrics  # deterministic
    assert "not strictly better than champion v1's" in second.reason

    client = MLflowServer.load(names["mlflow_block"]).client()
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"

    # Lineage on the run and on the registered version, which links to the run.
    expected = describe("data-v1.0.0", repository=DataRepository.load(names["repository_block"]))
    run = client.get_run(second.run_id)
    registered = client.get_model_version(NAME, "2")
    assert registered.run_id == second.run_id
    for tags in (run.data.tags, registered.tags):
        assert tags["data_version"] == "data-v1.0.0"
        assert tags["data_commit"] == expected.commit
        assert [tags[f"dvc_md5_{s}"] for s in ("train", "val", "test")] == [
            expected.md5[s] for s in ("train", "val", "test")
        ]
        assert tags["prefect_flow_run_id"] == second_run
        assert len(tags["git_sha"]) == 40
    assert run.data.metrics["test_r2"] == second.metrics["r2"]
    assert run.data.metrics["baseline_test_rmse"] == second.baseline_metrics["rmse"]
    assert registered.tags["gate_decision"] == "not_promoted"
    assert float(registered.tags["gate_score"]) == second.metrics["rmse"]
    assert float(registered.tags["gate_champion_score"]) == first.metrics["rmse"]
    assert client.get_run(first.run_id).data.tags["prefect_flow_run_id"] == first_run

    # Prefect artifacts: the metrics table and the decision with both scores.
    artifacts = _artifacts(second_run)
    table = artifacts["train-metrics"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert {row["metric"]: row["model"] for row in table} == second.metrics
    assert {row["metric"]: row["median_baseline"] for row in table} == second.baseline_metrics
    decision = artifacts["model-promotion"].data
    assert "`challenger`" in decision and format_metric(second.metrics["rmse"]) in decision
    assert f"v1: {format_metric(first.metrics['rmse'])}" in decision

    rows = pd.read_csv(shared_data / "HousingData.csv").head(20)
    _assert_champion_pyfunc(rows, MLflowServer().resolved_tracking_uri())


def test_a_missing_data_version_fails_before_touching_mlflow(
    tmp_path: Path, bridgeai_home: Path
) -> None:
    names = _blocks(tmp_path, ObjectStorage(local_root=str(tmp_path / "storage")), MLflowServer())
    with pytest.raises(DataRepoError, match="run the data-ingestion flow first"):
        model_training(**names, data_version="data-v9.9.9")
    assert not (bridgeai_home / "mlflow" / "mlflow.db").exists()


# -- against a real MLflow server, data and artifacts in SeaweedFS ------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_a_better_version_takes_champion_on_a_real_mlflow_server(
    tmp_path: Path,
    s3_storage: ObjectStorage,
    mlflow_server: MLflowProcess,
) -> None:
    csv = tmp_path / "houses.csv"
    housing_frame(300, seed=21).write_csv(csv)
    names = _blocks(tmp_path, s3_storage, mlflow_server.block(experiment=_name("experiment")))
    # A registered-model name of its own: the server is shared with other tests.
    model_name = f"house_price_{secrets.token_hex(4)}"
    version = data_ingestion(
        source=str(csv),
        storage_block=names["storage_block"],
        repository_block=names["repository_block"],
    )

    weak, _ = _train(
        names,
        data_version=version.tag,
        params=TrainingParams(linear_baseline=False, num_boost_round=2),
        registered_model=model_name,
    )
    assert weak.promoted and weak.model_version == "1"

    better, run_id = _train(
        names, data_version="data-latest", search=True, registered_model=model_name
    )
    assert better.promoted and better.model_version == "2"
    assert better.metrics["rmse"] < weak.metrics["rmse"]
    assert f"beats champion v1's {format_metric(weak.metrics['rmse'])}" in better.reason

    client = MLflowServer.load(names["mlflow_block"]).client()
    assert str(client.get_model_version_by_alias(model_name, "champion").version) == "2"
    files = {f.path for f in client.list_artifacts(better.run_id, "evaluation")}
    assert "evaluation/search.csv" in files and "evaluation/residuals.png" in files
    # Artifacts went through the server into the SeaweedFS bucket.
    stored = s3_storage_files(mlflow_server)
    assert any(better.run_id in p and p.endswith("feature_importance.png") for p in stored)
    artifacts = _artifacts(run_id)
    link = artifacts["mlflow-run"]
    assert f"({mlflow_server.url}/#/experiments/" in link.data and better.run_id in link.data
    assert f"/#/models/{model_name}/versions/2)" in artifacts["model-version"].data
    assert f"/#/models/{model_name}/versions/2)" in artifacts["model-promotion"].data
    # The plots reach the Prefect UI as images the tracking server serves over HTTP.
    import httpx

    for key in ("feature-importance", "residuals"):
        image_url = artifacts[key].data
        assert (
            image_url.startswith(f"{mlflow_server.url}/get-artifact?")
            and better.run_id in image_url
        )
        answer = httpx.get(image_url, timeout=30)
        assert answer.status_code == 200 and answer.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get_model_version(model_name, "2").tags["champion_since"].startswith("20")

    # The decision is announced: bridgeai.model.promoted, with both scores.
    event = wait_for_event(better.event_id)
    assert event.event == "bridgeai.model.promoted"
    assert event.resource.id == f"bridgeai.model-version.{model_name}.2"
    assert event.payload["previous_champion"] == "1" and better.previous_champion == "1"
    assert event.payload["score"] == better.metrics["rmse"]
    assert event.payload["champion_score"] == pytest.approx(weak.metrics["rmse"])
    assert event.payload["mlflow_block"] == names["mlflow_block"]
    assert event.payload["data_version"] == better.data_version == "data-v1.0.0"

    with fluent(mlflow_server.url):
        pyfunc = mlflow.pyfunc.load_model(f"models:/{model_name}@champion")
    rows = housing_frame(5, seed=1).to_pandas()
    assert np.isfinite(np.asarray(pyfunc.predict(rows))).all()

    # The same inputs again: identical metrics, and the champion stays.
    again, _ = _train(names, data_version=version.tag, search=True, registered_model=model_name)
    assert (again.model_version, again.promoted) == ("3", False)
    assert again.metrics == better.metrics
    assert str(client.get_model_version_by_alias(model_name, "challenger").version) == "3"
    tags = client.get_model_version(model_name, "3").tags
    assert float(tags["gate_champion_score"]) == float(tags["gate_score"]) == better.metrics["rmse"]
    assert "champion_since" not in tags
    rejected = wait_for_event(again.event_id)
    assert rejected.event == "bridgeai.model.rejected"
    assert rejected.payload["model_version"] == "3" and rejected.payload["previous_champion"] == "2"


@pytest.mark.integration
@pytest.mark.slow
def test_two_promotions_cannot_race_on_the_champion_alias(
    tmp_path: Path,
    s3_storage: ObjectStorage,
    mlflow_server: MLflowProcess,
) -> None:
    """Two trainings that reach the gate together are gated one after the other.

    The test holds the bridgeai-champion lock while both trainings log their runs, so both wait
    at the gate; released, the second one gated compares with the first one's outcome, never
    with the old champion both started from.
    """
    import threading
    import time

    from prefect.concurrency.sync import concurrency

    from flows._locks import CHAMPION_LOCK, ensure_limit

    experiment = _name("experiment")
    names = _blocks(tmp_path, s3_storage, mlflow_server.block(experiment=experiment))
    model_name = f"house_price_{secrets.token_hex(4)}"
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    housing_frame(150, seed=51).write_csv(small)
    housing_frame(600, seed=52).write_csv(large)
    common = {
        "storage_block": names["storage_block"],
        "repository_block": names["repository_block"],
    }
    first = data_ingestion(source=str(small), **common)
    weak, _ = _train(
        names,
        data_version=first.tag,
        params=TrainingParams(linear_baseline=False, num_boost_round=2),
        registered_model=model_name,
    )
    assert weak.model_version == "1" and weak.promoted
    second = data_ingestion(source=str(large), **common)

    client = MLflowServer.load(names["mlflow_block"]).client()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    results: dict[str, TrainResult] = {}
    errors: list[BaseException] = []

    def train(key: str, params: TrainingParams) -> None:
        try:
            results[key] = _train(
                names, data_version=second.tag, params=params, registered_model=model_name
            )[0]
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    ensure_limit(CHAMPION_LOCK)
    threads = [
        threading.Thread(target=train, args=("a", TrainingParams())),
        threading.Thread(target=train, args=("b", TrainingParams(num_leaves=4))),
    ]
    try:  # a failure here must not leave the trainings running into the next test
        with concurrency(CHAMPION_LOCK, occupy=1, strict=True):
            for thread in threads:
                thread.start()
            query = f"tags.data_version = '{second.tag}' and attributes.status = 'FINISHED'"
            deadline = time.monotonic() + 600
            while len(client.search_runs([experiment_id], query)) < 2 and not errors:
                assert time.monotonic() < deadline, "the two trainings never finished logging"
                time.sleep(1)
            assert not errors, errors
            # Both are at the gate; while the lock is held neither registers a version.
            time.sleep(5)
            versions = client.search_model_versions(f"name = '{model_name}'")
            assert [v.version for v in versions] == ["1"], "a gate ran without the champion lock"
    finally:
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=600)
    assert not errors, errors
    gated_first, gated_second = sorted(results.values(), key=lambda r: int(r.model_version))
    assert gated_first.previous_champion == "1"
    expected = gated_first.model_version if gated_first.promoted else "1"
    assert gated_second.previous_champion == expected
    # The alias is where the last decision put it (both were scored on the same test split).
    champion = client.get_model_version_by_alias(model_name, "champion")
    holder = next((r for r in (gated_second, gated_first) if r.promoted), weak)
    assert str(champion.version) == holder.model_version
    if gated_first.promoted and gated_second.promoted:
        assert gated_second.metrics["rmse"] < gated_first.metrics["rmse"]


def s3_storage_files(server: MLflowProcess) -> list[str]:
    return server.storage.filesystem().find(f"{server.storage.mlflow_bucket}/")
