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
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from blocks import ContainerRegistry, MLflowServer, ObjectStorage, load_block
from bridgeai.model import source
from flows._tasks import IO_RETRIES

DEFAULT_NAMESPACE = "bridgeai"


class DeployResult(BaseModel):
    """What was deployed where, and the URL that serves it."""

    target: Literal["local", "kserve"]
    model_name: str
    model_version: str
    model_uri: str
    url: str = Field(description="OIP v2 infer endpoint of the deployed model.")
    image: str | None = Field(default=None, description="Image by digest (kserve only).")
    namespace: str | None = None
    action: str = Field(description="started | created | updated | unchanged")
    seconds: float = 0.0


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
    api = load_api_client(context=kube_context, config_file=kube_config)
    try:
        outcome = deploy(
            api,
            desired,
            docker_config_json=registry.docker_config_json(),
            timeout=timeout,
            log=logger.info,
        )
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

    Rollback: run it with ``model_version`` set to an earlier version.

    Args:
        target: local (a model-server process here) or kserve (the Kubernetes cluster).
        model_version: Registered model version; empty = the champion; older = rollback.
        image: kserve: image by digest (repo@sha256:...) from build-model-image; empty = the
            version's tag in the registry, resolved to its digest.
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
    result.seconds = round(time.monotonic() - started, 2)
    create_table_artifact(
        key="model-deployment",
        table=[
            {"field": k, "value": "" if v is None else str(v)}
            for k, v in result.model_dump().items()
        ],
        description=f"{result.model_name} v{version} on {target}",
    )
    logger.info("%s v%s serving at %s (%s)", result.model_name, version, result.url, result.action)
    return result


if __name__ == "__main__":
    deploy_model()
