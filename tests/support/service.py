"""Fixtures for the prediction service's tests: fresh databases, a real model server process,
and the service itself running under uvicorn.

Import the fixtures a test module needs by name::

    from tests.support.service import pg_database_url  # noqa: F401
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresCluster


def fresh_database(cluster: PostgresCluster) -> str:
    """Create an empty database in ``cluster`` and return its ``postgresql://`` URL."""
    name = f"svc_{secrets.token_hex(5)}"
    cluster.psql(f"CREATE DATABASE {name}")
    return cluster.url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(cluster: PostgresCluster, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    cluster.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_database_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the session's cluster, dropped afterwards."""
    url = fresh_database(postgres_cluster)
    try:
        yield url
    finally:
        drop_database(postgres_cluster, url)
