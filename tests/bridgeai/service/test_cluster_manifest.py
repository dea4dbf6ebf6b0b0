"""The cluster manifest keeps the durability guarantee: readiness on /ready, each replica's spool
on its own persistent volume, and a drain on termination that the grace period covers."""

from __future__ import annotations

from typing import Any

import yaml

from bridgeai.service import ServiceSettings
from tests.support.env import REPO_ROOT

MANIFEST = REPO_ROOT / "deployments" / "kind" / "manifests" / "prediction-service.yaml"


def _workload() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    (workload,) = [d for d in docs if d["kind"] in ("StatefulSet", "Deployment")]
    return workload


def test_readiness_is_ready_and_liveness_is_health() -> None:
    (container,) = _workload()["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"


def test_each_replica_keeps_its_spool_on_its_own_persistent_volume() -> None:
    workload = _workload()
    assert workload["kind"] == "StatefulSet"
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    spool = env["BRIDGEAI_SPOOL_DIR"]
    assert not spool.startswith("/tmp")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == spool]
    (claim,) = [
        c
        for c in workload["spec"]["volumeClaimTemplates"]
        if c["metadata"]["name"] == mount["name"]
    ]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert workload["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    # Not also an emptyDir of the pod (which would die with it).
    assert mount["name"] not in {v["name"] for v in workload["spec"]["template"]["spec"].get(
        "volumes", []
    )}  # fmt: skip


def test_termination_drains_within_the_grace_period() -> None:
    spec = _workload()["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    settings = ServiceSettings()
    # preStop, then uvicorn's drain, then the log writer's flush (each up to shutdown_timeout).
    needed = float(command[1]) + 2 * settings.shutdown_timeout
    assert spec["terminationGracePeriodSeconds"] > needed
