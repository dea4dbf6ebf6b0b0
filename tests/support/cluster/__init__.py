"""Kubernetes for the tests, two ways.

* :mod:`.fake_kserve`: kmock's emulator as a pytest fixture plus a scripted KServe, for the deploy
  logic's unit tests (``tests/bridgeai/deploy/test_kserve.py``, ``tests/flows/test_deploy.py``);
* :mod:`.cluster`: the simulated cluster the ``cluster`` tests run on (``make test-cluster``): an
  in-memory API server (kmock's emulator, extended), a node agent running real containers, Job,
  Deployment and KServe controllers, Service addresses with TCP proxies, and real servers standing
  in for the cluster's services. See docs/kind.md for what is simulated and what is real.
"""

from tests.support.cluster.fake_kserve import (
    DEPLOYMENTS,
    EVENTS,
    ISVC,
    PODS,
    FakeKServe,
    api_client_for,
    declare_resources,
)

__all__ = [
    "DEPLOYMENTS",
    "EVENTS",
    "ISVC",
    "PODS",
    "FakeKServe",
    "api_client_for",
    "declare_resources",
]
