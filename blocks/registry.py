"""A container registry as a typed Prefect Block."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

#: Prefix of the environment variables that fill the fields a block leaves out.
ENV_PREFIX = "BRIDGEAI_REGISTRY_"


def _env(field: str) -> str | None:
    return os.environ.get(ENV_PREFIX + field) or None


class ContainerRegistry(Block):
    """Where model-server images are pushed, with the credentials to push and pull them.

    ``login(docker_client)`` is the one place the registry is authenticated against; the same
    credentials are given to the Docker SDK as ``auth_config()`` and to Kubernetes as a
    ``.dockerconfigjson`` pull secret. Fields left out take their values from the environment
    (``BRIDGEAI_REGISTRY_SERVER``, ``_NAMESPACE``, ``_USERNAME``, ``_PASSWORD``, ``_INSECURE``),
    so embedded mode, which has no saved blocks, can push to a real registry, and a pod can get
    the password from a Kubernetes Secret.
    """

    _block_type_name = "BridgeAI Container Registry"
    _block_type_slug = "bridgeai-container-registry"
    _logo_url = "https://www.docker.com/wp-content/uploads/2022/03/Moby-logo.png"  # type: ignore[assignment]
    _description = "Container registry server, namespace and credentials for model images."

    server: str = Field(
        default_factory=lambda: _env("SERVER") or "localhost:5000",
        description="Registry host[:port], e.g. localhost:5000, ghcr.io, docker.io. Default: "
        "$BRIDGEAI_REGISTRY_SERVER, else localhost:5000.",
    )
    namespace: str = Field(
        default_factory=lambda: _env("NAMESPACE") or "bridgeai",
        description="Repository namespace (user or organisation). Default: "
        "$BRIDGEAI_REGISTRY_NAMESPACE, else bridgeai.",
    )
    username: str | None = Field(
        default_factory=lambda: _env("USERNAME"),
        description="Registry user name. Default: $BRIDGEAI_REGISTRY_USERNAME.",
    )
    password: SecretStr | None = Field(
        default_factory=lambda: SecretStr(value) if (value := _env("PASSWORD")) else None,
        description="Registry password or token. Default: $BRIDGEAI_REGISTRY_PASSWORD.",
    )
    insecure: bool = Field(
        default_factory=lambda: (_env("INSECURE") or "").lower() in ("1", "true", "yes"),
        description="Plain-HTTP registry (only for localhost or a lab network). Default: "
        "$BRIDGEAI_REGISTRY_INSECURE.",
    )
    api_server: str | None = Field(
        default=None,
        description="host[:port] where the flows reach the registry's HTTP API (tag -> digest "
        "lookups) when it differs from server. Kind: nodes and the host push and pull as "
        "localhost:5000, pods reach the same registry as kind-registry:5000. Empty: server.",
    )

    def repository(self, image_name: str = "bridgeai-mlops") -> str:
        """``<server>/<namespace>/<image_name>``, the repository images are tagged into."""
        parts = [self.server.rstrip("/"), self.namespace.strip("/"), image_name]
        return "/".join(p for p in parts if p)

    def auth_config(self) -> dict[str, str] | None:
        """Credentials in the Docker SDK's ``auth_config`` shape, or None without a user."""
        if not self.username:
            return None
        return {
            "username": self.username,
            "password": self.password.get_secret_value() if self.password else "",
            "serveraddress": self.server,
        }

    def docker_config_json(self) -> str:
        """A ``.dockerconfigjson`` document for a Kubernetes ``docker-registry`` pull secret."""
        auths: dict[str, Any] = {}
        config = self.auth_config()
        if config:
            token = f"{config['username']}:{config['password']}".encode()
            auths[self.server] = {
                "username": config["username"],
                "password": config["password"],
                "auth": base64.b64encode(token).decode(),
            }
        return json.dumps({"auths": auths})

    def login(self, docker_client: Any) -> None:
        """Log ``docker_client`` in to the registry (no-op without credentials)."""
        config = self.auth_config()
        if config:
            docker_client.login(
                username=config["username"],
                password=config["password"],
                registry=self.server,
                reauth=True,
            )
