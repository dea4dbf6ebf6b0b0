"""The whole pipeline as one flow: ingest → train → image → deploy → smoke → drift.

Each stage is the stage's own flow called as a subflow, so the Prefect UI shows the tree and every
stage can still be run, scheduled and retried on its own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from blocks import DataRepository, MLflowServer, ObjectStorage, PredictionDatabase, load_block
from bridgeai.data import versions as data_versions
from bridgeai.data.versions import DataVersion
from bridgeai.deploy.image import ImageRef
from bridgeai.drift.analysis import DriftResult
from bridgeai.service.smoke import SmokeResult
from flows import _links as links
from flows._tasks import IO_RETRIES
from flows.build_image import build_model_image
from flows.deploy import DeployResult, deploy_model
from flows.drift import drift_monitoring
from flows.ingest import data_ingestion
from flows.train import TrainResult, model_training


class PipelineResult(BaseModel):
    """Each stage's outcome; a stage that did not run has ``None`` and a note saying why."""

    data: DataVersion
    training: TrainResult
    image: ImageRef | None = None
    image_note: str = ""
    deployment: DeployResult | None = None
    deployment_note: str = ""
    smoke: SmokeResult | None = None
    smoke_note: str = ""
    drift: DriftResult | None = None
    drift_note: str = ""
    seconds: float = 0.0

    def outcomes(self) -> list[tuple[str, str]]:
        """One line per stage, as the demo prints them and the summary artifact shows them."""
        t, smoke, drift = self.training, self.smoke, self.drift
        decision = "promoted to champion" if t.promoted else "not promoted"
        lines = [
            ("data", f"{self.data.tag} ({'new version' if self.data.created else 'unchanged'}, "
             f"{'/'.join(str(self.data.rows[s]) for s in ('train', 'val', 'test'))} rows)"),
            ("model", f"version {t.model_version}: test R2 {t.metrics['r2']:.3f}, RMSE "
             f"{t.metrics['rmse']:,.0f}, MAE {t.metrics['mae']:,.0f} (median baseline R2 "
             f"{t.baseline_metrics['r2']:.3f}, RMSE {t.baseline_metrics['rmse']:,.0f})"),
            ("promotion", f"{decision}: {t.reason}"),
            ("image", self.image.reference if self.image else self.image_note),
            ("endpoint", self.deployment.url if self.deployment else self.deployment_note),
        ]  # fmt: skip
        if smoke is not None:
            mape = f", MAPE {100 * smoke.mape:.1f}%" if smoke.mape is not None else ""
            lines.append(
                ("prediction", f"example house {smoke.example_prediction:,.0f} {smoke.unit} "
                 f"from v{smoke.model_version} via {smoke.service_url} "
                 f"({smoke.requests} requests{mape})")
            )  # fmt: skip
        else:
            lines.append(("prediction", self.smoke_note))
        if drift is not None:
            verdict = "DRIFT DETECTED" if drift.drift_detected else "no dataset drift"
            columns = ", ".join(drift.drifted_columns) or "none"
            lines.append(
                ("drift", f"{verdict} ({drift.reference} vs {drift.current}: "
                 f"{drift.drift_share:.0%} of columns drifted: {columns})")
            )  # fmt: skip
            lines.append(("report", drift.report_uri or drift.message))
        else:
            lines.append(("drift", self.drift_note))
        return lines


# -- tasks: small decisions and the smoke check -------------------------------------------------
@task(cache_policy=NO_CACHE)
def docker_engine() -> str | None:
    """None when a Docker engine answers, else why not (the pipeline then skips the image)."""
    from bridgeai.deploy.image import DockerUnavailableError, connect

    try:
        connect(timeout=10).close()
    except DockerUnavailableError as exc:
        return str(exc)
    return None


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def previous_data_version(tag: str, repository: DataRepository) -> str | None:
    """The version tagged just before ``tag``, or None for the first one."""
    tags = data_versions.list_data_versions(repository=repository)
    index = tags.index(tag) if tag in tags else len(tags)
    return tags[index - 1] if index > 0 else None


@task(cache_policy=NO_CACHE, persist_result=False)
def smoke_predictions(
    model_url: str,
    data_version: str,
    rows: int,
    service_url: str | None,
    storage: ObjectStorage,
    repository: DataRepository,
    database: PredictionDatabase,
) -> SmokeResult:
    """Post held-out houses through the prediction service and check the answers.

    Locally the service is (re)started in front of the freshly deployed model server, logging
    to the PredictionDatabase block's database; with ``service_url`` the running service there
    is used instead (on the cluster it logs to the database its Secret names).
    """
    from bridgeai.deploy import local as local_serving
    from bridgeai.service.smoke import run_smoke

    logger = get_run_logger()
    if service_url is None:
        base = model_url.split("/v2/", 1)[0]
        service = local_serving.start_service(
            base, env={"BRIDGEAI_DATABASE_URL": database.database_url()}
        )
        service_url = service.base_url
        logger.info("prediction service at %s (log %s)", service_url, service.log_file)
    test = data_versions.load_split(data_version, "test", storage=storage, repository=repository)
    houses = test.head(rows).to_dicts()
    api_key = os.environ.get("BRIDGEAI_API_KEY")
    result = run_smoke(service_url, houses, api_key=api_key)
    logger.info(
        "%d predictions through %s from %s v%s: example house %.0f %s, MAPE %.1f%%",
        result.requests,
        service_url,
        result.model_name,
        result.model_version,
        result.example_prediction,
        result.unit,
        100 * (result.mape or 0.0),
    )
    return result


@task(cache_policy=NO_CACHE)
def wait_for_prediction_log(
    expected: int, start: datetime, database: PredictionDatabase, timeout: float = 30.0
) -> int:
    """Wait until the service's batched writer has stored ``expected`` rows since ``start``."""
    from bridgeai.service.prediction_log import read_window

    database_url = database.database_url()
    deadline = time.monotonic() + timeout
    while True:
        found = read_window(database_url, start, datetime.now(UTC) + timedelta(seconds=1)).height
        if found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


# -- the flow -------------------------------------------------------------------------------------
@flow(name="mlops-pipeline")
def mlops_pipeline(
    source: Annotated[
        str | None,
        Field(
            description="Housing CSV: http(s) URL, s3:// URI or local path. Empty: "
            "$BRIDGEAI_DATA_SOURCE, else the original's public HousingData.csv."
        ),
    ] = None,
    deploy_as_code: Annotated[
        bool,
        Field(
            description="The original's switch: chain on to image, deployment, smoke test and "
            "drift; off: stop after training."
        ),
    ] = True,
    force_deploy: Annotated[
        bool, Field(description="Build and deploy even when the new model was not promoted.")
    ] = False,
    target: Annotated[
        Literal["local", "kserve"],
        Field(
            description="local: model server and prediction service as processes here; kserve: "
            "the InferenceService on the cluster."
        ),
    ] = "local",
    build_image: Annotated[
        Literal["auto", "always", "never"],
        Field(
            description="auto: build and push when a Docker engine is reachable (required for "
            "kserve); always: fail without one; never: skip."
        ),
    ] = "auto",
    base_image: Annotated[
        str | None,
        Field(
            description="Base image for the model image. Empty: $BRIDGEAI_BASE_IMAGE, else the "
            "build flow's default (python:3.11-slim)."
        ),
    ] = None,
    smoke_rows: Annotated[
        int, Field(ge=0, le=1000, description="Held-out houses sent through the service.")
    ] = 20,
    service_url: Annotated[
        str | None,
        Field(
            description="kserve: base URL of the prediction service in the cluster. Empty with "
            "target local: started here."
        ),
    ] = None,
    drift_share_threshold: Annotated[
        float, Field(gt=0, le=1, description="Share of drifted columns that means drift.")
    ] = 0.5,
    storage_block: Annotated[str, Field(description="ObjectStorage block name.")] = "bridgeai",
    mlflow_block: Annotated[str, Field(description="MLflowServer block name.")] = "bridgeai",
    registry_block: Annotated[str, Field(description="ContainerRegistry block name.")] = "bridgeai",
    repository_block: Annotated[str, Field(description="DataRepository block name.")] = "bridgeai",
    database_block: Annotated[
        str, Field(description="PredictionDatabase block name (the prediction log).")
    ] = "bridgeai",
) -> PipelineResult:
    """Run every stage of the BridgeAI pipeline, each as a subflow.

    Ingest and version the data; train and gate the model; when it was promoted (or
    ``force_deploy``): build and push the model image if a Docker engine is reachable, deploy
    it, and send held-out houses through the prediction service; finally compare the data with
    the previous data version for drift (or, for the first version, the smoke traffic with the
    training data).

    Args:
        source: Housing CSV: http(s) URL, s3:// URI or local path. Empty: $BRIDGEAI_DATA_SOURCE,
            else the original's public HousingData.csv.
        deploy_as_code: The original's switch: chain on to image, deployment, smoke test and
            drift; off: stop after training.
        force_deploy: Build and deploy even when the new model was not promoted.
        target: local (processes here) or kserve (the InferenceService on the cluster).
        build_image: auto (when a Docker engine is reachable), always, or never.
        base_image: Base image for the model image (default $BRIDGEAI_BASE_IMAGE, else
            python:3.11-slim).
        smoke_rows: Held-out houses sent through the prediction service.
        service_url: kserve: base URL of the cluster's prediction service.
        drift_share_threshold: Share of drifted columns that means drift.
        storage_block: ObjectStorage block name.
        mlflow_block: MLflowServer block name.
        registry_block: ContainerRegistry block name.
        repository_block: DataRepository block name.
        database_block: PredictionDatabase block name (the prediction log drift reads).
    """
    logger = get_run_logger()
    began = time.monotonic()
    names = _Blocks(storage_block, mlflow_block, registry_block, repository_block, database_block)

    data = data_ingestion(
        source=source, storage_block=storage_block, repository_block=repository_block
    )
    logger.info("data: %s (%s)", data.tag, "new" if data.created else "unchanged content")
    training = model_training(
        data_version=data.tag,
        mlflow_block=mlflow_block,
        storage_block=storage_block,
        repository_block=repository_block,
    )
    result = PipelineResult(data=data, training=training)

    if not deploy_as_code:
        note = "deploy_as_code is off: stopped after training"
        result.image_note = result.deployment_note = result.smoke_note = note
    elif not (training.promoted or force_deploy):
        note = f"version {training.model_version} was not promoted: the champion keeps serving"
        result.image_note = result.deployment_note = result.smoke_note = note
    else:
        _deploy_stages(
            result,
            names,
            target=target,
            build_image=build_image,
            base_image=base_image,  # empty: build-model-image reads $BRIDGEAI_BASE_IMAGE
            smoke_rows=smoke_rows,
            service_url=service_url,
        )

    if deploy_as_code:
        _drift_stage(result, names, drift_share_threshold)
    result.seconds = round(time.monotonic() - began, 1)
    _publish(result, load_block(MLflowServer, mlflow_block))
    return result


@dataclass(frozen=True)
class _Blocks:
    """The block names the stages share, passed on to every subflow."""

    storage: str
    mlflow: str
    registry: str
    repository: str
    database: str


def _deploy_stages(
    result: PipelineResult,
    names: _Blocks,
    *,
    target: Literal["local", "kserve"],
    build_image: str,
    base_image: str | None,
    smoke_rows: int,
    service_url: str | None,
) -> None:
    logger = get_run_logger()
    version = result.training.model_version
    if build_image == "never":
        result.image_note = "build_image is never: skipped"
    else:
        unavailable = docker_engine()
        if unavailable is None or build_image == "always":
            model_uri = load_block(MLflowServer, names.mlflow).model_uri(version)
            image_args: dict[str, Any] = {"base_image": base_image} if base_image else {}
            result.image = build_model_image(
                model_uri=model_uri,
                mlflow_block=names.mlflow,
                registry_block=names.registry,
                **image_args,
            )
            result.image_note = f"built and pushed {result.image.reference}"
        else:
            result.image_note = "no Docker engine: skipped"
            logger.info("image: %s (%s)", result.image_note, unavailable.split(". ")[0])
    if target == "kserve" and result.image is None:
        raise ValueError(
            "target kserve needs the model image, but it was not built: "
            f"{result.image_note}. Point DOCKER_HOST at an engine or use target local"
        )
    result.deployment = deploy_model(
        target=target,
        model_version=version,
        image=result.image.reference if result.image else None,
        mlflow_block=names.mlflow,
        registry_block=names.registry,
        storage_block=names.storage,
    )
    if smoke_rows == 0:
        result.smoke_note = "smoke_rows is 0: skipped"
    elif target == "kserve" and service_url is None:
        result.smoke_note = "no service_url for the cluster's prediction service: skipped"
    else:
        result.smoke = smoke_predictions(
            result.deployment.url,
            result.data.tag,
            smoke_rows,
            service_url,
            load_block(ObjectStorage, names.storage),
            load_block(DataRepository, names.repository),
            load_block(PredictionDatabase, names.database),
        )


def _drift_stage(result: PipelineResult, names: _Blocks, threshold: float) -> None:
    repository = load_block(DataRepository, names.repository)
    previous = previous_data_version(result.data.tag, repository)
    if previous is not None:
        result.drift = drift_monitoring(
            reference=previous,
            current=result.data.tag,
            drift_share_threshold=threshold,
            storage_block=names.storage,
            mlflow_block=names.mlflow,
            repository_block=names.repository,
        )
    elif result.smoke is not None:
        # The smoke requests went through the prediction service (local, or the cluster's):
        # they are the first production traffic, logged where the PredictionDatabase points.
        start = datetime.fromtimestamp(result.smoke.started_at, UTC) - timedelta(seconds=1)
        wait_for_prediction_log(
            result.smoke.requests, start, load_block(PredictionDatabase, names.database)
        )
        result.drift = drift_monitoring(
            reference=result.data.tag,
            current="production",
            window_start=start,
            window_end=datetime.now(UTC) + timedelta(seconds=1),
            drift_share_threshold=threshold,
            storage_block=names.storage,
            mlflow_block=names.mlflow,
            repository_block=names.repository,
            database_block=names.database,
        )
    else:
        result.drift_note = "first data version and no production traffic: nothing to compare"


def _publish(result: PipelineResult, server: MLflowServer) -> None:
    """The stage summary (with links to the MLflow run, the model version and the drift
    report) and the model's feature-importance plot, on the pipeline run's own Artifacts tab."""
    create_markdown_artifact(key="mlops-pipeline", markdown=_summary(result, server))
    t = result.training
    plot = links.artifact_url(server, t.run_id, "evaluation/feature_importance.png")
    if plot:
        create_image_artifact(
            image_url=plot,
            key="pipeline-feature-importance",
            description=f"Feature importance of model version {t.model_version} (MLflow run "
            f"{t.run_id})",
        )


def _summary(result: PipelineResult, server: MLflowServer) -> str:
    t = result.training
    lines = ["# BridgeAI pipeline", ""]
    lines += [f"- **{stage}**: {outcome}" for stage, outcome in result.outcomes()]
    lines += [
        "",
        f"- MLflow run: {links.md(t.run_id, links.run_url(server, t.run_id))}",
        "- Model version: "
        + links.md(
            f"{server.registered_model} v{t.model_version}",
            links.model_version_url(server, server.registered_model, t.model_version),
        ),
    ]
    drift = result.drift
    if drift is not None and drift.report_url:
        expires = drift.report_url_expires_at
        until = f" (link expires {expires:%Y-%m-%d %H:%M} UTC)" if expires else ""
        lines.append(f"- Drift report: [{drift.report_uri}]({drift.report_url}){until}")
    plot = links.artifact_url(server, t.run_id, "evaluation/feature_importance.png")
    if plot:
        lines += ["", f"![feature importance]({plot})"]
    return "\n".join(lines)


if __name__ == "__main__":
    mlops_pipeline()
