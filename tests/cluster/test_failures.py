"""A misconfigured cluster fails loudly, and runs can be stopped.

* without the DataRepository block, ingestion's run fails naming the block and how to create it;
* with a Secret missing, the pod stays in CreateContainerConfigError (the simulated kubelet's
  reason and message are the real one's), the Job fails at its deadline (activeDeadlineSeconds),
  the run ends Crashed, and the Secret and its keys are in the run's logs and state message (the
  job reporter, bridgeai.ops.job_reporter, says so: the unmodified worker does not);
* cancelling a run (the API call the UI's Cancel button makes) deletes its Job and stops its
  container, for a run whose pod never started (the worker deletes the Job) and for a running one
  (its runner stops the flow; the job reporter deletes what is left);
* a container killed for memory ends its run Crashed with the reason.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.cluster import runs
from tests.support.cluster.cluster import SimulatedCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]


def _container_gone(cluster: SimulatedCluster, container_id: str) -> bool:
    from docker.errors import NotFound

    try:
        return cluster.docker.containers.get(container_id).status in ("exited", "dead")
    except NotFound:
        return True


def _wait(predicate, timeout: float, interval: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def _waiting_reason(cluster: SimulatedCluster, run_id: uuid.UUID) -> tuple[str, str] | None:
    for pod in runs.pods_of(cluster, run_id):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = status.get("state", {}).get("waiting")
            if waiting:
                return waiting.get("reason"), waiting.get("message", "")
    return None


def test_without_the_data_repository_block_ingestion_fails_naming_it(
    sim_cluster: SimulatedCluster, housing_sources
) -> None:
    run_id = runs.deployment_run(
        sim_cluster,
        "data-ingestion/kind",
        {"source": housing_sources["HousingData.csv"], "repository_block": "never-saved"},
    )
    run = runs.wait_final(sim_cluster, run_id, 600)
    assert run.state.is_failed(), runs.describe(sim_cluster, run_id)
    text = runs.logs(sim_cluster, run_id) + (run.state.message or "")
    assert "no DataRepository block (type bridgeai-data-repository) named 'never-saved'" in text
    assert "configure_blocks.py" in text


@pytest.fixture
def missing_s3_secret(sim_cluster: SimulatedCluster):
    """The Secret the flows' S3 credentials come from, deleted for the test, then restored."""
    saved = sim_cluster.secrets["bridgeai-s3"]
    sim_cluster.delete_secret("bridgeai-s3")
    try:
        yield
    finally:
        sim_cluster.create_secret("bridgeai-s3", saved)


def test_a_missing_secret_keeps_the_pod_waiting_and_crashes_the_run_at_the_deadline(
    sim_cluster: SimulatedCluster, missing_s3_secret
) -> None:
    deadline = 45
    run_id = runs.deployment_run(
        sim_cluster,
        "data-ingestion/kind",
        job_variables={"active_deadline_seconds": deadline},
    )
    assert _wait(lambda: _waiting_reason(sim_cluster, run_id) is not None, 120)
    reason, message = _waiting_reason(sim_cluster, run_id) or ("", "")
    assert (reason, message) == ("CreateContainerConfigError", 'secret "bridgeai-s3" not found')
    events = sim_cluster.list("v1/events")
    assert any(e["message"] == 'Error: secret "bridgeai-s3" not found' for e in events)

    run = runs.wait_final(sim_cluster, run_id, deadline + 120)
    assert run.state.is_crashed(), runs.describe(sim_cluster, run_id)
    (job,) = runs.jobs_of(sim_cluster, run_id)
    failed = {c["type"]: c for c in job["status"]["conditions"]}["Failed"]
    assert failed["reason"] == "DeadlineExceeded"
    text = runs.logs(sim_cluster, run_id) + "\n" + (run.state.message or "")
    assert 'secret "bridgeai-s3" not found' in text
    assert "access-key-id (AWS_ACCESS_KEY_ID)" in text
    assert "secret-access-key (AWS_SECRET_ACCESS_KEY)" in text
    assert "DeadlineExceeded" in (run.state.message or "")


def test_cancelling_a_run_whose_pod_never_started_deletes_its_job(
    sim_cluster: SimulatedCluster, missing_s3_secret
) -> None:
    from prefect.states import Cancelling

    run_id = runs.deployment_run(sim_cluster, "data-ingestion/kind")
    assert _wait(lambda: _waiting_reason(sim_cluster, run_id) is not None, 120)
    (job,) = runs.jobs_of(sim_cluster, run_id)
    with runs.prefect_client(sim_cluster) as client:
        client.set_flow_run_state(run_id, Cancelling(message="cancelled by the test"))
    run = runs.wait_final(sim_cluster, run_id, 120)
    assert run.state.is_cancelled(), runs.describe(sim_cluster, run_id)
    assert _wait(lambda: not runs.jobs_of(sim_cluster, run_id), 60), "the Job is still there"
    assert _wait(lambda: not runs.pods_of(sim_cluster, run_id), 90), "its pod is still there"
    assert job["metadata"]["name"] in sim_cluster.worker_log


def test_cancelling_a_running_run_stops_its_container_and_deletes_its_job(
    sim_cluster: SimulatedCluster,
) -> None:
    from prefect.states import Cancelling

    run_id = runs.deployment_run(
        sim_cluster, "model-training/kind", {"data_version": "data-latest", "search": True}
    )
    run = runs.wait_state(sim_cluster, run_id, {"Running"}, 600)
    assert run.state.name == "Running", runs.describe(sim_cluster, run_id)
    (pod,) = runs.pods_of(sim_cluster, run_id)
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
    with runs.prefect_client(sim_cluster) as client:
        client.set_flow_run_state(run_id, Cancelling(message="cancelled by the test"))
    run = runs.wait_final(sim_cluster, run_id, 180)
    assert run.state.is_cancelled(), runs.describe(sim_cluster, run_id)
    assert _wait(lambda: _container_gone(sim_cluster, container_id), 120)
    assert _wait(lambda: not runs.jobs_of(sim_cluster, run_id), 120), "the Job is still there"


def test_a_container_killed_for_memory_ends_its_run_crashed_with_the_reason(
    sim_cluster: SimulatedCluster, housing_sources
) -> None:
    run_id = runs.deployment_run(
        sim_cluster,
        "data-ingestion/kind",
        {"source": housing_sources["HousingData.csv"]},
        job_variables={"memory_limit": "160Mi", "memory_request": "160Mi"},
    )
    run = runs.wait_final(sim_cluster, run_id, 600)
    assert run.state.is_crashed(), runs.describe(sim_cluster, run_id)
    runs.wait_job_finished(sim_cluster, run_id)  # the run may be Crashed before the container ends
    (pod,) = runs.pods_of(sim_cluster, run_id)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled"
    # The engine killed for memory is the flow's process (Prefect's message says so) or the
    # container's first one (the job reporter's Crashed message says so); either way the run's
    # logs carry the kubelet's reason and the limit.
    assert "memory" in (run.state.message or ""), run.state.message
    expected = ("OOMKilled", "killed for memory", "memory limit 160Mi")

    def reported() -> bool:  # the job reporter writes its log line once it sees the pod end
        text = runs.logs(sim_cluster, run_id) + "\n" + (run.state.message or "")
        return all(part in text for part in expected)

    assert _wait(reported, 90), runs.describe(sim_cluster, run_id)
