"""An in-memory Kubernetes API (kmock's emulator) with a simulated KServe controller.

No Kubernetes API server can run on these machines, so the deploy logic is exercised against
kmock's ``KubernetesEmulator``: a real HTTP server that stores objects, serves GET/LIST/POST/PATCH
like the API server (merge patches, 404/409 statuses) and lets the test read every request.
What it does not do is reconcile: :class:`FakeKServe` plays KServe's part in RawDeployment mode.
It is a simulation of documented behaviour, not KServe itself:

* on a spec change it bumps ``metadata.generation`` and writes the predictor Deployment
  ``<name>-predictor`` with the new image;
* after ``delay`` seconds a *good* image rolls out: the Deployment reports the new ReplicaSet
  available and the InferenceService gets ``Ready=True`` for that generation with its
  cluster-local address;
* a *bad* image never becomes available: a brand-new service reports ``Ready=False``
  (``PredictorReady=False``); an existing one keeps ``Ready=True`` from the old pod (as KServe
  does, from the Deployment's ``Available`` condition) while the rollout is stuck, and the pod
  and an event say ``ImagePullBackOff``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

ISVC = "serving.kserve.io/v1beta1/inferenceservices"
DEPLOYMENTS = "apps/v1/deployments"
EVENTS = "v1/events"
PODS = "v1/pods"


def api_client_for(kmock: Any) -> Any:
    """A ``kubernetes`` ApiClient pointed at the kmock server (plain HTTP, no auth)."""
    from kubernetes import client

    configuration = client.Configuration(host=str(kmock.url).rstrip("/"))
    return client.ApiClient(configuration)


def declare_resources(kmock: Any) -> None:
    """Make the emulator serve (empty) lists for the resources the deployer reads."""
    for resource in (ISVC, DEPLOYMENTS, EVENTS, PODS, "v1/secrets", "v1/serviceaccounts"):
        kmock.resources[resource] = {}


@dataclass
class FakeKServe:
    """The simulated controller; see the module docstring."""

    kmock: Any
    namespace: str
    name: str = "house-price"
    delay: float = 0.3
    bad_images: set[str] = field(default_factory=set)
    _seen_image: str | None = None
    _changed_at: float = 0.0
    _generation: int = 0
    _serving_image: str | None = None

    def _key(self, resource: str, name: str) -> tuple[str, str, str]:
        return (resource, self.namespace, name)

    def _get(self, resource: str, name: str) -> Any | None:
        from kmock import resource as parse

        key = (parse(resource), self.namespace, name)
        if key not in set(self.kmock.objects.keys()):
            return None
        obj = self.kmock.objects[self._key(resource, name)]
        return None if obj.deleted else obj

    def tick(self) -> None:
        isvc = self._get(ISVC, self.name)
        if isvc is None:
            return
        image = isvc["spec"]["predictor"]["containers"][0]["image"]
        now = time.monotonic()
        deploy_name = f"{self.name}-predictor"
        if image != self._seen_image:
            self._seen_image, self._changed_at = image, now
            self._generation += 1
            isvc.patch({"metadata": {"generation": self._generation}})
            deployment = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": deploy_name,
                    "namespace": self.namespace,
                    "generation": self._generation,
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": f"isvc.{deploy_name}"}},
                    "template": {
                        "metadata": {"labels": {"app": f"isvc.{deploy_name}"}},
                        "spec": {"containers": [{"name": "house-price", "image": image}]},
                    },
                },
                "status": {"observedGeneration": self._generation, "replicas": 1},
            }
            self.kmock.objects[self._key(DEPLOYMENTS, deploy_name)] = deployment
            if self._serving_image is None:
                self._set_isvc_status(isvc, ready=False, reason="PredictorNotReady")
            return
        if now - self._changed_at < self.delay:
            return
        dep = self.kmock.objects[self._key(DEPLOYMENTS, deploy_name)]
        if image in self.bad_images:
            old_serving = self._serving_image is not None
            dep.patch(
                {
                    "status": {
                        "observedGeneration": self._generation,
                        "replicas": 2 if old_serving else 1,
                        "updatedReplicas": 1,
                        "availableReplicas": 1 if old_serving else 0,
                        "readyReplicas": 1 if old_serving else 0,
                    }
                }
            )
            self._set_isvc_status(isvc, ready=old_serving, reason="ImagePullBackOff")
            self._record_pull_failure(image)
            return
        dep.patch(
            {
                "status": {
                    "observedGeneration": self._generation,
                    "replicas": 1,
                    "updatedReplicas": 1,
                    "availableReplicas": 1,
                    "readyReplicas": 1,
                }
            }
        )
        self._serving_image = image
        self._set_isvc_status(isvc, ready=True, reason=None)

    def _set_isvc_status(self, isvc: Any, *, ready: bool, reason: str | None) -> None:
        value = "True" if ready else "False"
        conditions = [
            {"type": "IngressReady", "status": "True"},
            {"type": "PredictorReady", "status": value, "reason": reason} if reason else
            {"type": "PredictorReady", "status": value},
            {"type": "Ready", "status": value, "reason": reason} if reason else
            {"type": "Ready", "status": value},
        ]  # fmt: skip
        if reason and not ready:
            conditions[-1]["message"] = f"predictor pods are not ready: {reason}"
        isvc["status"] = {
            "observedGeneration": self._generation,
            "conditions": conditions,
            "address": {"url": f"http://{self.name}-predictor.{self.namespace}.svc.cluster.local"},
        }

    def _record_pull_failure(self, image: str) -> None:
        pod_name = f"{self.name}-predictor-7d9c-bad{self._generation}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": self.namespace,
                "labels": {"serving.kserve.io/inferenceservice": self.name},
            },
            "spec": {"containers": [{"name": "house-price", "image": image}]},
            "status": {
                "containerStatuses": [
                    {
                        "name": "house-price",
                        "image": image,
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "waiting": {
                                "reason": "ImagePullBackOff",
                                "message": f'Back-off pulling image "{image}"',
                            }
                        },
                    }
                ]
            },
        }
        self.kmock.objects[self._key(PODS, pod_name)] = pod
        event_name = f"{pod_name}.pull"
        self.kmock.objects[self._key(EVENTS, event_name)] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name, "namespace": self.namespace},
            "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": self.namespace},
            "reason": "Failed",
            "message": f'Failed to pull image "{image}": not found',
            "type": "Warning",
            "lastTimestamp": "2025-01-01T00:00:00Z",
        }
        # An event about something else must not show up in the report.
        self.kmock.objects[self._key(EVENTS, "unrelated.1")] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "unrelated.1", "namespace": self.namespace},
            "involvedObject": {"kind": "Pod", "name": "other-app-1", "namespace": self.namespace},
            "reason": "Killing",
            "message": "unrelated",
            "type": "Normal",
        }

    @contextlib.asynccontextmanager
    async def running(self, interval: float = 0.05) -> AsyncIterator[FakeKServe]:
        """Run the controller loop on the test's event loop (where kmock serves)."""

        async def loop() -> None:
            while True:
                self.tick()
                await asyncio.sleep(interval)

        task = asyncio.create_task(loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
