"""Fixtures of the deploy tests: the CI Docker engine and registry (``tests/support/docker.py``)."""

from tests.support.docker import docker_env  # noqa: F401  (a fixture, made visible here)
