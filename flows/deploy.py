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
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from blocks import ContainerRegistry, MLflowServer, ObjectStorage, load_block
from flows._tasks import io_retries

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


def _transient(exc: BaseException) -> bool:
    """Network blips and server-side errors retry; everything a user can fix does not."""
    from bridgeai.deploy.digests import DigestLookupError

    if isinstance(exc, DigestLookupError):
        return "unreachable" in str(exc)
    if isinstance(exc, OSError):  # connection refused/reset, timeouts
        return True
    mlflow_error = type(exc).__name__ in ("MlflowException", "RestException")
    return mlflow_error and "RESOURCE_DOES_NOT_EXIST" not in str(exc)


_IO_RETRIES = io_retries(_transient)


@task(**_IO_RETRIES)
def resolve_model_version(mlflow_block: str, model_version: str | None) -> str:
    """The registered version to deploy: the champion when none is given; checks it exists."""
    server = load_block(MLflowServer, mlflow_block)
    client = server.client()
    name = server.registered_model
    if model_version is None:
        try:
            found = client.get_model_version_by_alias(name, server.alias)
        except Exception as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
                raise ValueError(
                    f"model {name!r} has no {server.alias!r} alias yet: run model-training "
                    "(it sets the alias when the metrics pass), or pass model_version"
                ) from None
            raise
        return str(found.version)
    try:
        return str(client.get_model_version(name, str(model_version)).version)
    except Exception as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
            raise ValueError(
                f"model {name!r} has no version {model_version}: list versions in the MLflow UI "
                f"or with MlflowClient().search_model_versions(\"name='{name}'\")"
            ) from None
        raise


@task(**_IO_RETRIES)
def resolve_image(registry_block: str, model_version: str, image: str | None) -> str:
    """The image by digest: ``image`` if it has one, else the version's tag looked up."""
    from bridgeai.deploy.digests import resolve_digest
    from bridgeai.deploy.kserve import require_digest

    if image and "@sha256:" in image:
        return require_digest(image)
    registry = load_block(ContainerRegistry, registry_block)
    reference = image or f"{registry.repository()}:{model_version}"
    auth = registry.auth_config() or {}
    return resolve_digest(
        reference,
        username=auth.get("username"),
        password=auth.get("password"),
        insecure=registry.insecure,
    )


@task
def start_local_server(
    model_uri: str,
    model_version: str,
    mlflow_block: str,
    storage_block: str,
    port: int | None,
    timeout: float,
) -> dict[str, Any]:
    """Start the new local server, wait until ready, then stop the previous one.

    The server's environment (tracking URI, S3 credentials) is built here from the blocks, so no
    credential ever travels as a task input.
    """
    from bridgeai.deploy import local as local_serving

    mlflow_server = load_block(MLflowServer, mlflow_block)
    storage = load_block(ObjectStorage, storage_block)
    env = {**mlflow_server.env(), **storage.mlflow_s3_env()}
    server = local_serving.start(
        model_uri, model_version=model_version, port=port, env=env, timeout=timeout
    )
    return {"url": server.infer_url, "pid": server.pid, "port": server.port}


@task
def apply_inference_service(
    image: str,
    model_version: str,
    namespace: str,
    registry_block: str,
    timeout: float,
    kube_context: str | None,
    kube_config: str | None,
) -> dict[str, Any]:
    """Create or patch the InferenceService and wait until it serves ``image``.

    Not retried: a timeout already waited ``timeout`` seconds and restored the previous spec.
    """
    from bridgeai.deploy.kserve import render_inference_service
    from bridgeai.deploy.rollout import DeploymentFailed, deploy, load_api_client

    logger = get_run_logger()
    registry = load_block(ContainerRegistry, registry_block)
    desired = render_inference_service(image, namespace=namespace, model_version=model_version)
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
    target: Literal["local", "kserve"] = Field(
        default="local",
        description="local: a model-server process here; kserve: the Kind/Kubernetes cluster.",
    ),
    model_version: str | None = Field(
        default=None,
        description="Registered model version; empty = the champion. An older one = rollback.",
    ),
    image: str | None = Field(
        default=None,
        description="kserve: image by digest (repo@sha256:...) from build-model-image; empty = "
        "the version's tag in the registry, resolved to its digest.",
    ),
    namespace: str = Field(
        default=DEFAULT_NAMESPACE, description="kserve: namespace of the InferenceService."
    ),
    timeout_seconds: float = Field(
        default=600.0, gt=0, le=3600, description="How long to wait for readiness."
    ),
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="local: fixed port; empty = a free one (no downtime on a swap).",
    ),
    kube_context: str | None = Field(
        default=None, description="kserve: kubeconfig context; empty = in-cluster or current."
    ),
    kube_config: str | None = Field(
        default=None, description="kserve: kubeconfig path; empty = in-cluster or default."
    ),
    mlflow_block: str = Field(default="bridgeai", description="MLflowServer block name."),
    registry_block: str = Field(
        default="bridgeai", description="ContainerRegistry block name (kserve pull secret)."
    ),
    storage_block: str = Field(
        default="bridgeai",
        description="ObjectStorage block name (local: where MLflow artifacts live).",
    ),
) -> DeployResult:
    """Deploy a registered model version locally or on KServe, and return its v2 URL.

    Rollback: run it with ``model_version`` set to an earlier version.
    """
    logger = get_run_logger()
    started = time.monotonic()
    mlflow_server = load_block(MLflowServer, mlflow_block)
    version = resolve_model_version(mlflow_block, model_version)
    model_uri = mlflow_server.model_uri(version)
    logger.info("deploying %s (version %s) to %s", model_uri, version, target)
    if target == "local":
        started_server = start_local_server(
            model_uri, version, mlflow_block, storage_block, port, timeout_seconds
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
        digest_ref = resolve_image(registry_block, version, image)
        applied = apply_inference_service(
            digest_ref,
            version,
            namespace,
            registry_block,
            timeout_seconds,
            kube_context,
            kube_config,
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
