"""A Docker engine and an htpasswd-protected registry for the ``docker`` tests.

``.ci/docker.sh up`` starts both (CI does it in ``.ci/run``) and writes their coordinates to
``$BRIDGEAI_DOCKER_DIR/env`` (default ``/tmp/bridgeai-docker/env``); the fixture reads them from
the environment, or from that file, so a developer can run the tests without sourcing it. The
tests skip locally and FAIL in CI (``BRIDGEAI_CI=1``) when the engine or registry is missing.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require

_VARIABLES = (
    "DOCKER_HOST",
    "BRIDGEAI_TEST_REGISTRY",
    "BRIDGEAI_TEST_REGISTRY_USER",
    "BRIDGEAI_TEST_REGISTRY_PASSWORD",
    "BRIDGEAI_TEST_BASE_IMAGE",
)


@dataclass
class DockerEnv:
    """The engine client and the registry's coordinates."""

    client: Any
    docker_host: str
    registry: str
    username: str
    password: str
    base_image: str


def _from_env_file() -> dict[str, str]:
    path = Path(os.environ.get("BRIDGEAI_DOCKER_DIR", "/tmp/bridgeai-docker")) / "env"
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                key, _, value = line[len("export ") :].partition("=")
                values[key] = shlex.split(value)[0] if value else ""
    return values


@pytest.fixture(scope="session")
def docker_env() -> Iterator[DockerEnv]:
    """The CI Docker engine + registry (``bash .ci/docker.sh up``), or skip/fail."""
    values = {k: os.environ[k] for k in _VARIABLES if os.environ.get(k)}
    if len(values) < len(_VARIABLES):
        values = {**_from_env_file(), **values}
    missing = [k for k in _VARIABLES if not values.get(k)]
    require(
        not missing,
        f"a Docker engine and registry (`bash .ci/docker.sh up`; missing {', '.join(missing)})",
    )
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = values["DOCKER_HOST"]
    try:
        from bridgeai.deploy.image import DockerUnavailableError, connect

        try:
            client, problem = connect(timeout=600), ""
        except DockerUnavailableError as exc:
            client, problem = None, str(exc)
        require(client is not None, f"the Docker engine ({problem})")
        try:
            client.images.get(values["BRIDGEAI_TEST_BASE_IMAGE"])
            has_base = True
        except Exception:
            has_base = False
        require(has_base, f"the offline base image {values['BRIDGEAI_TEST_BASE_IMAGE']}")
        yield DockerEnv(
            client=client,
            docker_host=values["DOCKER_HOST"],
            registry=values["BRIDGEAI_TEST_REGISTRY"],
            username=values["BRIDGEAI_TEST_REGISTRY_USER"],
            password=values["BRIDGEAI_TEST_REGISTRY_PASSWORD"],
            base_image=values["BRIDGEAI_TEST_BASE_IMAGE"],
        )
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous
