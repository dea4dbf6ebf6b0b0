"""A Docker engine and an htpasswd-protected registry for the ``docker`` tests.

``.ci/docker.sh up`` starts both (CI does it in ``.ci/run``) and writes their coordinates to
``$BRIDGEAI_DOCKER_DIR/env`` (default ``/tmp/bridgeai-docker/env``); the fixture reads them from
the environment, or from that file, so a developer can run the tests without sourcing it. The
tests skip locally and FAIL in CI (``BRIDGEAI_CI=1``) when the engine or registry is missing.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def docker_values() -> dict[str, str] | None:
    """The CI engine's and registry's coordinates (environment, else ``.ci/docker.sh``'s env
    file), or None when they are not all known."""
    values = {k: os.environ[k] for k in _VARIABLES if os.environ.get(k)}
    if len(values) < len(_VARIABLES):
        values = {**_from_env_file(), **values}
    return values if all(values.get(k) for k in _VARIABLES) else None
