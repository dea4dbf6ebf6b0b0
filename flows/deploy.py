"""Flow ``deploy-model``: serve a registered model version, locally or on KServe.

The original's fourth stage (``deploy_model_dag``) was a manual ``kubectl apply``. Here one flow
covers both targets and rollback is a parameter:

* ``target="local"`` (re)starts ``bridgeai serve-model`` for ``models:/<name>/<version>`` as a
  child process, waits for ``/v2/health/ready`` and only then stops the previous server.
* ``target="kserve"`` renders the ``house-price`` InferenceService with the image *by digest*,
  creates or patches it, and waits until KServe reports it ready on that image. On a timeout the
  previous spec is restored (the previous revision keeps serving) and the run fails with the
  conditions, events and pod reasons, also kept as the ``deployment-failure`` artifact.

``model_version=None`` deploys the ``champion``; an earlier version number is a rollback.

Closing the loop (the ``deploy-model`` automation on ``bridgeai.model.promoted``): with
``build_image="auto"`` the image is built and pushed first (a ``build-model-image`` subflow) when
a Docker engine is reachable; ``require_champion`` skips a version a later promotion has already
superseded; ``smoke`` sends the original's example house through the prediction service and
fails unless it answers from the deployed ``model_version``. Rollouts on one target are
serialised by a Prefect global concurrency limit (``bridgeai-deploy-<target>``), and the
deployment is stamped on the model version (tags ``deployment_*``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from blocks import ContainerRegistry, MLflowServer, ObjectStorage, load_block
from bridgeai.model import source
from bridgeai.service.smoke import SmokeResult
from flows import _links as links
from flows._checks import docker_unavailable, rollout_percent, smoke_after_deploy
from flows._locks import deploy_lock, exclusive
from flows._progress import Progress
from flows._tasks import IO_RETRIES

DEFAULT_NAMESPACE = "bridgeai"
#: Model-version tags recording where the version was last deployed (lineage).
DEPLOYMENT_TAGS = ("deployment_target", "deployment_image", "deployment_flow_run_id", "deployed_at")


class DeployResult(BaseModel):
    """What was deployed where, and the URL that serves it."""

    target: Literal["local", "kserve"]
    model_name: str
    model_version: str
    model_uri: str
    url: str = Field(description="OIP v2 infer endpoint of the deployed model.")
    image: str | None = Field(default=None, description="Image by digest (kserve only).")
    namespace: str | None = None
    action: str = Field(description="started | created | updated | unchanged | superseded")
    seconds: float = 0.0
    built_image: str | None = Field(
        default=None, description="The image built for this version by this run (by digest)."
    )
    smoke: SmokeResult | None = Field(
        default=None, description="The smoke prediction through the prediction service."
    )
    note: str = Field(default="", description="Why a step was skipped.")


@task(**IO_RETRIES)
def resolve_model_version(server: MLflowServer, model_version: str | None) -> str:
    """The registered version to deploy: the champion when none is given; checks it exists."""
    found = source.resolve_version(
        server.client(), server.registered_model, alias=server.alias, version=model_version
    )
    return str(found.version)


@task(**IO_RETRIES)
def resolve_image(registry: ContainerRegistry, model_version: str, image: str | None) -> str:
    """The image by digest: ``image`` if it has one, else the version's tag looked up."""
    from bridgeai.deploy.digests import resolve_digest
    from bridgeai.deploy.kserve import require_digest

    if image and "@sha256:" in image:
        return require_digest(image)
    reference = image or f"{registry.repository()}:{model_version}"
    auth = registry.auth_config() or {}
    return resolve_digest(
        reference,
        username=auth.get("username"),
        password=auth.get("password"),
        insecure=registry.insecure,
        api_host=registry.api_server,
    )


@task
def start_local_server(
    model_uri: str,
    model_version: str,
    server: MLflowServer,
    storage: ObjectStorage,
    port: int | None,
    timeout: float,
) -> dict[str, Any]:
    """Start the new local server, wait until ready, then stop the previous one.

    The server's environment (tracking URI, S3 credentials) is built here from the blocks.
    """
    from bridgeai.deploy import local as local_serving

    env = {**server.env(), **storage.mlflow_s3_env()}
    server = local_serving.start(
        model_uri, model_version=model_version, port=port, env=env, timeout=timeout
    )
    return {"url": server.infer_url, "pid": server.pid, "port": server.port}


@task
def apply_inference_service(
    image: str,
    model_version: str,
    namespace: str,
    registry: ContainerRegistry,
    timeout: float,
    kube_context: str | None,
    kube_config: str | None,
    scaling: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create or patch the InferenceService and wait until it serves ``image``.

    ``scaling``: ``min_replicas``, ``max_replicas``, ``scale_metric``, ``scale_target`` for
    :func:`bridgeai.deploy.kserve.render_inference_service` (absent: one replica).
    Not retried: a timeout already waited ``timeout`` seconds and restored the previous spec.
    """
    from bridgeai.deploy.kserve import render_inference_service
    from bridgeai.deploy.rollout import DeploymentFailed, deploy, load_api_client

    logger = get_run_logger()
    desired = render_inference_service(
        image, namespace=namespace, model_version=model_version, **(scaling or {})
    )
    progress = Progress("model-rollout", f"Rolling out model version {model_version}")

    def log(message: str) -> None:
        logger.info(message)
        progress.update(rollout_percent(message), message[:200])

    api = load_api_client(context=kube_context, config_file=kube_config)
    try:
        outcome = deploy(
            api,
            desired,
            docker_config_json=registry.docker_config_json(),
            timeout=timeout,
            log=log,
        )
        progress.done(f"house-price serves model version {model_version} ({outcome.action})")
    except DeploymentFailed as exc:
        create_markdown_artifact(
            key="deployment-failure",
            markdown=f"# house-price did not become ready\n\n```\n{exc}\n```\n",
            description=f"KServe deployment of model version {model_version} failed",
        )
        raise
    finally:
        api.close()
    return {"url": outcome.url, "action": outcome.action, "image": outcome.image}


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def champion_version(server: MLflowServer) -> str | None:
    """The version holding the serving alias now, or None."""
    found = source.find_version(server.client(), server.registered_model, server.alias)
    return None if found is None else str(found.version)


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def stamp_deployment(server: MLflowServer, result: DeployResult) -> None:
    """Record the deployment on the model version (target, image, flow run, time)."""
    target = f"kserve/{result.namespace}" if result.target == "kserve" else "local"
    values = (target, result.image or "", flow_run.get_id() or "", _now())
    client = server.client()
    for key, value in zip(DEPLOYMENT_TAGS, values, strict=True):
        client.set_model_version_tag(result.model_name, result.model_version, key, value)


@flow(name="deploy-model", log_prints=False)
def deploy_model(
    target: Annotated[
        Literal["local", "kserve"],
        Field(description="local: a model-server process here; kserve: the Kubernetes cluster."),
    ] = "local",
    model_version: Annotated[
        str | None,
        Field(
            description="Registered model version; empty = the champion. An older one = rollback."
        ),
    ] = None,
    image: Annotated[
        str | None,
        Field(
            description="kserve: image by digest (repo@sha256:...) from build-model-image; empty "
            "= the version's tag in the registry, resolved to its digest."
        ),
    ] = None,
    build_image: Annotated[
        Literal["auto", "always", "never"],
        Field(
            description="Build and push the model image first (a build-model-image subflow): "
            "auto when a Docker engine is reachable, always (fail without one), never."
        ),
    ] = "never",
    base_image: Annotated[
        str | None,
        Field(
            description="Base image for that build. Empty: $BRIDGEAI_BASE_IMAGE, else the "
            "build flow's default."
        ),
    ] = None,
    require_champion: Annotated[
        bool,
        Field(
            description="Deploy only if model_version still holds the serving alias when this "
            "run gets the target's lock; otherwise skip it (a later promotion superseded it)."
        ),
    ] = False,
    smoke: Annotated[
        bool,
        Field(
            description="Then send the original's example house through the prediction service "
            "and fail unless it answers from the deployed version."
        ),
    ] = False,
    service_url: Annotated[
        str | None,
        Field(
            description="Prediction service for the smoke prediction. Empty: local target: "
            "(re)started here in front of the new model server; kserve: no smoke prediction."
        ),
    ] = None,
    namespace: Annotated[
        str, Field(description="kserve: namespace of the InferenceService.")
    ] = DEFAULT_NAMESPACE,
    timeout_seconds: Annotated[
        float, Field(gt=0, le=3600, description="How long to wait for readiness.")
    ] = 600.0,
    port: Annotated[
        int | None,
        Field(ge=1, le=65535, description="local: fixed port; empty = a free one (no downtime)."),
    ] = None,
    kube_context: Annotated[
        str | None, Field(description="kserve: kubeconfig context; empty = in-cluster or current.")
    ] = None,
    kube_config: Annotated[
        str | None, Field(description="kserve: kubeconfig path; empty = in-cluster or default.")
    ] = None,
    min_replicas: Annotated[
        int, Field(ge=1, description="kserve: fewest predictor replicas (RawDeployment: >= 1).")
    ] = 1,
    max_replicas: Annotated[
        int,
        Field(
            ge=1,
            description="kserve: most predictor replicas; above min_replicas KServe autoscales "
            "the predictor with a Kubernetes HPA.",
        ),
    ] = 1,
    scale_metric: Annotated[
        Literal["cpu", "memory"],
        Field(description="kserve: what the HPA scales on (when max_replicas > min_replicas)."),
    ] = "cpu",
    scale_target: Annotated[
        int,
        Field(
            ge=1,
            le=100,
            description="kserve: target average utilisation of scale_metric, percent of the "
            "container's requests.",
        ),
    ] = 80,
    mlflow_block: Annotated[str, Field(description="MLflowServer block name.")] = "bridgeai",
    registry_block: Annotated[
        str, Field(description="ContainerRegistry block name (kserve pull secret).")
    ] = "bridgeai",
    storage_block: Annotated[
        str, Field(description="ObjectStorage block name (local: where MLflow artifacts live).")
    ] = "bridgeai",
) -> DeployResult:
    """Deploy a registered model version locally or on KServe, and return its v2 URL.

    Rollback: run it with ``model_version`` set to an earlier version. Rollouts on one target
    are serialised (the bridgeai-deploy-<target> Prefect global concurrency limit), and the
    deployment is recorded on the model version (deployment_* tags).

    Args:
        target: local (a model-server process here) or kserve (the Kubernetes cluster).
        model_version: Registered model version; empty = the champion; older = rollback.
        image: kserve: image by digest (repo@sha256:...) from build-model-image; empty = the
            version's tag in the registry, resolved to its digest.
        build_image: Build and push the model image first (a build-model-image subflow): auto
            when a Docker engine is reachable, always (fail without one), never.
        base_image: Base image for that build. Empty: $BRIDGEAI_BASE_IMAGE, else the build
            flow's default.
        require_champion: Deploy only if model_version still holds the serving alias when this
            run gets the target's lock; otherwise skip (a later promotion superseded it).
        smoke: Then send the original's example house through the prediction service and fail
            unless it answers from the deployed version.
        service_url: Prediction service for the smoke prediction. Empty: local target:
            (re)started here in front of the new model server; kserve: none.
        namespace: kserve: namespace of the InferenceService.
        timeout_seconds: How long to wait for readiness.
        port: local: fixed port; empty = a free one (no downtime on a swap).
        kube_context: kserve: kubeconfig context; empty = in-cluster or current.
        kube_config: kserve: kubeconfig path; empty = in-cluster or default.
        min_replicas: kserve: fewest predictor replicas (RawDeployment: at least 1).
        max_replicas: kserve: most predictor replicas; above min_replicas KServe autoscales the
            predictor with a Kubernetes HPA (see docs/scaling.md).
        scale_metric: kserve: what the HPA scales on, cpu or memory.
        scale_target: kserve: target average utilisation of scale_metric, percent of the
            container's requests.
        mlflow_block: MLflowServer block name.
        registry_block: ContainerRegistry block name (kserve pull secret).
        storage_block: ObjectStorage block name (local: where MLflow artifacts live).

    Returns:
        What was deployed where, and the v2 infer URL that serves it.
    """
    logger = get_run_logger()
    started = time.monotonic()
    mlflow_server = load_block(MLflowServer, mlflow_block)
    registry = load_block(ContainerRegistry, registry_block)
    storage = load_block(ObjectStorage, storage_block)
    version = resolve_model_version(mlflow_server, model_version)
    model_uri = mlflow_server.model_uri(version)
    superseded = _superseded(mlflow_server, version) if require_champion else None
    if superseded is not None:
        return _skip(mlflow_server, target, version, model_uri, superseded, started)

    built_image = None
    if build_image != "never" and not (image and "@sha256:" in image):
        built_image, note = _build(
            mlflow_server, model_uri, build_image, base_image, mlflow_block, registry_block
        )
        image = built_image or image
        if note:
            logger.info("image: %s", note)

    with exclusive(deploy_lock(target, namespace)):
        superseded = _superseded(mlflow_server, version) if require_champion else None
        if superseded is not None:
            return _skip(mlflow_server, target, version, model_uri, superseded, started)
        logger.info("deploying %s (version %s) to %s", model_uri, version, target)
        if target == "local":
            started_server = start_local_server(
                model_uri, version, mlflow_server, storage, port, timeout_seconds
            )
            result = DeployResult(
                target="local",
                model_name=mlflow_server.registered_model,
                model_version=version,
                model_uri=model_uri,
                url=started_server["url"],
                action="started",
            )
        else:
            digest_ref = resolve_image(registry, version, image)
            applied = apply_inference_service(
                digest_ref,
                version,
                namespace,
                registry,
                timeout_seconds,
                kube_context,
                kube_config,
                scaling={
                    "min_replicas": min_replicas,
                    "max_replicas": max_replicas,
                    "scale_metric": scale_metric,
                    "scale_target": scale_target,
                },
            )
            result = DeployResult(
                target="kserve",
                model_name=mlflow_server.registered_model,
                model_version=version,
                model_uri=model_uri,
                url=applied["url"],
                image=applied["image"],
                namespace=namespace,
                action=applied["action"],
            )
        result.built_image = built_image
        stamp_deployment(mlflow_server, result)
        result.smoke, result.note = smoke_after_deploy(
            result.target, result.url, result.model_version, smoke, service_url
        )
    result.seconds = round(time.monotonic() - started, 2)
    _publish(result, mlflow_server)
    logger.info("%s v%s serving at %s (%s)", result.model_name, version, result.url, result.action)
    return result


def _run_link(server: MLflowServer, result: DeployResult) -> str | None:
    """The training run behind the deployed version (a link is not worth failing a rollout)."""
    if links.mlflow_ui(server) is None:
        return None
    try:
        run_id = server.client().get_model_version(result.model_name, result.model_version).run_id
        return links.run_url(server, run_id)
    except Exception as exc:
        get_run_logger().warning("no MLflow run link for the deployment artifact: %s", exc)
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _superseded(server: MLflowServer, version: str) -> str | None:
    """Why ``version`` is no longer the one to deploy (None while it holds the alias)."""
    current = champion_version(server)
    if current == version:
        return None
    holder = f"version {current}" if current else "no version"
    return f"version {version} no longer holds {server.alias!r} ({holder} does): superseded"


def _skip(
    server: MLflowServer,
    target: Literal["local", "kserve"],
    version: str,
    model_uri: str,
    why: str,
    started: float,
) -> DeployResult:
    get_run_logger().warning("Not deploying: %s", why)
    result = DeployResult(
        target=target,
        model_name=server.registered_model,
        model_version=version,
        model_uri=model_uri,
        url="",
        action="superseded",
        note=why,
        seconds=round(time.monotonic() - started, 2),
    )
    _publish(result, server)
    return result


def _build(
    server: MLflowServer,
    model_uri: str,
    mode: str,
    base_image: str | None,
    mlflow_block: str,
    registry_block: str,
) -> tuple[str | None, str]:
    """Build and push the image as a subflow; return it by digest, or None and why not."""
    from flows.build_image import build_model_image

    unavailable = docker_unavailable()
    if unavailable is not None and mode == "auto":
        return None, "no Docker engine: skipped (" + unavailable.split(". ")[0] + ")"
    built = build_model_image(  # an empty base image: $BRIDGEAI_BASE_IMAGE, else its default
        model_uri=model_uri,
        base_image=base_image,
        mlflow_block=mlflow_block,
        registry_block=registry_block,
    )
    return built.reference, ""


def _publish(result: DeployResult, server: MLflowServer) -> None:
    rows: dict[str, Any] = result.model_dump(exclude={"smoke"})
    rows["model version page"] = links.model_version_url(
        server, result.model_name, result.model_version
    )
    rows["mlflow run"] = _run_link(server, result)
    if result.smoke is not None:
        rows["smoke"] = (
            f"{result.smoke.example_prediction:,.0f} {result.smoke.unit} from "
            f"v{result.smoke.model_version} via {result.smoke.service_url}"
        )
    create_table_artifact(
        key="model-deployment",
        table=[{"field": k, "value": "" if v is None else str(v)} for k, v in rows.items()],
        description=f"{result.model_name} v{result.model_version} on {result.target}: "
        f"{result.action}",
    )


if __name__ == "__main__":
    deploy_model()
