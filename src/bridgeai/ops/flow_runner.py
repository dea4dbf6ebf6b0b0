"""The flow-runner image of the ``kind`` work pool, built offline from this checkout.

``deployments/docker/flow-runner.Dockerfile`` installs wheels and copies files, nothing more; this
module prepares its context on the host and drives the build and the push:

* ``wheels/``: every runtime distribution of ``bridgeai`` (its ``Requires-Dist``, extras and
  markers followed, for Linux/CPython), repacked from this environment by
  :mod:`bridgeai.deploy.wheelhouse`. ``make sync`` installs exactly ``uv.lock``'s versions, and
  the dev group is not among ``bridgeai``'s requirements, so these are the locked runtime
  dependencies without the dev tools;
* ``project/``: a wheel of ``bridgeai``, ``flows`` and ``blocks`` with the ``bridgeai`` command;
* ``app/``: ``flows/``, ``blocks/``, ``prefect.yaml`` and ``deployments/model-image/`` at the paths
  ``prefect.yaml``'s kind deployments expect under ``/opt/bridgeai``;
* ``tools/uv``: the uv binary ``make sync`` uses, which installs the wheels in the build stage.

The same context gives the same bytes (wheels are written reproducibly), so Docker's layer cache
keeps the dependency layer until ``uv.lock`` changes, and the image tag is the context's digest.

``prefect.yaml`` runs :func:`build_flow_runner_image` and :func:`push_flow_runner_image` as the
kind deployments' build and push steps; they build only when asked
(``BRIDGEAI_FLOW_RUNNER_BUILD=1``, which ``deployments/kind/up.sh`` sets), so ``prefect deploy
--all`` against the local stack needs no Docker. From a shell::

    python -m bridgeai.ops.flow_runner --repository localhost:5000/bridgeai/flow-runner --push
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bridgeai.deploy import image, wheelhouse

logger = logging.getLogger(__name__)

#: The image the kind pool's template runs when no build step pinned another one.
DEFAULT_IMAGE = "localhost:5000/bridgeai/flow-runner:latest"
IMAGE_NAME = "flow-runner"
DEFAULT_BASE_IMAGE = "bridgeai/flow-runner-base:bookworm"
#: The environment switch of prefect.yaml's build step.
BUILD_ENV = "BRIDGEAI_FLOW_RUNNER_BUILD"
#: Where the project's files live in a checkout (this file is src/bridgeai/ops/flow_runner.py).
CHECKOUT = Path(__file__).resolve().parents[3]
DOCKERFILE = CHECKOUT / "deployments" / "docker" / "flow-runner.Dockerfile"
_APP_FILES = ("flows", "blocks", "prefect.yaml", "deployments/model-image")

#: Built in this process, by build inputs: ``prefect deploy --all`` runs the step once per kind
#: deployment, and all of them get the one image.
_BUILT: dict[tuple[str, ...], dict[str, Any]] = {}
_PUSHED: dict[str, str] = {}


class FlowRunnerImageError(image.ImageError):
    """The flow-runner image cannot be built or pushed; the message says why."""


# -- the context ---------------------------------------------------------------------------------
def runtime_distributions(
    python_version: str = "3.11", machine: str = "x86_64"
) -> list[metadata.Distribution]:
    """``bridgeai``'s runtime requirements, transitively, as installed here (extras followed).

    Raises:
        FlowRunnerImageError: a required distribution is not installed in this environment.
    """
    import platform

    from packaging.requirements import Requirement

    here = platform.python_version()
    base = {
        "python_version": python_version,
        # The wheels are this environment's, so its patch release decides (e.g. redis wants
        # async-timeout only below 3.11.3).
        "python_full_version": here if here.startswith(python_version + ".") else python_version,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_machine": machine,
    }
    found: dict[str, metadata.Distribution] = {}
    extras_done: set[tuple[str, str]] = set()
    queue: list[tuple[str, frozenset[str]]] = [("bridgeai", frozenset())]
    while queue:
        raw, extras = queue.pop()
        name = _canonical(raw)
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise FlowRunnerImageError(
                f"{name} (a runtime dependency of bridgeai) is not installed in {sys.prefix}: "
                "run `make sync`"
            ) from None
        wanted = {""} | set(extras)
        new = {e for e in wanted if (name, e) not in extras_done}
        if name in found and not new:
            continue
        found[name] = dist
        for extra in new:
            extras_done.add((name, extra))
            for text in dist.requires or []:
                requirement = Requirement(text)
                marker = requirement.marker
                if marker is None:
                    applies = extra == ""
                else:
                    applies = marker.evaluate({**base, "extra": extra})
                if applies:
                    queue.append((requirement.name, frozenset(requirement.extras)))
    found.pop("bridgeai", None)
    return [found[name] for name in sorted(found)]


def _canonical(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


def _package_files(root: Path, package: str) -> list[tuple[str, Path]]:
    """(arcname, path) of every file of ``package`` under ``root``, bytecode left out."""
    files = []
    for path in sorted((root / package).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.append((path.relative_to(root).as_posix(), path))
    return files


def project_wheel(dest: Path, checkout: Path = CHECKOUT) -> Path:
    """A wheel of ``bridgeai`` (from ``src/``), ``flows`` and ``blocks``, with the CLI entry point.

    Written from the source files directly (no build backend, no network), reproducibly.
    """
    version = metadata.version("bridgeai")
    dist_info = f"bridgeai-{version}.dist-info"
    entries = [
        *_package_files(checkout / "src", "bridgeai"),
        *_package_files(checkout, "flows"),
        *_package_files(checkout, "blocks"),
    ]
    files = [(arcname, path.read_bytes()) for arcname, path in entries]
    summary = "BridgeAI flows, blocks and library, as the flow-runner image runs them."
    meta = f"Metadata-Version: 2.1\nName: bridgeai\nVersion: {version}\nSummary: {summary}\n"
    files.append((f"{dist_info}/METADATA", meta.encode()))
    files.append(
        (f"{dist_info}/entry_points.txt", b"[console_scripts]\nbridgeai = bridgeai.cli:app\n")
    )
    wheel = (
        "Wheel-Version: 1.0\nGenerator: bridgeai.ops.flow_runner\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files.append((f"{dist_info}/WHEEL", wheel.encode()))
    return wheelhouse._write_wheel(dest / f"bridgeai-{version}-py3-none-any.whl", files, dist_info)


def write_context(
    dest: Path,
    *,
    python_version: str = "3.11",
    machine: str = "x86_64",
    checkout: Path = CHECKOUT,
) -> Path:
    """Lay out the build context in ``dest``: Dockerfile, ``wheels/``, ``project/``, ``app/``.

    Raises:
        FlowRunnerImageError: not a checkout, this environment's Python does not fit the base
            image's, or a dependency cannot be repacked.
    """
    if not (checkout / "prefect.yaml").is_file() or not DOCKERFILE.is_file():
        raise FlowRunnerImageError(
            f"{checkout} is not a BridgeAI checkout: the flow-runner image is built from one"
        )
    if not wheelhouse.environment_matches(python_version, machine):
        raise FlowRunnerImageError(
            f"the base image has Python {python_version} on {machine}, this environment "
            f"runs {sys.version_info.major}.{sys.version_info.minor}: the wheels are repacked "
            "from this environment, so both must match"
        )
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(DOCKERFILE, dest / "Dockerfile")
    wheels = dest / "wheels"
    wheels.mkdir(exist_ok=True)
    try:
        for dist in runtime_distributions(python_version, machine):
            wheelhouse.repack(dist, wheels)
    except wheelhouse.WheelhouseError as exc:
        raise FlowRunnerImageError(f"cannot repack a dependency: {exc}") from None
    project = dest / "project"
    project.mkdir(exist_ok=True)
    project_wheel(project, checkout)
    tools = dest / "tools"
    tools.mkdir(exist_ok=True)
    shutil.copy2(uv_binary(checkout), tools / "uv")
    app = dest / "app"
    for relative in _APP_FILES:
        source, target = checkout / relative, app / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    return dest


def uv_binary(checkout: Path = CHECKOUT) -> Path:
    """The uv executable: ``$UV``, ``uv`` on PATH, else the one ``make sync`` put in ``.tools``.

    Raises:
        FlowRunnerImageError: none is found.
    """
    for candidate in (os.environ.get("UV"), shutil.which("uv"), checkout / ".tools" / "bin" / "uv"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise FlowRunnerImageError("uv is not installed: run `make sync` (it installs uv if missing)")


def context_digest(context: Path) -> str:
    """SHA-256 over the context's file names and contents (the image tag's source)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# -- build and push --------------------------------------------------------------------------------
def build(
    repository: str,
    *,
    base_image: str = DEFAULT_BASE_IMAGE,
    model_base_image: str = image.DEFAULT_BASE_IMAGE,
    client: Any = None,
) -> dict[str, Any]:
    """Build the image offline; tag it ``<digest of the context>`` and ``latest``.

    Returns:
        ``image`` (``repository:<tag>``), ``repository``, ``tag``, ``image_id``, ``size_bytes``,
        ``seconds`` (context + build).

    Raises:
        FlowRunnerImageError: the base image is missing or has another Python, or a dependency
            cannot be repacked.
        image.ImageError: no Docker engine, or the build failed (the builder's message included).
    """
    import bridgeai

    started = time.monotonic()
    client = client or image.connect()
    python_version, machine = image.probe_base_image(client, base_image)
    with tempfile.TemporaryDirectory(prefix="bridgeai-flow-runner-") as tmp:
        context = write_context(Path(tmp), python_version=python_version, machine=machine)
        tag = "src-" + context_digest(context)[:16]
        prepared = time.monotonic() - started
        image_id = image.build(
            client,
            context,
            repository,
            [tag, "latest"],
            {
                "BASE_IMAGE": base_image,
                "MODEL_BASE_IMAGE": model_base_image,
                "BRIDGEAI_VERSION": bridgeai.__version__,
            },
            on_log=logger.debug,
        )
    size = image.image_size(client, image_id)
    built: dict[str, Any] = {
        "image": f"{repository}:{tag}",
        "repository": repository,
        "tag": tag,
        "image_id": image_id,
        "size_bytes": size,
        "seconds": round(time.monotonic() - started, 1),
        "context_seconds": round(prepared, 1),
    }
    logger.info(
        "flow-runner image %s: %.0f MB, built in %.0f s (context %.0f s)",
        built["image"],
        size / 1e6,
        built["seconds"],
        prepared,
    )
    return built


def push(reference: str, auth_config: dict[str, str] | None, client: Any = None) -> str:
    """Push ``repository:tag`` (and its ``latest``); return ``repository@sha256:...``."""
    repository, _, tag = reference.rpartition(":")
    client = client or image.connect()
    digest = image.push(client, repository, tag, auth_config)
    image.push(client, repository, "latest", auth_config)
    return f"{repository}@{digest}"


# -- prefect.yaml steps ---------------------------------------------------------------------------
def _enabled(value: str | bool | None) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def _registry(name: str) -> Any:
    from blocks import ContainerRegistry, load_block

    return load_block(ContainerRegistry, name)


def build_flow_runner_image(
    enabled: str | bool = "",
    registry_block: str = "bridgeai",
    base_image: str = "",
    model_base_image: str = "",
    image_name: str = IMAGE_NAME,
) -> dict[str, Any]:
    """prefect.yaml build step: the flow-runner image for the kind deployments.

    With ``enabled`` off (``BRIDGEAI_FLOW_RUNNER_BUILD`` unset), nothing is built and the step
    answers the pool's default image, so registering deployments needs no Docker. Otherwise the
    image is built into ``<registry>/<namespace>/<image_name>`` of the ContainerRegistry block,
    once per process whatever the number of deployments.
    """
    if not _enabled(enabled):
        print(
            f" > {BUILD_ENV} is not set: the flow-runner image is not rebuilt; "
            f"the kind deployments run {DEFAULT_IMAGE}"
        )
        return {"image": DEFAULT_IMAGE, "built": False}
    registry = _registry(registry_block)
    repository = registry.repository(image_name)
    key = (
        repository,
        base_image or DEFAULT_BASE_IMAGE,
        model_base_image or image.DEFAULT_BASE_IMAGE,
    )
    if key not in _BUILT:
        _BUILT[key] = build(repository, base_image=key[1], model_base_image=key[2])
        print(
            f" > built {_BUILT[key]['image']} ({_BUILT[key]['size_bytes'] / 1e6:.0f} MB, "
            f"{_BUILT[key]['seconds']:.0f} s)"
        )
    return {**_BUILT[key], "built": True}


def push_flow_runner_image(
    image: str = "", built: bool | str = False, registry_block: str = "bridgeai"
) -> dict[str, Any]:
    """prefect.yaml push step: push what the build step built; answer the image by digest."""
    if not image or not _enabled(built):
        return {"image": image or DEFAULT_IMAGE}
    if image not in _PUSHED:
        registry = _registry(registry_block)
        _PUSHED[image] = push(image, registry.auth_config())
        print(f" > pushed {_PUSHED[image]}")
    return {"image": _PUSHED[image]}


# -- command line ---------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build (and push) the flow-runner image offline.")
    parser.add_argument(
        "--repository", required=True, help="e.g. localhost:5000/bridgeai/flow-runner"
    )
    parser.add_argument("--base-image", default=DEFAULT_BASE_IMAGE)
    parser.add_argument("--model-base-image", default=image.DEFAULT_BASE_IMAGE)
    parser.add_argument("--push", action="store_true", help="push both tags to the registry")
    parser.add_argument("--username", default=os.environ.get("BRIDGEAI_REGISTRY_USERNAME"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        built = build(
            args.repository, base_image=args.base_image, model_base_image=args.model_base_image
        )
        print(built["image"])
        if args.push:
            auth = None
            if args.username:
                auth = {
                    "username": args.username,
                    "password": os.environ.get("BRIDGEAI_REGISTRY_PASSWORD", ""),
                    "serveraddress": args.repository.split("/", 1)[0],
                }
            print(push(built["image"], auth))
    except image.ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
