"""Run logging and the champion gate on an embedded MLflow store (the real server: tests/flows)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from bridgeai.data.versions import DataVersion
from bridgeai.model import registry_uri, source
from bridgeai.model.mlflow_client import fluent
from bridgeai.testing.synthetic import housing_frame
from bridgeai.training import evaluation, registry, tracking
from bridgeai.training import fit as training
from bridgeai.training.fit import TrainingParams
from bridgeai.training.registry import PromotionPolicy
from tests.support.train import (
    EmbeddedStore,
    unique_name,
)

WEAK = TrainingParams(linear_baseline=False, num_boost_round=2)
LINEAGE_KEYS = {
    "data_version",
    "data_commit",
    "dvc_md5_train",
    "dvc_md5_val",
    "dvc_md5_test",
    "git_sha",
    "prefect_flow_run_id",
}


def _lineage() -> tracking.Lineage:
    version = DataVersion(
        tag="data-v1.0.0",
        commit="c0ffee" * 6 + "abcd",
        md5={"train": "a" * 32, "val": "b" * 32, "test": "c" * 32},
        rows={"train": 256, "val": 64, "test": 80},
        source="test",
        checksum="0" * 64,
    )
    return tracking.Lineage.from_data_version(version, flow_run_id="flow-run-1", git_sha="1" * 40)


def _train_and_log(
    store: EmbeddedStore, frames: dict[str, pl.DataFrame], params: TrainingParams | None = None
) -> tuple[evaluation.Metrics, tracking.RunRecord]:
    trained = training.train_model(frames, params)
    test = frames["test"]
    y = training.target(test)
    metrics = evaluation.regression_metrics(y, trained.model.predict_frame(test))
    baseline = evaluation.median_baseline(training.target(frames["train"]), y)
    record = tracking.log_training_run(
        tracking_uri=store.tracking_uri,
        experiment_id=store.experiment_id,
        trained=trained,
        test=test,
        test_metrics=metrics,
        baseline_metrics=baseline,
        lineage=_lineage(),
    )
    return metrics, record


def _gate(
    client: Any,
    name: str,
    frames: dict[str, pl.DataFrame],
    metrics: evaluation.Metrics,
    record: tracking.RunRecord,
    policy: PromotionPolicy | None = None,
) -> registry.GateDecision:
    return registry.register_and_gate(
        client,
        name=name,
        model_uri=record.model_uri,
        run_id=record.run_id,
        test=frames["test"],
        metrics=metrics,
        policy=policy,
        tags=_lineage().tags(),
        model_id=record.model_id,
    )


def _alias(client: Any, name: str, alias: str) -> str | None:
    found = source.find_version(client, name, alias)
    return None if found is None else str(found.version)


# -- the gate -----------------------------------------------------------------------------------
def test_first_version_is_champion_and_an_equal_one_is_challenger(
    mlflow_store: EmbeddedStore,
    synthetic_splits: dict[str, pl.DataFrame],
) -> None:
    client, name = mlflow_store.client, unique_name()
    metrics, record = _train_and_log(mlflow_store, synthetic_splits)
    first = _gate(client, name, synthetic_splits, metrics, record)
    assert (first.version, first.promoted, first.alias) == ("1", True, "champion")
    assert first.reason.startswith("no champion yet")

    metrics2, record2 = _train_and_log(mlflow_store, synthetic_splits)
    assert metrics2 == metrics  # deterministic
    second = _gate(client, name, synthetic_splits, metrics2, record2)
    assert (second.version, second.promoted, second.alias) == ("2", False, "challenger")
    assert second.champion_version == "1"
    assert second.champion_score == second.score == metrics.rmse
    assert "is not strictly better than champion v1's" in second.reason
    assert (_alias(client, name, "champion"), _alias(client, name, "challenger")) == ("1", "2")

    tags = client.get_model_version(name, "2").tags
    assert tags["gate_decision"] == "not_promoted"
    assert float(tags["gate_score"]) == float(tags["gate_champion_score"]) == metrics.rmse
    assert tags["gate_champion_version"] == "1"
    assert tags["gate_metric"] == "rmse"
    assert client.get_model_version(name, "1").tags["gate_champion_version"] == "none"


def test_a_better_version_takes_champion(
    mlflow_store: EmbeddedStore,
    synthetic_splits: dict[str, pl.DataFrame],
) -> None:
    client, name = mlflow_store.client, unique_name()
    weak_metrics, weak = _train_and_log(mlflow_store, synthetic_splits, WEAK)
    assert _gate(client, name, synthetic_splits, weak_metrics, weak).promoted

    metrics, record = _train_and_log(mlflow_store, synthetic_splits)
    assert metrics.rmse < weak_metrics.rmse
    decision = _gate(client, name, synthetic_splits, metrics, record)
    assert (decision.version, decision.promoted, decision.alias) == ("2", True, "champion")
    assert decision.champion_score == pytest.approx(weak_metrics.rmse)
    assert "beats champion v1's" in decision.reason
    assert _alias(client, name, "champion") == "2"
    assert client.get_model_version(name, "2").tags["gate_decision"] == "promoted"


def test_the_champion_is_rescored_on_the_current_test_split(
    mlflow_store: EmbeddedStore,
    synthetic_splits: dict[str, pl.DataFrame],
) -> None:
    client, name = mlflow_store.client, unique_name()
    metrics, record = _train_and_log(mlflow_store, synthetic_splits)
    _gate(client, name, synthetic_splits, metrics, record)

    # A new data version: other houses in test. The champion's logged score does not apply.
    other = {**synthetic_splits, "test": housing_frame(120, seed=99)}
    model, _ = source.load(registry_uri(name, version=1), client)
    expected = evaluation.regression_metrics(
        training.target(other["test"]), model.predict_frame(other["test"])
    )
    assert expected.rmse != metrics.rmse
    new_metrics, new_record = _train_and_log(mlflow_store, other, WEAK)
    decision = _gate(client, name, other, new_metrics, new_record)
    assert decision.champion_score == pytest.approx(expected.rmse)
    assert not decision.promoted


def test_policy_margin_and_metric_direction(
    mlflow_store: EmbeddedStore,
    synthetic_splits: dict[str, pl.DataFrame],
) -> None:
    client, name = mlflow_store.client, unique_name()
    weak_metrics, weak = _train_and_log(mlflow_store, synthetic_splits, WEAK)
    _gate(client, name, synthetic_splits, weak_metrics, weak)
    metrics, record = _train_and_log(mlflow_store, synthetic_splits)
    gain = 1 - metrics.rmse / weak_metrics.rmse

    strict = PromotionPolicy(min_improvement=min(1.0, gain + 0.05))
    refused = _gate(client, name, synthetic_splits, metrics, record, strict)
    assert not refused.promoted and f"better by more than {strict.min_improvement:.2%}" in (
        refused.reason
    )
    metrics3, record3 = _train_and_log(mlflow_store, synthetic_splits)
    by_r2 = _gate(client, name, synthetic_splits, metrics3, record3, PromotionPolicy(metric="r2"))
    assert by_r2.promoted and by_r2.metric == "r2" and by_r2.score == metrics.r2
    assert by_r2.champion_score == pytest.approx(weak_metrics.r2)


def test_a_retried_registration_reuses_the_version(
    mlflow_store: EmbeddedStore,
    synthetic_splits: dict[str, pl.DataFrame],
) -> None:
    client, name = mlflow_store.client, unique_name()
    metrics, record = _train_and_log(mlflow_store, synthetic_splits)
    first = _gate(client, name, synthetic_splits, metrics, record)
    again = _gate(client, name, synthetic_splits, metrics, record)
    assert again.version == first.version == "1"
    assert len(client.search_model_versions(f"name = '{name}'")) == 1


def test_an_unreadable_champion_is_replaced(
    mlflow_store: EmbeddedStore,
    synthetic_splits: dict[str, pl.DataFrame],
) -> None:
    import mlflow

    client, name = mlflow_store.client, unique_name()
    with (
        fluent(mlflow_store.tracking_uri),
        mlflow.start_run(experiment_id=mlflow_store.experiment_id) as run,
    ):
        mlflow.log_text("not a model", "junk/model_dir/readme.txt")
    registry.ensure_registered_model(client, name)
    junk = client.create_model_version(name, f"runs:/{run.info.run_id}/junk", run.info.run_id)
    client.set_registered_model_alias(name, "champion", junk.version)

    metrics, record = _train_and_log(mlflow_store, synthetic_splits)
    decision = _gate(client, name, synthetic_splits, metrics, record)
    assert decision.promoted and decision.champion_score is None
    assert "champion v1 could not be scored" in decision.reason
    assert "has no model_dir artifact: not a BridgeAI model" in decision.reason


# -- what the run and the version carry ---------------------------------------------------------
def test_run_and_version_carry_metrics_lineage_and_artifacts(
    mlflow_store: EmbeddedStore,
    synthetic_splits: dict[str, pl.DataFrame],
) -> None:
    client, name = mlflow_store.client, unique_name()
    metrics, record = _train_and_log(mlflow_store, synthetic_splits)
    decision = _gate(client, name, synthetic_splits, metrics, record)

    run = client.get_run(record.run_id)
    assert set(run.data.tags) >= LINEAGE_KEYS
    assert run.data.tags["data_version"] == "data-v1.0.0"
    assert run.data.tags["dvc_md5_test"] == "c" * 32
    for key, value in metrics.as_dict().items():
        assert run.data.metrics[f"test_{key}"] == pytest.approx(value)
        assert f"baseline_test_{key}" in run.data.metrics and f"val_{key}" in run.data.metrics
    assert run.data.params["target_transform"] == "log"
    assert run.data.params["linear_baseline"] == "True"
    files = {f.path for f in client.list_artifacts(record.run_id, "evaluation")}
    assert files == {
        "evaluation/feature_importance.csv",
        "evaluation/feature_importance.png",
        "evaluation/residuals.png",
    }

    version = client.get_model_version(name, decision.version)
    assert version.run_id == record.run_id
    assert {k: version.tags[k] for k in LINEAGE_KEYS} == _lineage().tags()
    assert float(version.tags["test_r2"]) == metrics.r2


def test_champion_loads_as_pyfunc_and_ignores_categorical_case(
    mlflow_store: EmbeddedStore,
    synthetic_splits: dict[str, pl.DataFrame],
) -> None:
    client, name = mlflow_store.client, unique_name()
    metrics, record = _train_and_log(mlflow_store, synthetic_splits)
    _gate(client, name, synthetic_splits, metrics, record)
    _assert_pyfunc_champion(mlflow_store, name, synthetic_splits["test"])


def _assert_pyfunc_champion(store: EmbeddedStore, name: str, test: pl.DataFrame) -> None:
    import mlflow
    import pandas as pd

    from bridgeai import schema

    client = store.client
    with fluent(store.tracking_uri):
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    base = {f: schema.EXAMPLE_HOUSE[f] for f in schema.FEATURES}
    rows = pd.DataFrame(
        [
            {**base, "mainroad": "yes", "airconditioning": "yes", "furnishingstatus": "furnished"},
            {**base, "mainroad": "YES", "airconditioning": "YES", "furnishingstatus": "FURNISHED"},
            {**base, "mainroad": "Yes", "airconditioning": "Yes", "furnishingstatus": "Furnished"},
        ]
    )
    rows["area"] = rows["area"].astype(float)
    prices = np.asarray(pyfunc.predict(rows))
    assert prices[0] > 0 and prices[0] == prices[1] == prices[2]
    # The pyfunc and the registry's own loader agree on the test split's raw rows.
    direct, info = source.load(registry_uri(name, alias="champion"), client)
    assert info.aliases == ["champion"]
    np.testing.assert_allclose(
        np.asarray(pyfunc.predict(test.to_pandas())), direct.predict_frame(test)
    )
