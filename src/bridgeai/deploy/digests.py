"""Resolve an image tag to its digest with the registry's HTTP API (no Docker engine needed).

A rollback names a model version; the build flow tagged that version's image
``<registry>/<namespace>/bridgeai-mlops:<version>``. KServe must run it by digest, so the deploy
flow asks the registry which manifest the tag points at (``HEAD /v2/<repo>/manifests/<tag>``,
header ``Docker-Content-Digest``), authenticating with Basic credentials or the bearer-token
challenge that Docker Hub, GHCR and most registries use.
"""

from __future__ import annotations

import re
from typing import Any

from bridgeai.model.errors import RETRY_STATUS, BridgeAIError, NotFound

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


class DigestLookupError(BridgeAIError):
    """The registry could not say which digest a tag points at; the message says why."""


class ImageTagNotFound(DigestLookupError, NotFound):
    """The registry has no such image tag."""

    status_code = 404


def split_reference(reference: str) -> tuple[str, str, str]:
    """``host[:port]/repo/path:tag`` -> (host, repo/path, tag)."""
    host, _, rest = reference.partition("/")
    if not rest or ("." not in host and ":" not in host and host != "localhost"):
        raise DigestLookupError(
            f"image {reference!r} has no registry host: use <registry>/<repository>:<tag>"
        )
    repo, sep, tag = rest.rpartition(":")
    if not sep or "/" in tag:
        repo, tag = rest, "latest"
    return host, repo, tag


def _scheme(host: str, insecure: bool) -> str:
    local = host.split(":")[0] in ("localhost", "127.0.0.1")
    return "http" if insecure or local else "https"


def _token(client: Any, challenge: str, repo: str, auth: Any) -> str:
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", None)
    if not realm:
        raise DigestLookupError(f"registry sent a bearer challenge without a realm: {challenge}")
    params.setdefault("scope", f"repository:{repo}:pull")
    response = client.get(realm, params=params, auth=auth)
    if response.status_code != 200:
        raise DigestLookupError(
            f"registry token service {realm} refused ({response.status_code}): check the "
            "ContainerRegistry block's username and password"
        )
    body = response.json()
    return str(body.get("token") or body.get("access_token"))


def resolve_digest(
    reference: str,
    *,
    username: str | None = None,
    password: str | None = None,
    insecure: bool = False,
    timeout: float = 15.0,
    api_host: str | None = None,
) -> str:
    """``host/repo@sha256:...`` for the tag in ``reference``.

    ``api_host`` is where this process reaches the registry when that differs from the host the
    reference names (inside a Kind pod the nodes' ``localhost:5000`` is ``kind-registry:5000``);
    the answer keeps the reference's host, which is what the nodes pull from.

    Raises:
        DigestLookupError: the tag does not exist, the credentials were refused, or the registry
            is unreachable; the message says which and what to check.
    """
    import httpx

    host, repo, tag = split_reference(reference)
    api = api_host or host
    url = f"{_scheme(api, insecure)}://{api}/v2/{repo}/manifests/{tag}"
    auth: tuple[str | bytes, str | bytes] | None = (username, password or "") if username else None
    headers = {"Accept": MANIFEST_TYPES}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            response = client.head(url, headers=headers)
            if response.status_code == 401:
                challenge = response.headers.get("WWW-Authenticate", "")
                if challenge.lower().startswith("bearer"):
                    token = _token(client, challenge, repo, auth)
                    headers["Authorization"] = f"Bearer {token}"
                    response = client.head(url, headers=headers)
                elif auth is not None:
                    response = client.head(url, headers=headers, auth=auth)
    except httpx.HTTPError as exc:
        raise DigestLookupError(f"registry {api} is unreachable: {exc}", transient=True) from None
    if response.status_code == 401:
        what = "refused the credentials" if auth else "requires credentials"
        raise DigestLookupError(
            f"registry {host} {what} for {repo}: check the ContainerRegistry block's username "
            "and password"
        )
    if response.status_code == 404:
        raise ImageTagNotFound(
            f"{host}/{repo}:{tag} does not exist: build and push it with the build-model-image "
            "flow, or pass the image digest explicitly"
        )
    digest = response.headers.get("Docker-Content-Digest")
    if response.status_code != 200 or not digest:
        raise DigestLookupError(
            f"registry {host} answered {response.status_code} without a digest for {repo}:{tag}",
            transient=response.status_code in RETRY_STATUS,
        )
    return f"{host}/{repo}@{digest}"
