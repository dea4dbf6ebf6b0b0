"""Flow ``build-model-image``: bake a registered model into the model-server image and push it.

The original's third stage (``create_model_image_to_deploy_dag``). Here:

1. ``models:/<name>@<alias>`` (the champion by default) resolves to a concrete version and run;
2. the model directory is downloaded into a build context with ``model-info.json`` (so the image
   reports the registry version), the Dockerfile and the server's wheels prepared on this host;
3. the Docker SDK builds it with no network and tags
   ``<registry>/<namespace>/bridgeai-mlops:<model version>`` and ``:latest``;
4. both tags are pushed with the ``ContainerRegistry`` block's credentials, and the flow returns
   an :class:`~bridgeai.deploy.image.ImageRef` carrying the pushed digest, which deployments pin.

The Docker engine is the one ``DOCKER_HOST`` names (default ``/var/run/docker.sock``).
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Failed
from pydantic import Field

from blocks import ContainerRegistry, MLflowServer, load_block
from bridgeai.deploy import image
from bridgeai.deploy.image import DEFAULT_BASE_IMAGE, IMAGE_NAME, ImageRef
from bridgeai.model.source import ModelInfo
from flows import _links as links
from flows._progress import Progress
from flows._tasks import IO_RETRIES

#: Model-version tags stamped once the image is pushed (the lineage of a served prediction).
IMAGE_TAG = "image"
IMAGE_DIGEST_TAG = "image_digest"
IMAGE_FLOW_RUN_TAG = "image_flow_run_id"
IMAGE_BUILT_AT_TAG = "image_built_at"
#: The classic builder's "Step 3/12 : RUN ..." lines: the build's progress.
_STEP = re.compile(r"^Step (\d+)/(\d+)")
#: The model image's base when the flow is not given one (the flow-runner image sets it).
BASE_IMAGE_ENV = "BRIDGEAI_BASE_IMAGE"


@task(**IO_RETRIES)
def fetch_model(model_uri: str, server: MLflowServer, dest: str) -> ModelInfo:
    """Resolve the model URI to a registry version and download its directory into ``dest``."""
    from bridgeai.model import source

    _, info = source.fetch(model_uri, Path(dest), server.client())
    return info


@task
def prepare_context(
    context: str, model_dir: str, info: ModelInfo, base_image: str, wheels: str
) -> str:
    """Write the Dockerfile and wheels next to the model, for the base image's Python."""
    client = image.connect()
    python_version, machine = image.probe_base_image(client, base_image)
    get_run_logger().info("base image %s has Python %s on %s", base_image, python_version, machine)
    image.write_context(
        Path(context),
        Path(model_dir),
        info,
        python_version=python_version,
        machine=machine,
        wheels=None if wheels == "auto" else wheels,  # type: ignore[arg-type]
    )
    return context


@task
def build_image(
    context: str, repository: str, tags: list[str], info: ModelInfo, base_image: str
) -> dict[str, Any]:
    """Build with no network; return the image id and size. Not retried: builds are reproducible.

    The Dockerfile's steps move the ``model-image-build`` progress artifact (0-90 %; the push
    takes it to 100 %).
    """
    logger = get_run_logger()
    progress = Progress("model-image-build", f"Building {repository}:{tags[0]}")

    def on_log(line: str) -> None:
        logger.debug(line)
        step = _STEP.match(line)
        if step:
            done, total = int(step.group(1)), int(step.group(2))
            progress.update(90.0 * (done - 1) / total, f"Building {repository}:{tags[0]}: {line}")

    client = image.connect()
    image_id = image.build(
        client, Path(context), repository, tags, image.build_args(info, base_image), on_log=on_log
    )
    progress.update(90.0, f"Built {repository}:{tags[0]} ({image_id[:19]})")
    return {
        "image_id": image_id,
        "size_bytes": image.image_size(client, image_id),
        "progress_id": str(progress.artifact_id),
    }


@task(**IO_RETRIES)
def push_image(repository: str, tag: str, registry: ContainerRegistry) -> str:
    """Push one tag with the registry block's credentials; return the manifest digest."""
    return image.push(image.connect(), repository, tag, registry.auth_config())


@task(**IO_RETRIES)
def stamp_model_version(server: MLflowServer, ref: ImageRef) -> None:
    """Record the pushed image on the model version (``image``, ``image_digest``, ...)."""
    if not ref.model_version:
        return
    tags = {
        IMAGE_TAG: ref.reference,
        IMAGE_DIGEST_TAG: ref.digest or "",
        IMAGE_FLOW_RUN_TAG: flow_run.get_id() or "",
        IMAGE_BUILT_AT_TAG: datetime.now(UTC).isoformat(timespec="seconds"),
    }
    client = server.client()
    for key, value in tags.items():
        client.set_model_version_tag(ref.model_name, ref.model_version, key, value)
    get_run_logger().info(
        "%s v%s now records its image %s", ref.model_name, ref.model_version, ref.reference
    )


@flow(name="build-model-image", log_prints=False)
def build_model_image(
    model_uri: Annotated[
        str | None,
        Field(
            description="models:/<name>@<alias>, models:/<name>/<version> or runs:/ URI. "
            "Empty: the MLflow block's registered model and alias (the champion)."
        ),
    ] = None,
    base_image: Annotated[
        str | None,
        Field(
            description="Base image with python3 and python3-venv; it must be available to the "
            "engine (the build itself uses no network). Empty: $BRIDGEAI_BASE_IMAGE (the "
            "flow-runner image sets it), else python:3.11-slim."
        ),
    ] = None,
    image_name: Annotated[str, Field(description="Repository name under the namespace.")] = (
        IMAGE_NAME
    ),
    push: Annotated[
        bool, Field(description="Push to the registry (off: build and tag locally only).")
    ] = True,
    wheels: Annotated[
        Literal["auto", "environment", "index"],
        Field(
            description="Where the server's wheels come from: this environment's installed "
            "packages (offline) or pip's index; auto picks environment when the base image's "
            "Python matches this one."
        ),
    ] = "auto",
    mlflow_block: Annotated[str, Field(description="MLflowServer block name.")] = "bridgeai",
    registry_block: Annotated[str, Field(description="ContainerRegistry block name.")] = "bridgeai",
) -> ImageRef:
    """Build the model-server image for a registered model and push it to the registry.

    Tags ``<registry>/<namespace>/<image_name>:<model version>`` and ``:latest``, pushes both
    with the ContainerRegistry block's credentials and returns the image by digest, which is
    also stamped on the model version (tags image, image_digest, image_flow_run_id). The
    model-image-build progress artifact follows the build and the push.

    Args:
        model_uri: models:/<name>@<alias>, models:/<name>/<version> or runs:/ URI. Empty: the
            MLflow block's registered model and alias (the champion).
        base_image: Base image with python3 and python3-venv; it must be available to the
            engine (the build itself uses no network). Empty: $BRIDGEAI_BASE_IMAGE (the
            flow-runner image sets it), else python:3.11-slim.
        image_name: Repository name under the registry block's namespace.
        push: Push to the registry (off: build and tag locally only).
        wheels: Where the server's wheels come from: this environment's installed packages
            (offline) or pip's index; auto picks environment when the base image's Python
            matches this one.
        mlflow_block: MLflowServer block name.
        registry_block: ContainerRegistry block name.
    """
    logger = get_run_logger()
    mlflow_server = load_block(MLflowServer, mlflow_block)
    registry = load_block(ContainerRegistry, registry_block)
    uri = model_uri or mlflow_server.model_uri()
    base_image = base_image or os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE
    try:
        engine = image.connect().version()
    except image.DockerUnavailableError as exc:
        # One line saying how to point at an engine, rather than a task traceback; callers of
        # the flow function still get the exception.
        logger.error("%s", exc)
        return Failed(message=str(exc), data=exc)  # type: ignore[return-value]
    logger.info("Docker engine %s (%s)", engine.get("Version"), engine.get("Arch"))

    with tempfile.TemporaryDirectory(prefix="bridgeai-image-") as tmp:
        context, model_dir = Path(tmp) / "context", Path(tmp) / "model"
        info = fetch_model(uri, mlflow_server, str(model_dir))
        logger.info(
            "%s resolved to %s version %s (run %s)", uri, info.name, info.version, info.run_id
        )
        prepare_context(str(context), str(model_dir), info, base_image, wheels)
        repository = registry.repository(image_name)
        tags = [info.version or "unversioned", "latest"]
        built = build_image(str(context), repository, tags, info, base_image)

    progress = Progress.resume("model-image-build", built["progress_id"], 90.0)
    digest = None
    if push:
        digests = []
        for done, tag in enumerate(tags):
            digests.append(push_image(repository, tag, registry))
            progress.update(90.0 + 10.0 * (done + 1) / len(tags), f"Pushed {repository}:{tag}")
        digest = digests[0]
    else:
        progress.done(f"Built {repository}:{tags[0]} (not pushed)")
    ref = ImageRef(
        repository=repository,
        tags=tags,
        digest=digest,
        image_id=built["image_id"],
        size_bytes=built["size_bytes"],
        model_name=info.name,
        model_version=info.version,
        run_id=info.run_id,
        base_image=base_image,
    )
    logger.info("image %s (%.0f MB)", ref.reference, ref.size_bytes / 1e6)
    if push:
        stamp_model_version(mlflow_server, ref)
    _artifacts(ref, uri, pushed=push, server=mlflow_server)
    return ref


def _artifacts(ref: ImageRef, model_uri: str, pushed: bool, server: MLflowServer) -> None:
    create_table_artifact(
        key="model-image",
        table=[
            {"field": "image", "value": ref.reference},
            {"field": "tags", "value": ", ".join(ref.tags)},
            {"field": "digest", "value": ref.digest or "(not pushed)"},
            {"field": "size", "value": f"{ref.size_bytes / 1e6:.0f} MB"},
            {"field": "model", "value": f"{ref.model_name} v{ref.model_version}"},
            {"field": "mlflow run", "value": ref.run_id or ""},
            {
                "field": "model version page",
                "value": links.model_version_url(server, ref.model_name, ref.model_version) or "",
            },
            {"field": "base image", "value": ref.base_image},
        ],
        description=f"Model-server image built from {model_uri}",
    )
    run = f"docker run --network host {ref.reference} --port 8080"
    create_markdown_artifact(
        key="model-image-usage",
        markdown=(
            f"## Model image {'pushed' if pushed else 'built (not pushed)'}\n\n"
            f"`{ref.reference}`\n\nRun it locally:\n\n```\n{run}\n```\n\n"
            f"Then `POST http://127.0.0.1:8080/v2/models/{ref.model_name}/infer`."
        ),
        description="How to run the model image",
    )
