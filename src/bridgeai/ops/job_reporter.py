"""What the Kubernetes worker does not tell a flow run: why its pod never started, or died.

The ``prefect-kubernetes`` worker (0.8) creates a flow run's Job and leaves the rest to its
observer, which marks the run Crashed when the Job fails ("No active or succeeded pods found for
any job") and logs a diagnosis only for image pulls, crash loops, OOM kills and scheduling. A pod
whose Secret is missing sits in ``CreateContainerConfigError``: the observer says nothing, and the
run stays Pending until the Job's deadline, with no word of the Secret. This reporter runs beside
the worker (``deployments/kind/manifests/job-reporter.yaml``) and, for every pod labelled with a
flow run:

* logs to that run, once per pod and reason, why its container cannot start or why it ended:
  the waiting reason and the kubelet's message, for a missing Secret or key also which keys
  the container asks for and how to create them; a container killed for memory with its limit;
* when the Job fails (its deadline, its back-off limit) while the run is not final, sets the run
  Crashed with a message that says why (the Job's reason and the pod's last problem);
* deletes the Job of a run that ended Cancelled (or stayed Cancelling over a minute): the worker
  deletes only the Jobs of runs that had not started, and a running run's own runner stops the
  flow but leaves its Job and pod behind.

Run it in the cluster (in-cluster credentials, ``PREFECT_API_URL``) with
``python -m bridgeai.ops.job_reporter --namespace bridgeai``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("bridgeai.job_reporter")

FLOW_RUN_LABEL = "prefect.io/flow-run-id"
#: Waiting reasons that mean the container will not start by itself.
STUCK_REASONS = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "InvalidImageName",
        "ErrImagePull",
        "ImagePullBackOff",
    }
)
_MISSING_SECRET = re.compile(r'secret "(?P<name>[^"]+)" not found')
_MISSING_KEY = re.compile(r"couldn't find key (?P<key>\S+) in Secret (?P<ns>[^/\s]+)/(?P<name>\S+)")


@dataclass(frozen=True)
class Problem:
    """Why one pod's container does not run (or no longer does)."""

    pod: str
    reason: str
    message: str

    def text(self) -> str:
        return f"pod {self.pod}: {self.reason}: {self.message}"


def _secret_needs(pod: Mapping[str, Any], secret: str) -> list[str]:
    """``key (VARIABLE)`` for every env entry of the pod that reads ``secret``."""
    needs = []
    for container in pod.get("spec", {}).get("containers", []):
        for entry in container.get("env") or []:
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref.get("name") == secret and not ref.get("optional"):
                needs.append(f"{ref.get('key')} ({entry.get('name')})")
    return needs


def _explain_config_error(pod: Mapping[str, Any], message: str) -> str:
    namespace = pod.get("metadata", {}).get("namespace", "default")
    missing = _MISSING_SECRET.search(message)
    if missing:
        name = missing["name"]
        needs = _secret_needs(pod, name)
        literals = " ".join(f"--from-literal={n.split(' ')[0]}=..." for n in needs)
        return (
            f"{message}: the container needs Secret {name!r} in namespace {namespace!r} with "
            f"key(s) {', '.join(needs) or '(see the pod spec)'}; create it "
            f"(`kubectl -n {namespace} create secret generic {name} {literals}`, or re-run "
            "deployments/kind/up.sh)"
        )
    missing_key = _MISSING_KEY.search(message)
    if missing_key:
        name, key = missing_key["name"], missing_key["key"]
        return (
            f"{message}: Secret {name!r} in namespace {missing_key['ns']!r} exists but has no "
            f"key {key!r}; add it (`kubectl -n {missing_key['ns']} edit secret {name}`)"
        )
    return message


def diagnose(pod: Mapping[str, Any]) -> Problem | None:
    """The pod's problem, if its container is stuck or ended badly; None while all is well."""
    name = pod.get("metadata", {}).get("name", "?")
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            message = waiting.get("message") or ""
            if waiting["reason"] in ("CreateContainerConfigError", "CreateContainerError"):
                message = _explain_config_error(pod, message)
            return Problem(name, waiting["reason"], message)
        terminated = state.get("terminated") or {}
        if terminated.get("reason") == "OOMKilled":
            limit = _memory_limit(pod, container.get("name"))
            code = terminated.get("exitCode")
            who = (
                f"container {container.get('name')!r} was killed for memory (exit code {code}"
                if code == 137
                else f"a process in container {container.get('name')!r} was killed for memory "
                f"(the container exited with code {code}"
            )
            return Problem(
                name,
                "OOMKilled",
                f"{who}, memory limit {limit}): raise the deployment's memory_limit job variable",
            )
        code = terminated.get("exitCode", 0)
        if terminated and code != 0:
            reason = terminated.get("reason") or "Error"
            return Problem(
                name, reason, f"container {container.get('name')!r} exited with code {code}"
            )
    return None


def _memory_limit(pod: Mapping[str, Any], container_name: str | None) -> str:
    for container in pod.get("spec", {}).get("containers", []):
        if container.get("name") == container_name:
            return str(
                ((container.get("resources") or {}).get("limits") or {}).get("memory", "none")
            )
    return "none"


def job_failure(job: Mapping[str, Any]) -> str | None:
    """``reason: message`` of the Job's Failed condition, or None while it has not failed."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return f"{condition.get('reason', 'Failed')}: {condition.get('message', '')}".strip()
    return None


@dataclass
class Reporter:
    """One pass per :meth:`tick` over the flow-run pods and Jobs of a namespace."""

    core: Any  # kubernetes.client.CoreV1Api
    batch: Any  # kubernetes.client.BatchV1Api
    prefect: Any  # prefect's SyncPrefectClient
    namespace: str
    _logged: set[tuple[str, str]] = field(default_factory=set)
    _last_problem: dict[str, Problem] = field(default_factory=dict)
    _crashed: set[str] = field(default_factory=set)
    _settled: set[str] = field(default_factory=set)
    _cancelling_since: dict[str, float] = field(default_factory=dict)
    cancel_grace: float = 60.0

    def _list(self, call: Any) -> list[dict[str, Any]]:
        listing = call(self.namespace, label_selector=FLOW_RUN_LABEL)
        items = self.core.api_client.sanitize_for_serialization(listing).get("items", [])
        return list(items)

    def tick(self) -> None:
        for pod in self._list(self.core.list_namespaced_pod):
            problem = diagnose(pod)
            labels = pod.get("metadata", {}).get("labels") or {}
            run_id = labels.get(FLOW_RUN_LABEL)
            if problem is None or not run_id:
                continue
            job = labels.get("job-name") or labels.get("batch.kubernetes.io/job-name") or ""
            self._last_problem[job] = problem
            key = (pod.get("metadata", {}).get("uid", problem.pod), problem.reason)
            if key not in self._logged:
                self._logged.add(key)
                self._log(run_id, f"Kubernetes: {problem.text()}")
        for job in self._list(self.batch.list_namespaced_job):
            failure = job_failure(job)
            meta = job.get("metadata", {})
            run_id = (meta.get("labels") or {}).get(FLOW_RUN_LABEL)
            uid = meta.get("uid", meta.get("name", ""))
            if failure is None or not run_id or uid in self._crashed:
                continue
            self._crashed.add(uid)
            problem = self._last_problem.get(meta.get("name", ""))
            message = f"Kubernetes Job {meta.get('name')} failed ({failure})"
            if problem is not None:
                message += f"; {problem.text()}"
            self._crash(run_id, message)
        for job in self._list(self.batch.list_namespaced_job):
            self._clean_up_cancelled(job)

    def _clean_up_cancelled(self, job: Mapping[str, Any]) -> None:
        meta = job.get("metadata", {})
        run_id = (meta.get("labels") or {}).get(FLOW_RUN_LABEL)
        uid = meta.get("uid", meta.get("name", ""))
        if not run_id or uid in self._settled or meta.get("deletionTimestamp"):
            return
        state = self.prefect.read_flow_run(uuid.UUID(run_id)).state
        if state is None:
            return
        cancelling_too_long = False
        if state.is_cancelling():
            since = self._cancelling_since.setdefault(uid, time.monotonic())
            cancelling_too_long = time.monotonic() - since > self.cancel_grace
        if state.is_cancelled() or cancelling_too_long:
            self._settled.add(uid)
            self.batch.delete_namespaced_job(
                meta["name"], self.namespace, propagation_policy="Background"
            )
            self._log(run_id, f"Kubernetes: deleted Job {meta['name']} of the cancelled run")
            if cancelling_too_long:  # nobody else will: the run's pod never reported back
                from prefect.states import Cancelled

                self.prefect.set_flow_run_state(
                    uuid.UUID(run_id),
                    Cancelled(message=f"cancelled; Kubernetes Job {meta['name']} deleted"),
                    force=True,
                )
        elif state.is_final():
            self._settled.add(uid)

    def _log(self, run_id: str, message: str) -> None:
        from prefect.client.schemas.actions import LogCreate

        logger.warning("flow run %s: %s", run_id, message)
        self.prefect.create_logs(
            [
                LogCreate(
                    name="bridgeai.job_reporter",
                    level=logging.ERROR,
                    message=message,
                    timestamp=datetime.now(UTC),
                    flow_run_id=uuid.UUID(run_id),
                )
            ]
        )

    def _crash(self, run_id: str, message: str) -> None:
        from prefect.states import Crashed

        run = self.prefect.read_flow_run(uuid.UUID(run_id))
        if run.state is not None and run.state.is_final():
            logger.info("flow run %s is already %s: %s", run_id, run.state.name, message)
            return
        self._log(run_id, message)
        self.prefect.set_flow_run_state(uuid.UUID(run_id), Crashed(message=message), force=True)
        logger.warning("flow run %s marked Crashed: %s", run_id, message)


def _clients() -> tuple[Any, Any]:
    from kubernetes import client, config

    try:
        config.load_incluster_config()
        api = client.ApiClient()
    except config.ConfigException:
        api = config.new_client_from_config()
    return client.CoreV1Api(api), client.BatchV1Api(api)


def run(namespace: str, interval: float, iterations: Iterable[int] | None = None) -> None:
    """Report until stopped (or for ``iterations`` passes); API errors are logged and retried."""
    from prefect.client.orchestration import get_client

    core, batch = _clients()
    with get_client(sync_client=True) as prefect:
        reporter = Reporter(core, batch, prefect, namespace)
        passes = iterations if iterations is not None else itertools.count()
        for _ in passes:
            try:
                reporter.tick()
            except Exception:
                logger.exception("report pass failed; retrying in %.0f s", interval)
            time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--namespace", default="bridgeai")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one request per run every pass
    logger.info("reporting on flow-run pods in namespace %s", args.namespace)
    run(args.namespace, args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
