"""The simulated control plane's controllers: Job, Deployment, garbage collector, volumes, Services,
and a KServe controller stand-in. Each is level-triggered: every pass reads the objects and moves
the world one step towards them, as Kubernetes' controllers do.

* **Job**: one pod at a time (``completions``/``parallelism`` 1, as the work-pool template sets),
  named ``<job>-<5 chars>`` with the labels the real controller adds (``job-name``,
  ``controller-uid`` and their ``batch.kubernetes.io/`` forms) and an owner reference;
  ``status.active/succeeded/failed/ready``, ``startTime``, ``completionTime``; a pod that fails
  beyond ``backoffLimit`` fails the Job (``BackoffLimitExceeded``), and ``activeDeadlineSeconds``
  fails it with ``DeadlineExceeded`` after deleting its pods (counted failed), with the
  ``FailureTarget`` then ``Failed`` conditions of Kubernetes 1.31+; ``ttlSecondsAfterFinished``.
* **Deployment**: pods labelled with a ``pod-template-hash``; ``RollingUpdate`` (1 replica: surge
  one new pod, delete the old ones once it is ready) or ``Recreate``; ``status`` with
  ``observedGeneration``, ``replicas``, ``updatedReplicas``, ``readyReplicas``,
  ``availableReplicas`` and the ``Available``/``Progressing`` conditions. A Deployment whose
  service stands in on this machine (``sim.bridgeai.dev/stand-in``) gets no pods: it is reported
  available while its stand-in answers.
* **garbage collector**: objects whose owner (by uid) is gone are deleted, pods gracefully.
* **PersistentVolumeClaims** are ``Bound`` at once (the node agent gives each a folder).
* **Services** get their loopback address (``spec.clusterIP``) and proxy from the network.
* **KServe** (RawDeployment mode): an ``InferenceService`` becomes the Deployment
  ``<name>-predictor`` running its predictor container (the image by digest, as given), with the
  labels KServe puts on it, and the Service ``<name>-predictor`` (port 80 to the first container
  port); its conditions (``PredictorReady``, ``IngressReady``, ``Ready``) follow the Deployment's
  ``Available`` condition for the current generation, with ``status.url`` and
  ``status.address.url``. A patched predictor rolls the Deployment to the new image.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import secrets
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.support.cluster.api import ApiError, SimulatedAPI, now_rfc3339
from tests.support.cluster.network import ClusterNetwork, Service, ServicePort

logger = logging.getLogger("sim.controllers")
STAND_IN = "sim.bridgeai.dev/stand-in"
ISVC = "serving.kserve.io/v1beta1/inferenceservices"
_SUFFIX = string.ascii_lowercase + string.digits


def _owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    uid = owner["metadata"]["uid"]
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def _owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _finished(pod: dict[str, Any]) -> str | None:
    phase = (pod.get("status") or {}).get("phase")
    return phase if phase in ("Succeeded", "Failed") else None


def _seconds_since(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds()


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return digest[:10]


class Controllers:
    """Every controller's pass, run on the API's loop by :meth:`run`."""

    def __init__(
        self,
        api: SimulatedAPI,
        network: ClusterNetwork,
        stand_in_health: Callable[[str, str], bool],
    ) -> None:
        self.api = api
        self.network = network
        #: (namespace, deployment name) -> does the stand-in answer?
        self.stand_in_health = stand_in_health
        #: Job uid -> uids of its pods already counted as succeeded or failed (the real
        #: controller tracks them with a pod finalizer; memory is enough here).
        self._counted: dict[str, set[str]] = {}

    async def run(self, interval: float = 0.5) -> None:
        while True:
            for step in (
                self.garbage_collect,
                self.claims,
                self.services,
                self.kserve,
                self.deployments,
                self.statefulsets,
                self.jobs,
            ):
                try:
                    result = step()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    logger.exception("controller %s failed", step.__name__)
            await asyncio.sleep(interval)

    # -- garbage collector ----------------------------------------------------------------------
    def garbage_collect(self) -> None:
        alive = set()
        everything = []
        for key in (
            "batch/v1/jobs", "apps/v1/deployments", "apps/v1/statefulsets", "v1/pods",
            "v1/services", ISVC,
        ):  # fmt: skip
            for obj in self.api.list(key):
                alive.add(obj["metadata"]["uid"])
                everything.append((key, obj))
        for key, obj in everything:
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and not any(r.get("uid") in alive for r in refs):
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    continue
                logger.info("gc: %s %s/%s (owner gone)", key, meta.get("namespace"), meta["name"])
                with contextlib.suppress(ApiError):
                    self.api.delete(key, meta.get("namespace"), meta["name"])

    # -- volumes ----------------------------------------------------------------------------------
    def claims(self) -> None:
        for claim in self.api.list("v1/persistentvolumeclaims"):
            if (claim.get("status") or {}).get("phase") != "Bound":
                meta = claim["metadata"]
                claim["status"] = {
                    "phase": "Bound",
                    "accessModes": claim.get("spec", {}).get("accessModes", ["ReadWriteOnce"]),
                    "capacity": claim.get("spec", {}).get("resources", {}).get("requests", {}),
                }
                self.api.replace(
                    "v1/persistentvolumeclaims", meta["namespace"], meta["name"], claim
                )

    # -- services ---------------------------------------------------------------------------------
    async def services(self) -> None:
        for svc in self.api.list("v1/services"):
            meta, spec = svc["metadata"], svc.get("spec") or {}
            key = (meta["namespace"], meta["name"])
            if key not in self.network.services:
                ports = [
                    ServicePort(int(p["port"]), p.get("targetPort", p["port"]), p.get("name"))
                    for p in spec.get("ports") or []
                ]
                registered = await self.network.add_service(
                    meta["namespace"], meta["name"], ports, spec.get("selector")
                )
                spec["clusterIP"] = registered.address
                spec["clusterIPs"] = [registered.address]
                svc["spec"] = spec
                self.api.replace("v1/services", meta["namespace"], meta["name"], svc)

    def endpoints(self, service: Service) -> list[tuple[int, dict[str, int]]]:
        """(pid, named container ports) of the ready pods behind ``service``."""
        from tests.support.cluster.kubelet import NodeAgent

        agent: NodeAgent | None = getattr(self, "agent", None)
        if not service.selector or agent is None:
            return []
        out = []
        for pod in self.api.list("v1/pods", service.namespace):
            labels = pod["metadata"].get("labels") or {}
            if pod["metadata"].get("deletionTimestamp") or not _pod_ready(pod):
                continue
            if not all(labels.get(k) == v for k, v in service.selector.items()):
                continue
            runtime = agent.pods.get(pod["metadata"]["uid"])
            if runtime is None or runtime.pid is None:
                continue
            named = {
                p["name"]: int(p["containerPort"])
                for c in pod["spec"]["containers"]
                for p in c.get("ports") or []
                if p.get("name")
            }
            out.append((runtime.pid, named))
        return out

    # -- Jobs -------------------------------------------------------------------------------------
    def jobs(self) -> None:
        for job in self.api.list("batch/v1/jobs"):
            meta, spec = job["metadata"], job.get("spec") or {}
            status = dict(job.get("status") or {})
            if meta.get("deletionTimestamp"):
                continue
            conditions = status.get("conditions") or []
            done = any(
                c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions
            )
            pods = [p for p in self.api.list("v1/pods", meta["namespace"]) if _owned_by(p, job)]
            if done:
                ttl = spec.get("ttlSecondsAfterFinished")
                if ttl is not None and _seconds_since(status.get("completionTime")) > float(ttl):
                    self.api.delete("batch/v1/jobs", meta["namespace"], meta["name"])
                continue
            status.setdefault("startTime", now_rfc3339())
            counted = self._counted.setdefault(meta["uid"], set())
            succeeded = int(status.get("succeeded") or 0)
            failed = int(status.get("failed") or 0)
            for pod in pods:
                phase = _finished(pod)
                uid = pod["metadata"]["uid"]
                if phase and uid not in counted:
                    counted.add(uid)
                    succeeded += phase == "Succeeded"
                    failed += phase == "Failed"
            active = [
                p for p in pods if not _finished(p) and not p["metadata"].get("deletionTimestamp")
            ]
            deadline = spec.get("activeDeadlineSeconds")
            backoff = int(spec.get("backoffLimit", 6))
            failure: tuple[str, str] | None = None
            if deadline is not None and _seconds_since(status["startTime"]) > float(deadline):
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
                for pod in active:
                    self.api.delete("v1/pods", meta["namespace"], pod["metadata"]["name"])
                    counted.add(pod["metadata"]["uid"])
                failed += len(active)
                active = []
            elif failed > backoff:
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            completions = int(spec.get("completions") or 1)
            stamp = now_rfc3339()
            if failure is not None:
                reason, message = failure
                for condition_type in ("FailureTarget", "Failed"):
                    conditions.append({
                        "type": condition_type, "status": "True", "reason": reason,
                        "message": message, "lastProbeTime": stamp, "lastTransitionTime": stamp,
                    })  # fmt: skip
                self.api.record_event(job, reason, message, "Warning", component="job-controller")
            elif succeeded >= completions:
                for condition_type in ("SuccessCriteriaMet", "Complete"):
                    conditions.append({
                        "type": condition_type, "status": "True",
                        "lastProbeTime": stamp, "lastTransitionTime": stamp,
                    })  # fmt: skip
                status["completionTime"] = stamp
                self.api.record_event(job, "Completed", "Job completed", component="job-controller")
            elif not active:
                self._job_pod(job)
                active = [None]  # type: ignore[list-item]
            new_status = {
                **status,
                "active": len(active) or None,
                "ready": sum(1 for p in active if p and _pod_ready(p)) if active else 0,
                "succeeded": succeeded or None,
                "failed": failed or None,
                "conditions": conditions or None,
            }
            new_status = {k: v for k, v in new_status.items() if v is not None}
            if new_status != job.get("status"):
                job["status"] = new_status
                self.api.replace("batch/v1/jobs", meta["namespace"], meta["name"], job)

    def _job_pod(self, job: dict[str, Any]) -> None:
        meta = job["metadata"]
        template = copy.deepcopy(job["spec"]["template"])
        labels = dict(template.get("metadata", {}).get("labels") or {})
        labels.update({
            "controller-uid": meta["uid"],
            "batch.kubernetes.io/controller-uid": meta["uid"],
            "job-name": meta["name"],
            "batch.kubernetes.io/job-name": meta["name"],
        })  # fmt: skip
        pod_meta = {
            **template.get("metadata", {}),
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [_owner_ref(job)],
        }
        pod_meta.pop("name", None)
        self.api.create("v1/pods", {"metadata": pod_meta, "spec": template["spec"]})

    # -- Deployments ------------------------------------------------------------------------------
    def deployments(self) -> None:
        for deployment in self.api.list("apps/v1/deployments"):
            meta = deployment["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            if (meta.get("annotations") or {}).get(STAND_IN):
                self._stand_in(deployment)
            else:
                self._roll(deployment)

    def _stand_in(self, deployment: dict[str, Any]) -> None:
        meta = deployment["metadata"]
        up = self.stand_in_health(meta["namespace"], meta["name"])
        replicas = int(deployment["spec"].get("replicas", 1))
        self._deployment_status(deployment, replicas if up else 0, replicas, replicas if up else 0)

    def _roll(self, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        namespace = meta["namespace"]
        template = spec["template"]
        current_hash = template_hash(template)
        replicas = int(spec.get("replicas", 1))
        pods = [
            p for p in self.api.list("v1/pods", namespace)
            if _owned_by(p, deployment) and not p["metadata"].get("deletionTimestamp")
        ]  # fmt: skip
        new = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == current_hash]
        old = [p for p in pods if p not in new]
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        ready_new = [p for p in new if _pod_ready(p)]
        if strategy == "Recreate" and old:
            for pod in old:
                self.api.delete("v1/pods", namespace, pod["metadata"]["name"])
        elif len(new) < replicas and (strategy != "Recreate" or not old):
            for _ in range(replicas - len(new)):
                self._deployment_pod(deployment, current_hash)
        if old and len(ready_new) >= replicas:
            for pod in old:
                self.api.delete("v1/pods", namespace, pod["metadata"]["name"])
            old = []
        for pod in new:  # a crashed pod of a Deployment is replaced
            if _finished(pod) == "Failed" and pod["spec"].get("restartPolicy") == "Never":
                self.api.delete("v1/pods", namespace, pod["metadata"]["name"])
        available = len(ready_new) + sum(1 for p in old if _pod_ready(p))
        self._deployment_status(
            deployment, available, len(new) + len(old), len(new), len(ready_new)
        )

    def _deployment_pod(self, deployment: dict[str, Any], pod_hash: str) -> None:
        meta = deployment["metadata"]
        template = copy.deepcopy(deployment["spec"]["template"])
        labels = {
            **(template.get("metadata", {}).get("labels") or {}),
            "pod-template-hash": pod_hash,
        }
        suffix = "".join(secrets.choice(_SUFFIX) for _ in range(5))
        pod_meta = {
            **template.get("metadata", {}),
            "name": f"{meta['name']}-{pod_hash}-{suffix}",
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [_owner_ref(deployment)],
        }
        spec = template["spec"]
        spec.setdefault("restartPolicy", "Always")
        self.api.create("v1/pods", {"metadata": pod_meta, "spec": spec})

    def _deployment_status(
        self,
        deployment: dict[str, Any],
        available: int,
        total: int,
        updated: int,
        ready: int | None = None,
    ) -> None:
        meta = deployment["metadata"]
        replicas = int(deployment["spec"].get("replicas", 1))
        ready = available if ready is None else ready
        stamp = now_rfc3339()
        is_available = available >= replicas
        complete = updated >= replicas and total <= updated and is_available
        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, replicas - available),
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if is_available else "False",
                    "reason": "MinimumReplicasAvailable" if is_available
                    else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability." if is_available
                    else "Deployment does not have minimum availability.",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    "message": f'ReplicaSet "{meta["name"]}" has successfully progressed.'
                    if complete else f'ReplicaSet "{meta["name"]}" is progressing.',
                },
            ],
        }  # fmt: skip
        old_conditions = {
            c["type"]: c for c in (deployment.get("status") or {}).get("conditions") or []
        }
        comparable = {**(deployment.get("status") or {})}
        comparable["conditions"] = [
            {k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastUpdateTime")}
            for c in comparable.get("conditions") or []
        ]
        if comparable == status:
            return
        for condition in status["conditions"]:
            previous = old_conditions.get(condition["type"])
            same = previous and previous.get("status") == condition["status"]
            condition["lastTransitionTime"] = previous["lastTransitionTime"] if same else stamp  # type: ignore[index]
            condition["lastUpdateTime"] = stamp
        deployment["status"] = status
        self.api.replace("apps/v1/deployments", meta["namespace"], meta["name"], deployment)

    # -- StatefulSets -----------------------------------------------------------------------------
    def statefulsets(self) -> None:
        """Pods ``<name>-<ordinal>``, each with its own claims from ``volumeClaimTemplates``
        (``<template>-<name>-<ordinal>``, created once and kept, as ``whenScaled: Retain`` and
        the default ``whenDeleted: Retain`` say); ``OrderedReady`` creates ordinal n+1 only once
        n is ready, ``Parallel`` all at once; a failed or outdated pod is replaced, the highest
        ordinal first. Scaling down removes the highest ordinals; their claims stay."""
        for sts in self.api.list("apps/v1/statefulsets"):
            meta, spec = sts["metadata"], sts["spec"]
            if meta.get("deletionTimestamp") or (meta.get("annotations") or {}).get(STAND_IN):
                continue
            namespace, name = meta["namespace"], meta["name"]
            replicas = int(spec.get("replicas", 1))
            revision = template_hash(spec["template"])
            pods = {
                p["metadata"]["name"]: p for p in self.api.list("v1/pods", namespace)
                if _owned_by(p, sts) and not p["metadata"].get("deletionTimestamp")
            }  # fmt: skip
            ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
            for ordinal in range(replicas):
                pod = pods.get(f"{name}-{ordinal}")
                if pod is None:
                    self._statefulset_pod(sts, ordinal, revision)
                    if ordered:
                        break
                    continue
                outdated = pod["metadata"]["labels"].get("controller-revision-hash") != revision
                if _finished(pod) == "Failed" or (outdated and self._all_ready(pods, replicas)):
                    self.api.delete("v1/pods", namespace, pod["metadata"]["name"])
                    break  # one at a time
                if ordered and not _pod_ready(pod):
                    break
            for pod_name in pods:  # scaled down: the highest ordinals go
                if int(pod_name.rsplit("-", 1)[1]) >= replicas:
                    self.api.delete("v1/pods", namespace, pod_name)
            kept = [p for n, p in pods.items() if int(n.rsplit("-", 1)[1]) < replicas]
            ready = sum(1 for p in kept if _pod_ready(p))
            current = sum(
                1 for p in kept
                if p["metadata"]["labels"].get("controller-revision-hash") == revision
            )  # fmt: skip
            status = {
                "observedGeneration": meta.get("generation", 1),
                "replicas": len(kept),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "currentReplicas": current,
                "updatedReplicas": current,
                "currentRevision": f"{name}-{revision}",
                "updateRevision": f"{name}-{revision}",
            }
            if sts.get("status") != status:
                sts["status"] = status
                self.api.replace("apps/v1/statefulsets", namespace, name, sts)

    @staticmethod
    def _all_ready(pods: dict[str, dict[str, Any]], replicas: int) -> bool:
        return len(pods) >= replicas and all(_pod_ready(p) for p in pods.values())

    def _statefulset_pod(self, sts: dict[str, Any], ordinal: int, revision: str) -> None:
        meta, spec = sts["metadata"], sts["spec"]
        namespace, name = meta["namespace"], meta["name"]
        template = copy.deepcopy(spec["template"])
        pod_name = f"{name}-{ordinal}"
        volumes = template["spec"].setdefault("volumes", [])
        for claim_template in spec.get("volumeClaimTemplates") or []:
            template_name = claim_template["metadata"]["name"]
            claim_name = f"{template_name}-{pod_name}"
            with contextlib.suppress(ApiError):  # kept from an earlier pod of this ordinal
                self.api.create(
                    "v1/persistentvolumeclaims",
                    {
                        "metadata": {
                            **copy.deepcopy(claim_template["metadata"]),
                            "name": claim_name,
                            "namespace": namespace,
                        },
                        "spec": copy.deepcopy(claim_template.get("spec") or {}),
                    },
                )
            volumes.append(
                {"name": template_name, "persistentVolumeClaim": {"claimName": claim_name}}
            )
        labels = {
            **(template.get("metadata", {}).get("labels") or {}),
            "controller-revision-hash": revision,
            "statefulset.kubernetes.io/pod-name": pod_name,
            "apps.kubernetes.io/pod-index": str(ordinal),
        }
        pod_meta = {
            **template.get("metadata", {}),
            "name": pod_name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [_owner_ref(sts)],
        }
        pod_spec = template["spec"]
        pod_spec.setdefault("restartPolicy", "Always")
        pod_spec.setdefault("hostname", pod_name)
        if spec.get("serviceName"):
            pod_spec.setdefault("subdomain", spec["serviceName"])
        with contextlib.suppress(ApiError):  # its predecessor is still terminating: next pass
            self.api.create("v1/pods", {"metadata": pod_meta, "spec": pod_spec})

    # -- KServe -----------------------------------------------------------------------------------
    def kserve(self) -> None:
        for isvc in self.api.list(ISVC):
            meta = isvc["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            namespace, name = meta["namespace"], meta["name"]
            predictor_name = f"{name}-predictor"
            predictor = isvc["spec"]["predictor"]
            containers = copy.deepcopy(predictor.get("containers") or [])
            labels = {
                "app": f"isvc.{predictor_name}",
                "component": "predictor",
                "serving.kserve.io/inferenceservice": name,
            }
            pod_spec: dict[str, Any] = {"containers": containers}
            for key in ("serviceAccountName", "imagePullSecrets", "nodeSelector", "tolerations"):
                if key in predictor:
                    pod_spec[key] = predictor[key]
            desired = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": predictor_name,
                    "namespace": namespace,
                    "labels": {**labels, **(meta.get("labels") or {})},
                    "ownerReferences": [_owner_ref(isvc)],
                },
                "spec": {
                    "replicas": int(predictor.get("minReplicas") or 1),
                    "selector": {"matchLabels": {"app": f"isvc.{predictor_name}"}},
                    "strategy": {"type": "RollingUpdate"},
                    "template": {
                        "metadata": {
                            "labels": labels,
                            "annotations": meta.get("annotations") or {},
                        },
                        "spec": pod_spec,
                    },
                },
            }
            current = self.api.get("apps/v1/deployments", namespace, predictor_name)
            if current is None:
                self.api.create("apps/v1/deployments", desired)
                current = self.api.get("apps/v1/deployments", namespace, predictor_name)
                self.api.record_event(
                    isvc, "Created", f"Created predictor deployment {predictor_name}",
                    component="kserve",
                )  # fmt: skip
            elif current["spec"] != desired["spec"]:
                current["spec"] = desired["spec"]
                current = self.api.replace(
                    "apps/v1/deployments", namespace, predictor_name, current
                )
            if self.api.get("v1/services", namespace, predictor_name) is None:
                port = next(
                    (p.get("containerPort") for c in containers for p in c.get("ports") or []), 8080
                )
                self.api.create("v1/services", {
                    "metadata": {
                        "name": predictor_name, "namespace": namespace, "labels": labels,
                        "ownerReferences": [_owner_ref(isvc)],
                    },
                    "spec": {
                        "selector": {"app": f"isvc.{predictor_name}"},
                        "ports": [{"name": f"{name}-predictor", "port": 80,
                                   "targetPort": int(port), "protocol": "TCP"}],
                    },
                })  # fmt: skip
            assert current is not None
            self._isvc_status(isvc, current)

    def _isvc_status(self, isvc: dict[str, Any], deployment: dict[str, Any]) -> None:
        meta = isvc["metadata"]
        dstatus = deployment.get("status") or {}
        available = any(
            c["type"] == "Available" and c["status"] == "True"
            for c in dstatus.get("conditions") or []
        )
        observed = dstatus.get("observedGeneration") == deployment["metadata"].get("generation")
        ready = available and observed
        value = "True" if ready else "False"
        reason = None if ready else "PredictorNotReady"
        host = f"{meta['name']}-predictor.{meta['namespace']}.svc.cluster.local"

        def condition(kind: str, status: str, why: str | None) -> dict[str, Any]:
            out = {"type": kind, "status": status}
            if why:
                out["reason"] = why
                out["message"] = "predictor pods are not ready"
            return out

        status = {
            "observedGeneration": meta.get("generation", 1),
            "url": f"http://{host}",
            "address": {"url": f"http://{host}"},
            "conditions": [
                condition("IngressReady", "True", None),
                condition("PredictorReady", value, reason),
                condition("Ready", value, reason),
            ],
            "components": {
                "predictor": {"latestCreatedRevision": deployment["metadata"].get("generation")}
            },
        }
        if isvc.get("status") != status:
            stamp = now_rfc3339()
            for c in status["conditions"]:
                c["lastTransitionTime"] = stamp
            previous = dict(isvc.get("status") or {})
            comparable = {**previous, "conditions": [
                {k: v for k, v in c.items() if k != "lastTransitionTime"}
                for c in previous.get("conditions") or []
            ]}  # fmt: skip
            if comparable == {**status, "conditions": [
                {k: v for k, v in c.items() if k != "lastTransitionTime"}
                for c in status["conditions"]
            ]}:  # fmt: skip
                return
            isvc["status"] = status
            self.api.replace(ISVC, meta["namespace"], meta["name"], isvc)
            if ready:
                self.api.record_event(
                    isvc, "InferenceServiceReady",
                    f"InferenceService [{meta['name']}] is Ready", component="kserve",
                )  # fmt: skip


def wait(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
