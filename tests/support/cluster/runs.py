"""Flow runs on the simulated cluster, driven as a user drives them: ``prefect deployment run``,
then the Prefect API for states, logs and artifacts."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tests.support.cluster.cluster import BIN, SimulatedCluster
from tests.support.env import REPO_ROOT


@contextmanager
def prefect_client(cluster: SimulatedCluster) -> Iterator[Any]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: cluster.prefect_api}),
        get_client(sync_client=True) as client,
    ):
        yield client


def deployment_run(
    cluster: SimulatedCluster,
    name: str,
    parameters: Mapping[str, Any] | None = None,
    job_variables: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    """``prefect deployment run <name> -p k=v --job-variable k=v``; the new flow run's id."""
    argv = [str(BIN / "prefect"), "deployment", "run", name]
    for key, value in (parameters or {}).items():
        argv += ["--param", f"{key}={json.dumps(value)}"]
    for key, value in (job_variables or {}).items():
        argv += ["--job-variable", f"{key}={json.dumps(value)}"]
    result = subprocess.run(
        argv, cwd=REPO_ROOT, env={**_env(), **cluster.env()}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    match = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert match, output
    return uuid.UUID(match.group(1))


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def wait_final(cluster: SimulatedCluster, run_id: uuid.UUID, timeout: float) -> Any:
    """The flow run once its state is final (or whatever it is at the deadline)."""
    deadline = time.monotonic() + timeout
    with prefect_client(cluster) as client:
        while True:
            run = client.read_flow_run(run_id)
            if (run.state and run.state.is_final()) or time.monotonic() > deadline:
                return run
            time.sleep(3)


def wait_state(
    cluster: SimulatedCluster, run_id: uuid.UUID, names: set[str], timeout: float
) -> Any:
    deadline = time.monotonic() + timeout
    with prefect_client(cluster) as client:
        while True:
            run = client.read_flow_run(run_id)
            if (run.state and run.state.name in names) or time.monotonic() > deadline:
                return run
            time.sleep(1)


def logs(cluster: SimulatedCluster, run_id: uuid.UUID) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    records: list[Any] = []
    with prefect_client(cluster) as client:
        while True:  # the API answers at most 200 records a request
            page = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
                limit=200,
                offset=len(records),
            )
            records += page
            if len(page) < 200:
                break
    return "\n".join(f"{r.name} {r.level}: {r.message}" for r in records)


def artifacts(cluster: SimulatedCluster, run_ids: list[uuid.UUID]) -> dict[str, Any]:
    """key -> the latest artifact of that key made by any of ``run_ids``."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with prefect_client(cluster) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids))
        )
    return {a.key: a for a in sorted(found, key=lambda a: a.created) if a.key}


def subflow_runs(cluster: SimulatedCluster, run_id: uuid.UUID) -> dict[str, Any]:
    """flow name -> child flow run of ``run_id``."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with prefect_client(cluster) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])
            )
        )
        flows = {f.id: f.name for f in client.read_flows()}
    return {flows[c.flow_id]: c for c in children}


def table(artifact: Any) -> dict[str, str]:
    """A field/value table artifact as a dict."""
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {row["field"]: row["value"] for row in rows}


def jobs_of(cluster: SimulatedCluster, run_id: uuid.UUID) -> list[dict[str, Any]]:
    return cluster.list("batch/v1/jobs", labels=f"prefect.io/flow-run-id={run_id}")


def pods_of(cluster: SimulatedCluster, run_id: uuid.UUID) -> list[dict[str, Any]]:
    return cluster.list("v1/pods", labels=f"prefect.io/flow-run-id={run_id}")


def wait_job_finished(cluster: SimulatedCluster, run_id: uuid.UUID, timeout: float = 120) -> None:
    """Wait until every Job of the run has a Complete or Failed condition (the engine reports
    the run's final state before its process, and so its container, has exited)."""

    def finished(job: dict[str, Any]) -> bool:
        conditions = (job.get("status") or {}).get("conditions") or []
        return any(
            c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions
        )

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = jobs_of(cluster, run_id)
        if jobs and all(finished(j) for j in jobs):
            return
        time.sleep(1)
    raise AssertionError(f"the Jobs of run {run_id} did not finish within {timeout:.0f} s")


def describe(cluster: SimulatedCluster, run_id: uuid.UUID) -> str:
    """What to print when a run did not end as expected: state, logs, Jobs, pods, worker log."""
    run = wait_final(cluster, run_id, 0)
    return (
        f"state: {run.state}\n--- logs:\n{logs(cluster, run_id)[-6000:]}\n"
        f"--- jobs: {json.dumps([j.get('status') for j in jobs_of(cluster, run_id)])}\n"
        f"--- pods: {json.dumps([p.get('status') for p in pods_of(cluster, run_id)])[-3000:]}\n"
        f"--- worker:\n{cluster.worker_log[-3000:]}"
    )
