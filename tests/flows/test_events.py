"""Our events name their work pool and flow run, so one automation picks each up (issue 14).

Against the session's real Prefect API: a flow run created from a deployment on a work pool, a
subflow of it (which has no deployment or pool of its own), a flow run with no deployment, and
a subflow of an ``mlops-pipeline`` run. Each emits an event that is read back from the API.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import pytest
from prefect import flow

from flows._events import IN_PIPELINE_LABEL, emit, run_origin
from tests.support.drift import wait_for_event

pytestmark = pytest.mark.usefixtures("prefect_harness")

EVENT = "bridgeai.test.emitted"


@flow(name="event-emitter")
def emitter() -> dict[str, Any]:
    origin = run_origin()
    event_id = emit(
        EVENT,
        {"prefect.resource.id": f"bridgeai.test.{secrets.token_hex(4)}"},
        payload={"n": 1},
        related=[
            {
                "prefect.resource.id": "bridgeai.data-version.data-v9.9.9",
                "prefect.resource.role": "data-version",
            }
        ],
    )
    return {"event_id": event_id, "pool": origin.work_pool, "run": origin.flow_run_id}


@flow(name="event-parent")
def parent() -> dict[str, Any]:
    return emitter()


@flow(name="mlops-pipeline")
def fake_pipeline() -> dict[str, Any]:
    return emitter()


def _related(event: Any) -> dict[str, str]:
    return {r.id: r.role for r in event.related}


def _run_from_deployment(entry: Any, pool: str) -> dict[str, Any]:
    """Create a flow run of ``entry`` from a deployment on ``pool`` and run it here."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.flow_engine import run_flow

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployment_id = entry.to_deployment(
        name=f"events-{secrets.token_hex(3)}", work_pool_name=pool
    ).apply()
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(deployment_id)
        flow_run = client.read_flow_run(flow_run.id)
    return run_flow(entry, flow_run=flow_run)


def test_a_flow_run_without_a_deployment_names_no_pool() -> None:
    result = emitter()
    assert result["pool"] is None
    event = wait_for_event(result["event_id"])
    assert event.event == EVENT
    assert event.resource[IN_PIPELINE_LABEL] == "false"
    related = _related(event)
    assert related[f"prefect.flow-run.{result['run']}"] == "flow-run"
    assert related["bridgeai.data-version.data-v9.9.9"] == "data-version"
    assert not [r for r in related if r.startswith("bridgeai.work-pool.")]


def test_a_subflow_names_the_pool_of_its_parents_deployment() -> None:
    pool = f"events-pool-{secrets.token_hex(3)}"
    result = _run_from_deployment(parent, pool)
    assert result["pool"] == pool
    event = wait_for_event(result["event_id"])
    related = _related(event)
    assert related[f"bridgeai.work-pool.{pool}"] == "work-pool"
    # the subflow's own run, not its parent's
    assert related[f"prefect.flow-run.{result['run']}"] == "flow-run"
    assert event.resource[IN_PIPELINE_LABEL] == "false"


def test_a_deployment_run_names_its_own_pool() -> None:
    pool = f"events-pool-{secrets.token_hex(3)}"
    result = _run_from_deployment(emitter, pool)
    event = wait_for_event(result["event_id"])
    assert _related(event)[f"bridgeai.work-pool.{pool}"] == "work-pool"


def test_events_from_inside_the_pipeline_say_so() -> None:
    state = fake_pipeline(return_state=True)
    pipeline_run = str(state.state_details.flow_run_id)
    result = state.result()
    event = wait_for_event(result["event_id"])
    assert event.resource[IN_PIPELINE_LABEL] == "true"
    assert _related(event)[f"prefect.flow-run.{pipeline_run}"] == "pipeline"


def test_outside_a_flow_run_there_is_no_origin() -> None:
    origin = run_origin()
    assert origin.flow_run_id is None and origin.work_pool is None and not origin.in_pipeline
    assert origin.related() == []
