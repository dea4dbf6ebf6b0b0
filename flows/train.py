"""The model-training flow: LightGBM on a data version, tracked in MLflow, gated into the registry.

From a notebook::

    from flows.train import model_training
    result = model_training(data_version="data-v1.0.0")
    result.metrics["r2"], result.model_version, result.promoted

Each run reads the train/val/test splits of a data version, fits the model (preprocessing inside
it, early stopping on val), scores it and a median-price baseline on test in price units, logs
everything to MLflow with lineage tags, registers a new version of the model and moves the
``champion`` alias only when the new version beats the current champion on the same test split.
The work is done by :mod:`bridgeai.training.fit`, :mod:`bridgeai.training.evaluation`,
:mod:`bridgeai.training.tracking` and :mod:`bridgeai.training.registry`; this module only
orchestrates it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from blocks import DataRepository, MLflowServer, ObjectStorage, load_block
from bridgeai.data import versions as data_versions
from bridgeai.data.versions import DataVersion
from bridgeai.model import REGISTERED_MODEL
from bridgeai.training import evaluation, registry
from bridgeai.training import fit as training
from bridgeai.training.evaluation import Metrics
from bridgeai.training.fit import TrainedModel, TrainingParams
from bridgeai.training.registry import GateDecision, PromotionPolicy
from bridgeai.training.tracking import Lineage, RunRecord, log_training_run, project_git_sha
from flows import _links as links
from flows._events import MODEL_PROMOTED, MODEL_REJECTED, emit
from flows._locks import CHAMPION_LOCK, exclusive
from flows._tasks import IN_PROCESS, IO_RETRIES

#: Version tag set when a version takes the champion alias (MLflow keeps no alias history).
CHAMPION_SINCE_TAG = "champion_since"
#: The plots the training run logs, shown in the Prefect UI as image artifacts.
PLOTS = {
    "feature-importance": "evaluation/feature_importance.png",
    "residuals": "evaluation/residuals.png",
}


class TrainResult(BaseModel):
    """What one training run produced and what the champion gate decided."""

    run_id: str = Field(description="The MLflow run.")
    model_version: str = Field(description="The version registered by this run.")
    metrics: dict[str, float] = Field(description="Test rmse, mae, mape, r2 (price units).")
    baseline_metrics: dict[str, float] = Field(
        description="The same metrics for predicting the training median price."
    )
    promoted: bool = Field(description="True when this version took the champion alias.")
    reason: str = Field(description="Why it was (not) promoted, with both scores.")
    data_version: str = Field(default="", description="The concrete data version trained on.")
    previous_champion: str | None = Field(
        default=None, description="The champion the gate compared with (None if none existed)."
    )
    event_id: str | None = Field(
        default=None, description="The bridgeai.model.promoted / .rejected event emitted."
    )


# -- I/O tasks ----------------------------------------------------------------------------------
@task(name="load-data-version", **IO_RETRIES, **IN_PROCESS)
def load_data_version(
    data_version: str, storage: ObjectStorage, repository: DataRepository
) -> tuple[DataVersion, dict[str, pl.DataFrame]]:
    """Resolve the tag to a concrete version and read its three splits (md5-checked)."""
    version = data_versions.describe(data_version, repository=repository)
    frames = data_versions.load_splits(version.tag, storage=storage, repository=repository)
    get_run_logger().info(
        "Read %s (commit %s): %s",
        version.tag,
        version.commit[:12],
        ", ".join(f"{k} {v.height} rows" for k, v in frames.items()),
    )
    return version, frames


@task(name="log-mlflow-run", **IO_RETRIES, **IN_PROCESS)
def log_mlflow_run(
    server: MLflowServer,
    trained: TrainedModel,
    test: pl.DataFrame,
    test_metrics: Metrics,
    baseline_metrics: Metrics,
    lineage: Lineage,
    search_table: pl.DataFrame | None,
) -> tuple[str, RunRecord]:
    """Log params, metrics, lineage tags, plots and the model (signature, example, pins)."""
    experiment_id = server.ensure_experiment()
    record = log_training_run(
        tracking_uri=server.resolved_tracking_uri(),
        experiment_id=experiment_id,
        trained=trained,
        test=test,
        test_metrics=test_metrics,
        baseline_metrics=baseline_metrics,
        lineage=lineage,
        run_name=f"{lineage.data_version}-{(flow_run.get_name() or 'local')}",
        search_table=search_table,
    )
    get_run_logger().info("Logged MLflow run %s (%s)", record.run_id, record.model_uri)
    return experiment_id, record


@task(name="register-and-gate", **IO_RETRIES, **IN_PROCESS)
def register_and_gate(
    server: MLflowServer,
    record: RunRecord,
    test: pl.DataFrame,
    test_metrics: Metrics,
    policy: PromotionPolicy,
    registered_model: str,
    alias: str,
    lineage: Lineage,
) -> GateDecision:
    """Register a new version, re-score the champion on this test split, move the alias.

    The caller holds the champion lock, so no other gate reads or moves the alias meanwhile.
    """
    client = server.client()
    decision = registry.register_and_gate(
        client,
        name=registered_model,
        model_uri=record.model_uri,
        run_id=record.run_id,
        test=test,
        metrics=test_metrics,
        policy=policy,
        alias=alias,
        tags=lineage.tags(),
        model_id=record.model_id,
    )
    # The run points back at what became of it, for readers starting from the run page.
    client.set_tag(record.run_id, "registered_model", registered_model)
    client.set_tag(record.run_id, "registered_version", decision.version)
    client.set_tag(
        record.run_id, "gate_decision", "promoted" if decision.promoted else "not_promoted"
    )
    if decision.promoted:
        client.set_model_version_tag(
            registered_model,
            decision.version,
            CHAMPION_SINCE_TAG,
            datetime.now(UTC).isoformat(timespec="seconds"),
        )
    return decision


# -- pure tasks ---------------------------------------------------------------------------------
@task(name="fit-model", **IN_PROCESS)
def fit_model(
    frames: dict[str, pl.DataFrame],
    params: TrainingParams,
    target_transform: Literal["log", "none"],
    search: bool,
) -> tuple[TrainedModel, pl.DataFrame | None]:
    """Fit on train with early stopping on val (optionally the small search, scored on val)."""
    logger = get_run_logger()
    if not search:
        trained = training.train_model(frames, params, target_transform)
        table = None
    else:
        found = training.search(
            frames, training.search_candidates(params), target_transform=target_transform
        )
        trained, table = found.best, pl.DataFrame(found.candidates)
        logger.info("Search: %d candidates scored on val; chose %s", table.height, trained.params)
    logger.info(
        "Fitted %d trees (best iteration on val); val R² %.4f, val RMSE %.0f",
        trained.best_iteration,
        trained.val_metrics.r2,
        trained.val_metrics.rmse,
    )
    return trained, table


@task(name="evaluate-on-test", **IN_PROCESS)
def evaluate_on_test(
    trained: TrainedModel, frames: dict[str, pl.DataFrame]
) -> tuple[Metrics, Metrics]:
    """Test metrics of the model and of the median-price baseline, in price units."""
    test = frames["test"]
    if test.height == 0:
        raise ValueError("the test split is empty: re-ingest with a larger test_size")
    training.check_frame(test, "test")
    y_true = training.target(test)
    metrics = evaluation.regression_metrics(y_true, trained.model.predict_frame(test))
    baseline = evaluation.median_baseline(training.target(frames["train"]), y_true)
    return metrics, baseline


# -- the flow -----------------------------------------------------------------------------------
@flow(name="model-training")
def model_training(
    data_version: Annotated[
        str,
        Field(description="Data version tag: data-vX.Y.Z, data-latest or data-previous."),
    ] = "data-latest",
    params: Annotated[
        TrainingParams,
        Field(description="LightGBM hyperparameters and the linear baseline."),
    ] = TrainingParams(),
    target_transform: Annotated[
        Literal["log", "none"],
        Field(description="log: fit log1p(price), predict expm1; none: fit the price itself."),
    ] = "log",
    search: Annotated[
        bool,
        Field(
            description="Also try the small grid around params (8 configurations) and keep the "
            "best on val. The test split never chooses."
        ),
    ] = False,
    policy: Annotated[
        PromotionPolicy,
        Field(description="When a new version replaces the champion (default: lower test RMSE)."),
    ] = PromotionPolicy(),
    registered_model: Annotated[
        str | None,
        Field(
            description=f"Registered model name. Default: the MLflow block's ({REGISTERED_MODEL})."
        ),
    ] = None,
    alias: Annotated[
        str | None,
        Field(description="Alias of the serving version. Default: the MLflow block's (champion)."),
    ] = None,
    mlflow_block: Annotated[
        str, Field(description="MLflowServer block: tracking server and registry.")
    ] = "bridgeai",
    storage_block: Annotated[
        str, Field(description="ObjectStorage block holding the DVC remote of the data.")
    ] = "bridgeai",
    repository_block: Annotated[
        str, Field(description="DataRepository block: the git repository of the data versions.")
    ] = "bridgeai",
) -> TrainResult:
    """Train the house-price model on a data version and gate it into the MLflow registry.

    Reads the train/val/test splits of the data version, fits LightGBM boosted from a linear
    baseline (preprocessing inside the model; early stopping on val), scores it and a
    median-price baseline on test in price units, and logs params, metrics, lineage tags
    (data version, DVC md5s, git sha, flow run id), plots and the model to MLflow. A new
    version of the registered model is created on every run; it takes the champion alias only
    when it beats the current champion on the same test split by the policy (or when there is
    none), and the challenger alias otherwise; the gate holds the bridgeai-champion lock (a
    Prefect global concurrency limit), so two promotions never race. The decision and both
    scores are recorded as version tags and as the model-promotion artifact, and announced as
    the bridgeai.model.promoted or bridgeai.model.rejected event (the deploy-model automation
    deploys a promoted version).

    Args:
        data_version: data-vX.Y.Z, data-latest or data-previous.
        params: LightGBM hyperparameters.
        target_transform: log or none.
        search: try the small grid around params, scored on val.
        policy: promotion metric and minimum relative improvement.
        registered_model: registered model name (default: the MLflow block's).
        alias: the serving alias (default: the MLflow block's).
        mlflow_block: MLflowServer block name.
        storage_block: ObjectStorage block name.
        repository_block: DataRepository block name.

    Returns:
        The MLflow run id, the registered version, test metrics of the model and of the
        baseline, and the gate's decision with its reason.
    """
    logger = get_run_logger()
    started = time.perf_counter()
    server = load_block(MLflowServer, mlflow_block)
    storage = load_block(ObjectStorage, storage_block)
    repository = load_block(DataRepository, repository_block)
    registered_model = registered_model or server.registered_model
    alias = alias or server.alias

    version, frames = load_data_version(data_version, storage, repository)
    trained, search_table = fit_model(frames, params, target_transform, search)
    metrics, baseline = evaluate_on_test(trained, frames)
    logger.info(
        "Test R² %.4f (median baseline %.4f), RMSE %.0f (baseline %.0f)",
        metrics.r2,
        baseline.r2,
        metrics.rmse,
        baseline.rmse,
    )
    lineage = Lineage.from_data_version(
        version, flow_run_id=flow_run.get_id(), git_sha=project_git_sha()
    )
    experiment_id, record = log_mlflow_run(
        server, trained, frames["test"], metrics, baseline, lineage, search_table
    )
    # Read-compare-set of the alias under one lock, whether this run is a deployment run or a
    # subflow: two promotions never both beat the same old champion.
    with exclusive(CHAMPION_LOCK):
        decision = register_and_gate(
            server, record, frames["test"], metrics, policy, registered_model, alias, lineage
        )
    logger.info(
        "Version %s of %s: %s — %s",
        decision.version,
        registered_model,
        "promoted to " + alias if decision.promoted else "challenger",
        decision.reason,
    )

    _publish(server, experiment_id, record, decision, version, metrics, baseline, registered_model)
    event_id = _emit_decision(decision, record, version, registered_model, mlflow_block)
    logger.info("Training finished in %.1f s", time.perf_counter() - started)
    return TrainResult(
        run_id=record.run_id,
        model_version=decision.version,
        metrics=metrics.as_dict(),
        baseline_metrics=baseline.as_dict(),
        promoted=decision.promoted,
        reason=decision.reason,
        data_version=version.tag,
        previous_champion=decision.champion_version,
        event_id=event_id,
    )


def _emit_decision(
    decision: GateDecision,
    record: RunRecord,
    version: DataVersion,
    registered_model: str,
    mlflow_block: str,
) -> str | None:
    """``bridgeai.model.promoted`` or ``.rejected`` about the new version, with both scores."""
    return emit(
        MODEL_PROMOTED if decision.promoted else MODEL_REJECTED,
        {
            "prefect.resource.id": f"bridgeai.model-version.{registered_model}.{decision.version}",
            "prefect.resource.name": f"{registered_model} v{decision.version}",
        },
        payload={
            "registered_model": registered_model,
            "model_version": decision.version,
            "alias": decision.alias,
            "previous_champion": decision.champion_version,
            "metric": decision.metric,
            "score": decision.score,
            "champion_score": decision.champion_score,
            "reason": decision.reason,
            "run_id": record.run_id,
            "data_version": version.tag,
            # The block the version is registered in: the deployment the event starts uses it.
            "mlflow_block": mlflow_block,
        },
        related=[
            {
                "prefect.resource.id": f"bridgeai.model.{registered_model}",
                "prefect.resource.role": "model",
            },
            {
                "prefect.resource.id": f"bridgeai.data-version.{version.tag}",
                "prefect.resource.role": "data-version",
            },
        ],
    )


def _publish(
    server: MLflowServer,
    experiment_id: str,
    record: RunRecord,
    decision: GateDecision,
    version: DataVersion,
    metrics: Metrics,
    baseline: Metrics,
    registered_model: str,
) -> None:
    """The flow's artifacts: metrics, the gate decision with links, the plots, the MLflow links."""
    create_table_artifact(
        key="train-metrics",
        table=[
            {
                "metric": name,
                "model": getattr(metrics, name),
                "median_baseline": getattr(baseline, name),
            }
            for name in evaluation.METRICS
        ],
        description=f"Test metrics on {version.tag} ({version.rows.get('test', '?')} rows), "
        f"price units; MAPE as a fraction.",
    )
    base = links.mlflow_ui(server)
    run_link = links.run_url(server, record.run_id, experiment_id)
    version_link = links.model_version_url(server, registered_model, decision.version)
    if decision.champion_version is None:
        champion = "none"
    elif decision.champion_score is None:
        champion = f"v{decision.champion_version}: could not be scored"
    else:
        champion = (
            f"v{decision.champion_version}: {registry.format_metric(decision.champion_score)}"
        )
    outcome = f"**promoted** to `{decision.alias}`" if decision.promoted else "`challenger`"
    lines = [
        f"# {registered_model} v{decision.version}: {outcome}",
        "",
        f"{decision.reason}.",
        "",
        f"| | test {decision.metric} |",
        "|---|---|",
        f"| new version v{decision.version} | {registry.format_metric(decision.score)} |",
        f"| champion before this run | {champion} |",
        "",
        f"Data: `{version.tag}` (commit `{version.commit[:12]}`). Test R² {metrics.r2:.4f}, "
        f"median-price baseline {baseline.r2:.4f}.",
        "",
        f"- MLflow run: {links.md(record.run_id, run_link)}",
        f"- Model version: {links.md(f'{registered_model} v{decision.version}', version_link)}",
    ]
    if base:
        lines += [""] + [
            f"![{key}]({links.artifact_url(server, record.run_id, path)})"
            for key, path in PLOTS.items()
        ]
    create_markdown_artifact(
        key="model-promotion",
        markdown="\n".join(lines),
        description=f"Champion gate for v{decision.version}",
    )
    if base is None:  # embedded store: no UI to link to; the plots are in the run's folder
        return
    create_link_artifact(
        key="mlflow-run", link=str(run_link), link_text=f"MLflow run {record.run_id}"
    )
    create_link_artifact(
        key="model-version",
        link=str(version_link),
        link_text=f"{registered_model} v{decision.version} ({decision.alias})",
    )
    # The tracking server serves run artifacts over HTTP, so the UI can show the plots.
    for key, path in PLOTS.items():
        create_image_artifact(
            image_url=str(links.artifact_url(server, record.run_id, path)),
            key=key,
            description=f"{path} of MLflow run {record.run_id} (test split of {version.tag})",
        )
