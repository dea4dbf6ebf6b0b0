"""The local stack with every deployment registered, as a user has it after the README's steps.

``deployed_stack(home, **env)`` runs ``bridgeai up``, creates the work pools and runs
``prefect --no-prompt deploy --all``, yields the user's environment (what ``bridgeai env``
exports) and runs ``bridgeai down`` at the end. The helpers read the flow runs, events and
automations back through the Prefect API.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from tests.support.env import REPO_ROOT
from tests.support.stack import BIN, cli, exported, stack_env


def run(argv: list[str], env: dict[str, str], timeout: float = 600) -> str:
    """Run a command from the repository; fail with its output unless it succeeds."""
    result = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(argv)}:\n{output[-4000:]}"
    return output


@contextmanager
def deployed_stack(home: Path, **extra: str) -> Iterator[dict[str, str]]:
    """`bridgeai up`, both work pools, `prefect deploy --all`; `bridgeai down` afterwards."""
    env = stack_env(home, **extra)
    try:
        up = cli(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        user = exported(env)
        run(
            ["bash", str(REPO_ROOT / "deployments/work-pools/create-pools.sh")],
            {**user, "PREFECT": str(BIN / "prefect")},
        )
        run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], user)
        yield user
    finally:
        down = cli(env, "down")
        assert down.returncode == 0, down.stderr


def prefect(user: dict[str, str], *args: str) -> str:
    """Run the ``prefect`` CLI as the user (against the stack's server)."""
    return run([str(BIN / "prefect"), *args], user)


def deployment_run(user: dict[str, str], name: str, **parameters: str) -> UUID:
    """``prefect deployment run NAME --param k=v ...``; return the created flow run's id."""
    import json

    argv = ["deployment", "run", name]
    for key, value in parameters.items():
        argv += ["--param", f"{key}={json.dumps(value)}"]
    output = prefect(user, *argv)
    found = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert found, output
    return UUID(found.group(1))


def wait_final(client: Any, flow_run_id: UUID, timeout: float = 900) -> Any:
    """The flow run once it reached a final state."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.read_flow_run(flow_run_id)
        if run.state and run.state.is_final():
            return run
        assert time.monotonic() < deadline, f"flow run {flow_run_id} still {run.state}"
        time.sleep(2)


def runs_of(client: Any, deployment_id: UUID) -> list[Any]:
    """Every flow run of a deployment, oldest first."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
    )


def wait_for_runs(
    client: Any, deployment_id: UUID, count: int, timeout: float = 1200, log: Path | None = None
) -> list[Any]:
    """Wait until the deployment has ``count`` flow runs, all final; return them."""
    deadline = time.monotonic() + timeout
    while True:
        found = runs_of(client, deployment_id)
        if len(found) >= count and all(r.state and r.state.is_final() for r in found):
            return found
        if time.monotonic() > deadline:
            tail = log.read_text()[-6000:] if log and log.exists() else ""
            states = [(r.name, r.state and r.state.type) for r in found]
            raise AssertionError(f"{len(found)}/{count} runs, states {states}\n{tail}")
        time.sleep(3)


def triggering_event(client: Any, flow_run_id: UUID) -> Any:
    """The event whose automation created ``flow_run_id`` (its parent in the Prefect API).

    Prefect records each action an automation takes as ``prefect.automation.action.executed``,
    related to the flow run it created and to the event that triggered it.
    """
    from prefect.events.filters import (
        EventFilter,
        EventIDFilter,
        EventNameFilter,
        EventRelatedFilter,
    )

    deadline = time.monotonic() + 120
    while True:
        page = client.read_events(
            EventFilter(
                event=EventNameFilter(name=["prefect.automation.action.executed"]),
                related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
            ),
            limit=10,
        )
        if page.events:
            break
        assert time.monotonic() < deadline, f"no automation action created {flow_run_id}"
        time.sleep(2)
    (executed,) = page.events
    (trigger,) = [r for r in executed.related if r.role == "triggering-event"]
    event_id = UUID(trigger.id.removeprefix("prefect.event."))
    found = client.read_events(EventFilter(id=EventIDFilter(id=[event_id])), limit=10).events
    assert found, f"the triggering event {event_id} is not in the API"
    return found[0]


def emitted(client: Any, name: str, flow_run_id: UUID, wait: float = 0.0) -> list[Any]:
    """The events called ``name`` that name ``flow_run_id`` as their flow run.

    The server stores events in batches, seconds after a flow run sent them (its event
    persister flushes every few seconds), so a run that has just finished may not show its
    events yet: ``wait`` is how long to keep asking while none is there.
    """
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    deadline = time.monotonic() + wait
    while True:
        page = client.read_events(
            EventFilter(
                event=EventNameFilter(name=[name]),
                related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
            ),
            limit=10,
        )
        if page.events or time.monotonic() >= deadline:
            return list(page.events)
        time.sleep(0.5)


def artifacts_of(client: Any, flow_run_id: UUID) -> dict[str, Any]:
    """The artifacts a flow run published, by key."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    return {a.key: a for a in found}


def related_ids(event: Any, role: str) -> list[str]:
    return [r.id for r in event.related if r.role == role]
