"""The lineage of a prediction: request -> model version -> image -> data version -> source.

``bridgeai lineage REQUEST_ID`` (and ``--model-version N``) follows the links the pipeline
records as it goes:

* the prediction log (``prediction_logs``) holds the request: time, inputs, prediction, status,
  and the registered model name and version that answered;
* the model version's tags (:mod:`bridgeai.training.tracking`, the champion gate) hold its data
  version, DVC md5s, data-repository commit, code git sha and training flow run, the gate's
  decision and when it became champion; ``build-model-image`` adds the image it was baked into
  (``image``, ``image_digest``, ``image_flow_run_id``) and ``deploy-model`` where it was
  deployed (``deployment_*``);
* the data repository holds the version's tag, commit, md5s, source location and checksum, and
  the ingestion flow run that made it (``dataset.json``).

Each flow run is looked up in the Prefect API when one is configured, and every object gets a UI
link when its server (Prefect, MLflow over HTTP) is running. The saved blocks are resolved here,
as everywhere in :mod:`bridgeai.ops`; the library below is given plain values.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from bridgeai import schema
from bridgeai.model.errors import BridgeAIError, NotFound

METADATA_FILE = "dataset.json"


class LineageError(BridgeAIError):
    """A link of the chain cannot be read; the message says which and why."""


class RequestNotFound(NotFound):
    """No request with that id is in the prediction log."""


class LoggedRequest(BaseModel):
    """One request as the prediction service logged it (a batch has one row per house)."""

    request_id: str
    created_at: datetime
    status: int
    latency_ms: float
    model_name: str
    model_version: str | None
    rows: list[dict[str, Any]] = Field(description="batch_index, inputs (12 features), prediction")
    unit: str
    database: str = Field(description="The prediction log's URL, password hidden.")


class FlowRunLink(BaseModel):
    """A flow run that made one link of the chain."""

    step: str = Field(description="data-ingestion, model-training, build-model-image, ...")
    flow_run_id: str
    name: str | None = None
    state: str | None = None
    url: str | None = None


class ModelVersionLink(BaseModel):
    name: str
    version: str
    run_id: str | None
    created_at: datetime | None
    aliases: list[str]
    champion_since: str | None
    gate_decision: str | None
    gate_reason: str | None
    metrics: dict[str, float] = Field(description="The training run's test_* metrics.")
    git_sha: str | None
    url: str | None = None
    run_url: str | None = None


class ImageLink(BaseModel):
    reference: str
    digest: str | None
    built_at: str | None


class DeploymentLink(BaseModel):
    target: str
    image: str | None
    deployed_at: str | None


class DataLink(BaseModel):
    tag: str
    commit: str
    md5: dict[str, str]
    rows: dict[str, int]
    created_at: datetime | None
    source: str
    checksum: str
    repository: str = Field(description="The data repository: its remote or local folder.")
    tag_exists: bool = Field(description="The tag is in the data repository.")
    mismatch: list[str] = Field(
        default_factory=list, description="Where the model's tags disagree with the repository."
    )


class Lineage(BaseModel):
    """The whole chain; links that were never recorded are None (with a note)."""

    request: LoggedRequest | None = None
    model: ModelVersionLink
    image: ImageLink | None = None
    deployment: DeploymentLink | None = None
    data: DataLink | None = None
    flow_runs: list[FlowRunLink] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


# -- the request ---------------------------------------------------------------------------------
def read_request(request_id: str, database_url: str) -> LoggedRequest:
    """The logged rows of ``request_id``.

    Raises:
        RequestNotFound: no such request in this log.
        PredictionLogError: the database cannot be read (or holds no prediction log).
    """
    import sqlalchemy as sa

    from bridgeai.service import prediction_log
    from bridgeai.service.models import UNIT

    engine = prediction_log.create_log_engine(database_url)
    table = prediction_log.prediction_logs
    where = prediction_log.redacted(engine.url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(prediction_log.TABLE):
                raise prediction_log.PredictionLogError(
                    f"{where} has no {prediction_log.TABLE} table: is BRIDGEAI_DATABASE_URL the "
                    "prediction service's database?"
                )
            rows = (
                connection.execute(
                    sa.select(table)
                    .where(table.c.request_id == request_id)
                    .order_by(table.c.batch_index)
                )
                .mappings()
                .all()
            )
    except sa.exc.OperationalError as exc:
        raise prediction_log.PredictionLogError(
            f"cannot read the prediction log at {where}: {type(exc.orig).__name__}", transient=True
        ) from None
    finally:
        engine.dispose()
    if not rows:
        raise RequestNotFound(
            f"no request {request_id!r} in the prediction log at {where} (the id is the "
            "X-Request-ID header / request_id field of the service's answer; check "
            "BRIDGEAI_DATABASE_URL points at the service's database)"
        )
    first = rows[0]
    return LoggedRequest(
        request_id=request_id,
        created_at=first["created_at"],
        status=int(first["status"]),
        latency_ms=float(first["latency_ms"]),
        model_name=first["model_name"],
        model_version=first["model_version"],
        rows=[
            {
                "batch_index": int(r["batch_index"]),
                "inputs": {name: r[name] for name in schema.FEATURES},
                "prediction": r["prediction"],
            }
            for r in rows
        ],
        unit=UNIT,
        database=where,
    )


# -- the model version and what its tags point at ------------------------------------------------
def model_link(
    client: Any, name: str, version: str, tracking_uri: str
) -> tuple[ModelVersionLink, dict[str, str]]:
    """The registered version, its training metrics, and its tags.

    Raises:
        LineageError: the version does not exist in this registry.
    """
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, version)
    except MlflowException as exc:
        raise LineageError(
            f"model version {name} v{version} is not in the registry at {tracking_uri}: "
            f"{exc.message}",
            status_code=404,
        ) from None
    tags = dict(mv.tags or {})
    metrics: dict[str, float] = {}
    run_url = None
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else None
    if mv.run_id:
        try:
            run = client.get_run(mv.run_id)
            metrics = {k: float(v) for k, v in run.data.metrics.items() if k.startswith("test_")}
            if base:
                run_url = f"{base}/#/experiments/{run.info.experiment_id}/runs/{mv.run_id}"
        except MlflowException:
            pass
    created = (
        datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC) if mv.creation_timestamp else None
    )
    link = ModelVersionLink(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id,
        created_at=created,
        aliases=list(getattr(mv, "aliases", []) or []),
        champion_since=tags.get("champion_since"),
        gate_decision=tags.get("gate_decision"),
        gate_reason=tags.get("gate_reason"),
        metrics=metrics,
        git_sha=tags.get("git_sha"),
        url=f"{base}/#/models/{name}/versions/{mv.version}" if base else None,
        run_url=run_url,
    )
    return link, tags


def data_link(
    repository: Any, tags: dict[str, str]
) -> tuple[DataLink | None, str | None, list[str]]:
    """The data version the model was trained on, its ingestion flow run id, and notes."""
    from bridgeai.data import versions
    from bridgeai.data.dvc_store import DataRepoError

    tag = tags.get("data_version")
    if not tag:
        return (
            None,
            None,
            ["the model version has no data_version tag (not made by model-training)"],
        )
    repo = versions.open_repository(repository)
    try:
        described = versions.describe(tag, repository=repo)
    except DataRepoError as exc:
        link = DataLink(
            tag=tag,
            commit=tags.get("data_commit", ""),
            md5={s: tags.get(f"dvc_md5_{s}", "") for s in versions.SPLITS},
            rows={},
            created_at=None,
            source="",
            checksum="",
            repository=repo.location,
            tag_exists=False,
        )
        return link, None, [f"data version {tag}: {exc}"]
    mismatch = [
        f"dvc_md5_{s}"
        for s in versions.SPLITS
        if tags.get(f"dvc_md5_{s}") not in (None, described.md5[s])
    ]
    if tags.get("data_commit") not in (None, described.commit):
        mismatch.append("data_commit")
    ingested_by = None
    with repo.lock(shared=True):
        raw = repo.read_files(described.commit, [METADATA_FILE]).get(METADATA_FILE)
    if raw:
        ingested_by = json.loads(raw).get("prefect_flow_run_id")
    link = DataLink(
        tag=described.tag,
        commit=described.commit,
        md5=described.md5,
        rows=described.rows,
        created_at=described.created_at,
        source=described.source,
        checksum=described.checksum,
        repository=repo.location,
        tag_exists=True,
        mismatch=mismatch,
    )
    return link, ingested_by, []


def flow_run_links(steps: list[tuple[str, str | None]]) -> list[FlowRunLink]:
    """Each recorded flow run, with its name, state and UI link when a Prefect API is set."""
    links = [
        FlowRunLink(step=step, flow_run_id=run_id)
        for step, run_id in steps
        if run_id and run_id != "unknown"
    ]
    from blocks import prefect_server_configured

    if not links or not prefect_server_configured():
        return links
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import get_current_settings

    ui = get_current_settings().ui_url
    with get_client(sync_client=True) as client:
        for link in links:
            try:
                run = client.read_flow_run(UUID(link.flow_run_id))
            except (ObjectNotFound, ValueError):
                link.state = "not found in this Prefect API"
                continue
            link.name = run.name
            link.state = run.state.type.value if run.state else None
            if ui:
                link.url = f"{str(ui).rstrip('/')}/runs/flow-run/{run.id}"
    return links


# -- the chain ------------------------------------------------------------------------------------
def model_version_lineage(
    version: str,
    *,
    model_name: str | None = None,
    mlflow_block: str = "bridgeai",
    repository_block: str = "bridgeai",
) -> Lineage:
    """The chain behind registered model version ``version`` (no request)."""
    from blocks import DataRepository, MLflowServer, load_block
    from flows import build_image as built_by
    from flows import deploy as deployed_by

    server = load_block(MLflowServer, mlflow_block)
    name = model_name or server.registered_model
    model, tags = model_link(server.client(), name, version, server.resolved_tracking_uri())
    image = None
    if tags.get(built_by.IMAGE_TAG):
        image = ImageLink(
            reference=tags[built_by.IMAGE_TAG],
            digest=tags.get(built_by.IMAGE_DIGEST_TAG) or None,
            built_at=tags.get(built_by.IMAGE_BUILT_AT_TAG),
        )
    target_tag, image_tag, run_tag, at_tag = deployed_by.DEPLOYMENT_TAGS
    deployment = None
    if tags.get(target_tag):
        deployment = DeploymentLink(
            target=tags[target_tag], image=tags.get(image_tag) or None, deployed_at=tags.get(at_tag)
        )
    notes = []
    if image is None:
        notes.append("no image was built for this version (no Docker engine, or built elsewhere)")
    data, ingested_by, data_notes = data_link(load_block(DataRepository, repository_block), tags)
    notes += data_notes
    runs = flow_run_links(
        [
            ("data-ingestion", ingested_by),
            ("model-training", tags.get("prefect_flow_run_id")),
            ("build-model-image", tags.get(built_by.IMAGE_FLOW_RUN_TAG)),
            ("deploy-model", tags.get(run_tag)),
        ]
    )
    return Lineage(
        model=model, image=image, deployment=deployment, data=data, flow_runs=runs, notes=notes
    )


def request_lineage(
    request_id: str,
    *,
    database_url: str | None = None,
    database_secret: str | None = None,
    mlflow_block: str = "bridgeai",
    repository_block: str = "bridgeai",
) -> Lineage:
    """The chain behind one logged prediction.

    Args:
        request_id: the ``request_id`` the prediction service answered with.
        database_url: the prediction log (default ``$BRIDGEAI_DATABASE_URL``, else the embedded
            SQLite log).
        database_secret: a Prefect Secret block holding that URL instead (it has a password).

    Raises:
        RequestNotFound: no such request in the log.
        LineageError: the model version it names is not in the registry.
    """
    import os

    from bridgeai.service import prediction_log

    if database_secret and not database_url:
        from prefect.blocks.system import Secret

        secret = Secret.load(database_secret, _sync=True)  # type: ignore[call-arg]
        database_url = str(secret.get())  # type: ignore[union-attr]
    url = (
        database_url
        or os.environ.get("BRIDGEAI_DATABASE_URL")
        or prediction_log.default_database_url()
    )
    request = read_request(request_id, url)
    if request.model_version is None:
        raise LineageError(
            f"request {request_id} failed with status {request.status} before any model "
            "answered: it has no model version to follow",
            status_code=404,
        )
    chain = model_version_lineage(
        request.model_version,
        model_name=request.model_name,
        mlflow_block=mlflow_block,
        repository_block=repository_block,
    )
    return chain.model_copy(update={"request": request})
