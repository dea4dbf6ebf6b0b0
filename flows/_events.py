"""The events that close the loop, and the resources that let exactly one automation pick each up.

Four events, each about one of our resources::

    bridgeai.data.versioned   resource bridgeai.data-version.<tag>          (data-ingestion)
    bridgeai.model.promoted   resource bridgeai.model-version.<name>.<n>    (model-training)
    bridgeai.model.rejected   resource bridgeai.model-version.<name>.<n>    (model-training)
    bridgeai.drift.detected   resource bridgeai.model.<name>                (drift-monitoring)

Every event names, as related resources, the work pool it belongs to
(``bridgeai.work-pool.<pool>``, role ``work-pool``) and the flow run that emitted it
(``prefect.flow-run.<id>``, role ``flow-run``), and its resource carries the label
``bridgeai.in-pipeline`` (``"true"`` / ``"false"``). The automations in ``prefect.yaml`` match on
those, so one event starts one run on one pool, and nothing inside an ``mlops-pipeline`` run
(which carries on by itself) starts a second one.

Prefect adds the deployment and work pool of a *deployment* run to its events by itself, but a
subflow has neither: its pool is taken here from the nearest ancestor run that has one (the
deployment of its parent). A flow run with no pool anywhere above it (a notebook, embedded
mode) emits events that no automation matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger

DATA_VERSIONED = "bridgeai.data.versioned"
MODEL_PROMOTED = "bridgeai.model.promoted"
MODEL_REJECTED = "bridgeai.model.rejected"
DRIFT_DETECTED = "bridgeai.drift.detected"

#: Prefix of the related resource that names the work pool: ``bridgeai.work-pool.<pool>``.
POOL_RESOURCE = "bridgeai.work-pool"
#: Label on every event's resource: "true" when emitted inside an mlops-pipeline run.
IN_PIPELINE_LABEL = "bridgeai.in-pipeline"
PIPELINE_FLOW = "mlops-pipeline"
#: How far up a tree of subflows to look for a pool (a guard against a malformed tree).
_MAX_DEPTH = 20


@dataclass(frozen=True)
class RunOrigin:
    """Where the running flow sits: its run, the pool it belongs to, the pipeline above it."""

    flow_run_id: str | None = None
    flow_run_name: str | None = None
    work_pool: str | None = None
    pipeline_run_id: str | None = None

    @property
    def in_pipeline(self) -> bool:
        """True when an ``mlops-pipeline`` run is this run's ancestor."""
        return self.pipeline_run_id is not None

    def related(self) -> list[dict[str, str]]:
        """The related resources every event of ours carries."""
        related = []
        if self.work_pool:
            related.append(
                {
                    "prefect.resource.id": f"{POOL_RESOURCE}.{self.work_pool}",
                    "prefect.resource.role": "work-pool",
                    "prefect.resource.name": self.work_pool,
                }
            )
        if self.flow_run_id:
            run = {
                "prefect.resource.id": f"prefect.flow-run.{self.flow_run_id}",
                "prefect.resource.role": "flow-run",
            }
            if self.flow_run_name:
                run["prefect.resource.name"] = self.flow_run_name
            related.append(run)
        if self.pipeline_run_id:
            related.append(
                {
                    "prefect.resource.id": f"prefect.flow-run.{self.pipeline_run_id}",
                    "prefect.resource.role": "pipeline",
                }
            )
        return related


def run_origin() -> RunOrigin:
    """The running flow's origin (empty outside a flow run).

    The pool is the running flow run's own (a deployment run), else the nearest ancestor's: a
    subflow runs wherever its parent's deployment put it.
    """
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None:
        return RunOrigin()
    pool: str | None = None
    pipeline: str | None = None
    with get_client(sync_client=True) as client:
        current: Any = run
        for _ in range(_MAX_DEPTH):
            if pool is None:
                pool = current.work_pool_name
                if pool is None and current.deployment_id is not None:
                    pool = client.read_deployment(current.deployment_id).work_pool_name
            if current is not run and client.read_flow(current.flow_id).name == PIPELINE_FLOW:
                pipeline = pipeline or str(current.id)
            if current.parent_task_run_id is None:
                break
            parent_task = client.read_task_run(current.parent_task_run_id)
            if parent_task.flow_run_id is None:
                break
            current = client.read_flow_run(parent_task.flow_run_id)
    return RunOrigin(
        flow_run_id=str(run.id),
        flow_run_name=run.name,
        work_pool=pool,
        pipeline_run_id=pipeline,
    )


def emit(
    event: str,
    resource: Mapping[str, str],
    *,
    payload: Mapping[str, Any],
    related: Iterable[Mapping[str, str]] = (),
    origin: RunOrigin | None = None,
) -> str | None:
    """Emit ``event`` about ``resource`` with our related resources; return its id.

    Returns None when Prefect has no events client (events disabled in its settings).
    """
    from prefect.events import emit_event

    origin = origin or run_origin()
    labels = {**resource, IN_PIPELINE_LABEL: "true" if origin.in_pipeline else "false"}
    emitted = emit_event(
        event=event,
        resource=labels,
        related=[dict(r) for r in related] + origin.related(),
        payload=dict(payload),
    )
    logger = get_run_logger()
    if emitted is None:
        logger.warning("%s not emitted: Prefect events are disabled", event)
        return None
    where = f"pool {origin.work_pool}" if origin.work_pool else "no work pool"
    inside = (
        ", inside mlops-pipeline run " + str(origin.pipeline_run_id) if origin.in_pipeline else ""
    )
    logger.info("Emitted %s about %s (%s%s)", event, labels["prefect.resource.id"], where, inside)
    return str(emitted.id)
