"""Tag -> digest against a real registry (docker-registry with htpasswd auth)."""

from __future__ import annotations

import pytest

from bridgeai.deploy.digests import DigestLookupError, resolve_digest, split_reference
from tests.support.oci_registry import Registry


def test_split_reference() -> None:
    assert split_reference("localhost:5000/bridgeai/bridgeai-mlops:3") == (
        "localhost:5000",
        "bridgeai/bridgeai-mlops",
        "3",
    )
    assert split_reference("ghcr.io/org/img") == ("ghcr.io", "org/img", "latest")
    with pytest.raises(DigestLookupError, match="no registry host"):
        split_reference("bridgeai-mlops:3")


@pytest.mark.integration
def test_resolves_the_pushed_digest(oci_registry: Registry) -> None:
    v1 = oci_registry.push("bridgeai/bridgeai-mlops", "1", b'{"v": 1}')
    v2 = oci_registry.push("bridgeai/bridgeai-mlops", "2", b'{"v": 2}')
    assert v1 != v2
    ref = resolve_digest(
        f"{oci_registry.host}/bridgeai/bridgeai-mlops:1",
        username=oci_registry.username,
        password=oci_registry.password,
    )
    assert ref == f"{oci_registry.host}/bridgeai/bridgeai-mlops@{v1}"


@pytest.mark.integration
def test_wrong_password_and_missing_tag_say_what_to_fix(oci_registry: Registry) -> None:
    oci_registry.push("bridgeai/bridgeai-mlops", "1", b'{"v": 1}')
    with pytest.raises(DigestLookupError, match="refused the credentials"):
        resolve_digest(
            f"{oci_registry.host}/bridgeai/bridgeai-mlops:1",
            username=oci_registry.username,
            password="wrong",
        )
    with pytest.raises(DigestLookupError, match="requires credentials"):
        resolve_digest(f"{oci_registry.host}/bridgeai/bridgeai-mlops:1")
    with pytest.raises(DigestLookupError, match=r"does not exist.*build-model-image"):
        resolve_digest(
            f"{oci_registry.host}/bridgeai/bridgeai-mlops:99",
            username=oci_registry.username,
            password=oci_registry.password,
        )


def test_unreachable_registry() -> None:
    from bridgeai import procs

    port = procs.free_port()
    with pytest.raises(DigestLookupError, match="unreachable"):
        resolve_digest(f"127.0.0.1:{port}/a/b:1", timeout=2)


@pytest.mark.integration
def test_the_api_host_is_asked_and_the_reference_keeps_the_nodes_host(
    oci_registry: Registry,
) -> None:
    """Inside a Kind pod the nodes' localhost:5000 is reached as kind-registry:5000."""
    digest = oci_registry.push("bridgeai/bridgeai-mlops", "3", b'{"v": 3}')
    ref = resolve_digest(
        "localhost:5000/bridgeai/bridgeai-mlops:3",
        username=oci_registry.username,
        password=oci_registry.password,
        insecure=True,
        api_host=oci_registry.host,
    )
    assert ref == f"localhost:5000/bridgeai/bridgeai-mlops@{digest}"
