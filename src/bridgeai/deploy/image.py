"""The model-server image: its build context, and building, pushing and pulling it with Docker.

:func:`write_context` lays out a context that builds with no network: the Dockerfile from
``deployments/model-image/``, the model directory with its ``model-info.json`` (registry name,
version and MLflow run id), and a wheelhouse (:mod:`bridgeai.deploy.wheelhouse`). :func:`build`,
:func:`push` and :func:`pull` drive the Docker SDK and turn the errors it reports *inside* its
JSON stream (a failed ``RUN`` step, a registry refusing credentials) into exceptions that carry
the builder's or the registry's message; :func:`connect` turns "no engine" into one sentence
saying how to point at one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, computed_field

from bridgeai.deploy import wheelhouse
from bridgeai.model.errors import BridgeAIError
from bridgeai.model.source import ModelInfo

logger = logging.getLogger(__name__)

IMAGE_NAME = "bridgeai-mlops"
DEFAULT_BASE_IMAGE = "python:3.11-slim"
#: Where the Dockerfile template lives in a source checkout (``$BRIDGEAI_MODEL_IMAGE_DIR``
#: overrides it, e.g. in a flow-runner image that copies the folder elsewhere).
TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "deployments" / "model-image"

_AUTH_WORDS = ("unauthorized", "denied", "authentication required", "no basic auth")
#: What the Docker engine says (as text: its stream has no error codes) when the registry blinked.
_TRANSIENT_WORDS = ("timeout", "connection reset", "connection refused", "eof", " 502 ", " 503 ")


class ImageError(BridgeAIError, RuntimeError):
    """Building, pushing or pulling the image failed; the message says why and what to fix."""


class DockerUnavailableError(ImageError):
    """No Docker engine answers where the environment points."""


class ImageBuildError(ImageError):
    """``docker build`` failed; the message holds the builder's error and its last output."""


class ImagePushError(ImageError):
    """The registry refused the push (or could not be reached); the message holds its answer."""


class ImagePullError(ImageError):
    """The registry refused the pull (or could not be reached); the message holds its answer."""


class ImageRef(BaseModel):
    """A built (and usually pushed) model-server image."""

    repository: str = Field(description="<registry>/<namespace>/bridgeai-mlops")
    tags: list[str] = Field(description="Tags pushed, the model version first, then 'latest'.")
    digest: str | None = Field(
        default=None, description="Registry manifest digest (sha256:...) once pushed."
    )
    image_id: str = Field(description="Local image id (sha256:...).")
    size_bytes: int = Field(description="Uncompressed image size as the engine reports it.")
    model_name: str
    model_version: str | None = None
    run_id: str | None = Field(default=None, description="MLflow run that logged the model.")
    base_image: str = DEFAULT_BASE_IMAGE

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reference(self) -> str:
        """``repository@digest`` when pushed (what deployments should use), else ``repo:tag``."""
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tags[0]}"


# -- engine ----------------------------------------------------------------------------------------
def connect(timeout: float = 900) -> Any:
    """A ``docker.DockerClient`` for the engine ``DOCKER_HOST`` (or the default socket) names.

    Raises:
        DockerUnavailableError: nothing answers there; the message says how to point at one.
    """
    import docker
    from docker.errors import DockerException

    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock (the default)"
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except (DockerException, OSError) as exc:
        reason = str(exc).split("\n")[0][:300]
        raise DockerUnavailableError(
            f"no Docker engine is reachable at {where} ({reason}). Start one, or set DOCKER_HOST "
            "to a running engine, e.g. DOCKER_HOST=unix:///run/docker.sock or "
            "DOCKER_HOST=tcp://host:2375; for a private test engine run "
            "`bash .ci/docker.sh up` and `source /tmp/bridgeai-docker/env`"
        ) from None
    return client


def probe_base_image(client: Any, base_image: str) -> tuple[str, str]:
    """The base image's Python ``major.minor`` and machine, asked of a throwaway container.

    Raises:
        ImageBuildError: the image is not available locally or from its registry, or it has no
            ``python3``.
    """
    from docker.errors import DockerException

    script = (
        "import platform, sys; "
        "print(f'{sys.version_info[0]}.{sys.version_info[1]}', platform.machine())"
    )
    try:
        output = client.containers.run(
            base_image, ["python3", "-c", script], network_mode="none", remove=True
        )
    except DockerException as exc:
        raise ImageBuildError(
            f"cannot use base image {base_image!r}: {_explain(exc)}. Pull or load it into the "
            "engine first (no registry may be reachable from here), or pass another base_image "
            "that has python3 and python3-venv"
        ) from None
    version, machine = output.decode().split()
    return version, machine


# -- context ---------------------------------------------------------------------------------------
def write_context(
    dest: Path,
    model_dir: Path,
    info: ModelInfo,
    *,
    python_version: str = "3.11",
    machine: str = "x86_64",
    wheels: wheelhouse.WheelSource | None = None,
    template_dir: Path | None = None,
) -> Path:
    """Lay out a build context in ``dest``: Dockerfile, ``model/`` and ``wheels/``.

    Args:
        dest: an empty or missing folder.
        model_dir: the model directory (``model.txt`` + ``preprocessing.json``).
        info: the model's registry identity, written to ``model/model-info.json``.
        python_version: the base image's Python (``major.minor``), for the wheels.
        machine: the engine's architecture (``x86_64``, ``aarch64``), for the wheels.
        wheels: ``environment`` or ``index`` (see :mod:`bridgeai.deploy.wheelhouse`); None picks
            ``environment`` when this Python matches the target, else ``index``.
        template_dir: folder holding the Dockerfile template (default
            ``$BRIDGEAI_MODEL_IMAGE_DIR``, else ``deployments/model-image`` of the checkout).

    Raises:
        ImageError: the template is missing, or the wheels cannot be prepared.
    """
    if template_dir is None:
        template_dir = Path(os.environ.get("BRIDGEAI_MODEL_IMAGE_DIR") or TEMPLATE_DIR)
    template = template_dir / "Dockerfile"
    if not template.is_file():
        raise ImageError(
            f"the Dockerfile template {template} is missing: build images from a BridgeAI "
            "source checkout, or set BRIDGEAI_MODEL_IMAGE_DIR to a copy of deployments/model-image"
        )
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(template, dest / "Dockerfile")
    model_target = dest / "model"
    if model_target.exists():
        shutil.rmtree(model_target)
    shutil.copytree(model_dir, model_target)
    info.write(model_target)
    if wheels is None:
        matches = wheelhouse.environment_matches(python_version, machine)
        wheels = "environment" if matches else "index"
    try:
        wheelhouse.prepare(
            dest / "wheels", source=wheels, python_version=python_version, machine=machine
        )
    except wheelhouse.WheelhouseError as exc:
        raise ImageError(f"cannot prepare the server's wheels: {exc}") from None
    return dest


def build_args(info: ModelInfo, base_image: str) -> dict[str, str]:
    """The Dockerfile's ARGs: base image and the labels' model identity."""
    import bridgeai

    return {
        "BASE_IMAGE": base_image,
        "MODEL_NAME": info.name,
        "MODEL_VERSION": info.version or "unversioned",
        "MLFLOW_RUN_ID": info.run_id or "",
        "BRIDGEAI_VERSION": bridgeai.__version__,
    }


# -- build / push / pull ---------------------------------------------------------------------------
def build(
    client: Any,
    context: Path,
    repository: str,
    tags: list[str],
    buildargs: dict[str, str],
    on_log: Callable[[str], None] | None = None,
) -> str:
    """Build ``context`` with no network, tag it ``repository:<tag>`` for each tag; return its id.

    Raises:
        ImageBuildError: the build failed; the message holds the builder's error and the last
            lines of its output.
    """
    from docker.errors import DockerException

    tail: deque[str] = deque(maxlen=12)
    image_id: str | None = None
    try:
        stream = client.api.build(
            path=str(context),
            tag=f"{repository}:{tags[0]}",
            buildargs=buildargs,
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="none",
            decode=True,
        )
        for chunk in stream:
            error = _stream_error(chunk)
            if error:
                output = "\n".join(tail)
                raise ImageBuildError(
                    f"docker build failed: {error}"
                    + (f"\n--- last output:\n{output}" if output else "")
                )
            text = chunk.get("stream", "")
            for line in text.splitlines():
                if line.strip():
                    tail.append(line.rstrip())
                    if on_log:
                        on_log(line.rstrip())
            aux = chunk.get("aux") or {}
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
        if image_id is None:
            image_id = client.images.get(f"{repository}:{tags[0]}").id
        for tag in tags[1:]:
            client.api.tag(image_id, repository, tag=tag, force=True)
    except DockerException as exc:
        raise ImageBuildError(f"docker build failed: {_explain(exc)}") from None
    return str(image_id)


def push(client: Any, repository: str, tag: str, auth_config: dict[str, str] | None) -> str:
    """Push ``repository:tag``; return the manifest digest the registry reported.

    Raises:
        ImagePushError: the registry refused (e.g. bad credentials) or could not be reached;
            the message holds the registry's own words.
    """
    target = f"{repository}:{tag}"
    digests = [
        str(aux["Digest"])
        for aux in _registry_stream(
            ImagePushError, "push", target, auth_config, client.api.push, repository, tag
        )
        if aux.get("Digest")
    ]
    if not digests:
        raise ImagePushError(f"push of {target} finished but the registry reported no digest")
    return digests[-1]


def pull(client: Any, reference: str, auth_config: dict[str, str] | None) -> str:
    """Pull ``repo@sha256:...`` or ``repo:tag``; return the local image id.

    Raises:
        ImagePullError: the registry refused or could not be reached (its message included).
    """
    repository, sep, digest = reference.partition("@")
    tag = digest if sep else None
    if not sep and ":" in reference.rsplit("/", 1)[-1]:
        repository, tag = reference.rsplit(":", 1)
    for _ in _registry_stream(
        ImagePullError, "pull", reference, auth_config, client.api.pull, repository, tag
    ):
        pass
    return str(client.images.get(reference).id)


def _registry_stream(
    error_cls: type[ImageError],
    action: str,
    target: str,
    auth_config: dict[str, str] | None,
    call: Callable[..., Iterable[dict[str, Any]]],
    repository: str,
    tag: str | None,
) -> Iterator[dict[str, Any]]:
    """Run a push or pull, yield its ``aux`` records; an error in the stream or the SDK raises.

    The Docker SDK reports a registry's refusal inside the JSON stream, not as an exception.
    """
    from docker.errors import DockerException

    try:
        for chunk in call(repository, tag=tag, auth_config=auth_config, stream=True, decode=True):
            error = _stream_error(chunk)
            if error:
                raise _registry_error(error_cls, action, target, error, auth_config)
            aux = chunk.get("aux")
            if isinstance(aux, dict):
                yield aux
    except DockerException as exc:
        raise _registry_error(error_cls, action, target, _explain(exc), auth_config) from None


def image_size(client: Any, image_id: str) -> int:
    """The image's uncompressed size in bytes, as the engine reports it."""
    return int(client.images.get(image_id).attrs.get("Size", 0))


def remove(client: Any, references: Iterable[str]) -> None:
    """Remove local tags or images; missing ones are ignored."""
    from docker.errors import ImageNotFound

    for reference in references:
        with contextlib.suppress(ImageNotFound):
            client.images.remove(reference, force=True)


def _stream_error(chunk: dict[str, Any]) -> str | None:
    detail = chunk.get("errorDetail")
    if isinstance(detail, dict) and detail.get("message"):
        return str(detail["message"]).strip()
    if chunk.get("error"):
        return str(chunk["error"]).strip()
    return None


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


def _registry_error(
    cls: type[ImageError], action: str, target: str, error: str, auth: dict[str, str] | None
) -> ImageError:
    message = f"{action} of {target} failed: the registry said: {error}"
    lowered = f" {error.lower()} "
    if any(word in lowered for word in _AUTH_WORDS):
        who = f"user {auth['username']!r}" if auth else "no credentials"
        message += f" (sent {who}): check the username and password of the ContainerRegistry block"
    return cls(message, transient=any(word in lowered for word in _TRANSIENT_WORDS))
