"""The KServe ``InferenceService`` for the house-price model, rendered as plain data.

The rendered object keeps the original's contract (``ARCHITECTURE.md``): InferenceService
``house-price`` in ``serving.kserve.io/v1beta1``, RawDeployment with no ingress and no Istio
virtual host, one container ``house-price`` on 8080/TCP with ``PROTOCOL=v2``, requests 4Gi / 2 CPU,
limits 5Gi / 4 CPU, one replica. Two things are new: the image is pinned by digest (a tag can move
under a running deployment), and the predictor runs as a service account that carries the
registry's pull secret.

:mod:`bridgeai.deploy.rollout` applies these objects and waits for them. This module is pure
data (no Kubernetes client, no Prefect), so the flow, the tests and the docs render the same
object.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from typing import Any

from bridgeai.model import REGISTERED_MODEL

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"

ISVC_NAME = "house-price"
CONTAINER_NAME = "house-price"
MODEL_NAME = REGISTERED_MODEL
CONTAINER_PORT = 8080
SERVICE_ACCOUNT = "house-price-predictor"
PULL_SECRET = "bridgeai-registry-pull"  # noqa: S105 - a Secret's name, not a value

#: The original's annotations: a plain Deployment + Service, no Knative, no Istio, no ingress.
ANNOTATIONS = {
    "serving.kserve.io/deploymentMode": "RawDeployment",
    "serving.kserve.io/disableIngressCreation": "true",
    "serving.kserve.io/disableIstioVirtualHost": "true",
}
#: The original's resources for the predictor container.
RESOURCES = {
    "requests": {"cpu": "2", "memory": "4Gi"},
    "limits": {"cpu": "4", "memory": "5Gi"},
}
MODEL_VERSION_LABEL = "bridgeai.digicatapult.org/model-version"
#: KServe's annotation choosing the autoscaler; ``hpa`` is the one RawDeployment supports.
AUTOSCALER_ANNOTATION = "serving.kserve.io/autoscalerClass"
#: What KServe's Kubernetes HPA can scale a RawDeployment on (``scaleMetric``).
SCALE_METRICS = ("cpu", "memory")
DEFAULT_SCALE_METRIC = "cpu"
#: Target average utilisation, percent of the container's requests (``scaleTarget``).
DEFAULT_SCALE_TARGET = 80


class DeploymentError(RuntimeError):
    """The deployment could not be applied; the message says what to fix."""


class DeploymentFailed(DeploymentError):
    """The InferenceService did not become ready in time.

    Attributes:
        conditions: the InferenceService's status conditions at the deadline.
        events: recent events of the service, its Deployment, ReplicaSets and pods.
        pods: ``pod-name: reason`` for each predictor pod that is not ready.
        restored: True when the previous spec was put back.
    """

    def __init__(
        self,
        message: str,
        *,
        conditions: list[dict[str, Any]],
        events: list[str],
        pods: list[str],
        restored: bool,
    ) -> None:
        super().__init__(message)
        self.conditions = conditions
        self.events = events
        self.pods = pods
        self.restored = restored


# -- rendering ------------------------------------------------------------------------------------
def predictor_service_name(name: str = ISVC_NAME) -> str:
    """The Service KServe creates for the predictor in RawDeployment mode: ``<name>-predictor``."""
    return f"{name}-predictor"


def service_url(namespace: str, name: str = ISVC_NAME, model: str = MODEL_NAME) -> str:
    """The in-cluster OIP v2 infer URL of the predictor.

    In RawDeployment mode KServe's service reconciler (``createDefaultSvc`` in
    ``pkg/controller/v1beta1/inferenceservice/reconcilers/service/service_reconciler.go``) creates
    the Service ``<name>-predictor`` listening on ``constants.CommonDefaultHttpPort`` (80) with
    ``targetPort`` the first container port (8080 here), so port 80 is implied. With
    ``disableIngressCreation`` nothing else routes to the pod, and the cluster DNS name is the
    one stable address.
    """
    host = f"{predictor_service_name(name)}.{namespace}.svc.cluster.local"
    return f"http://{host}/v2/models/{model}/infer"


def require_digest(image: str) -> str:
    """Return ``image`` if it is pinned by digest (``repo@sha256:<64 hex>``).

    Raises:
        DeploymentError: the reference has no digest.
    """
    _, sep, digest = image.partition("@")
    hexpart = digest.removeprefix("sha256:")
    if not sep or not digest.startswith("sha256:") or len(hexpart) != 64:
        raise DeploymentError(
            f"image {image!r} is not pinned by digest: pass the reference the build-model-image "
            "flow returned (<registry>/<repo>@sha256:<digest>), so a moved tag never changes "
            "what is deployed"
        )
    int(hexpart, 16)  # raises ValueError on non-hex, which callers see as a bad reference
    return image


def render_inference_service(
    image: str,
    *,
    namespace: str,
    model_version: str | int | None = None,
    name: str = ISVC_NAME,
    service_account: str | None = SERVICE_ACCOUNT,
    resources: Mapping[str, Mapping[str, str]] | None = None,
    extra_env: Mapping[str, str] | None = None,
    min_replicas: int = 1,
    max_replicas: int = 1,
    scale_metric: str = DEFAULT_SCALE_METRIC,
    scale_target: int = DEFAULT_SCALE_TARGET,
) -> dict[str, Any]:
    """The ``house-price`` InferenceService as a plain dict (see the module docstring).

    With ``max_replicas > min_replicas`` the predictor autoscales: KServe (RawDeployment) creates
    a Kubernetes HorizontalPodAutoscaler from ``minReplicas``/``maxReplicas``, ``scaleMetric``
    and ``scaleTarget`` (average utilisation, percent of the container's requests), chosen by the
    ``serving.kserve.io/autoscalerClass: hpa`` annotation. With the defaults (1 and 1) the
    object is exactly the original's: one replica, no autoscaling fields.

    Raises:
        DeploymentError: ``image`` is not pinned by digest, or the scaling values are invalid.
    """
    require_digest(image)
    _check_scaling(min_replicas, max_replicas, scale_metric, scale_target)
    env = [{"name": "PROTOCOL", "value": "v2"}]
    env += [{"name": k, "value": str(v)} for k, v in (extra_env or {}).items()]
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "bridgeai"}
    if model_version is not None:
        labels[MODEL_VERSION_LABEL] = str(model_version)
    predictor: dict[str, Any] = {
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "containers": [
            {
                "name": CONTAINER_NAME,
                "image": image,
                "ports": [{"containerPort": CONTAINER_PORT, "protocol": "TCP"}],
                "env": env,
                "resources": copy.deepcopy(dict(resources or RESOURCES)),
                "readinessProbe": {
                    "httpGet": {"path": "/v2/health/ready", "port": CONTAINER_PORT},
                    "periodSeconds": 5,
                },
            }
        ],
    }
    if service_account:
        predictor["serviceAccountName"] = service_account
    annotations = dict(ANNOTATIONS)
    if max_replicas > min_replicas:
        annotations[AUTOSCALER_ANNOTATION] = "hpa"
        predictor["scaleMetric"] = scale_metric
        predictor["scaleTarget"] = scale_target
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def _check_scaling(min_replicas: int, max_replicas: int, metric: str, target: int) -> None:
    if min_replicas < 1:
        raise DeploymentError(
            f"min_replicas must be at least 1, got {min_replicas}: RawDeployment cannot scale "
            "to zero"
        )
    if max_replicas < min_replicas:
        raise DeploymentError(
            f"max_replicas ({max_replicas}) must be at least min_replicas ({min_replicas})"
        )
    if metric not in SCALE_METRICS:
        raise DeploymentError(
            f"scale_metric must be one of {', '.join(SCALE_METRICS)} (what KServe's HPA scales "
            f"a RawDeployment on), got {metric!r}"
        )
    if not 1 <= target <= 100:
        raise DeploymentError(
            f"scale_target is an average utilisation in percent (1-100), got {target}"
        )


def render_pull_secret(
    docker_config_json: str, *, namespace: str, name: str = PULL_SECRET
) -> dict[str, Any]:
    """A ``kubernetes.io/dockerconfigjson`` Secret from ``ContainerRegistry.docker_config_json``."""
    encoded = base64.b64encode(docker_config_json.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "bridgeai"},
        },
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": encoded},
    }


def render_service_account(
    *, namespace: str, name: str = SERVICE_ACCOUNT, pull_secret: str | None = PULL_SECRET
) -> dict[str, Any]:
    """The predictor's service account, carrying the pull secret when there is one."""
    account: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "bridgeai"},
        },
    }
    if pull_secret:
        account["imagePullSecrets"] = [{"name": pull_secret}]
    return account


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """An RFC 7386 merge patch turning ``old`` into ``new`` (``None`` deletes a key).

    Applying it gives exactly ``new`` for every key we render, unlike sending ``new`` alone,
    which would leave keys that an earlier spec had and this one dropped.
    """
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif before != value:
            patch[key] = copy.deepcopy(value)
    return patch


# -- reading status -------------------------------------------------------------------------------
def conditions_of(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The status conditions of an object (empty when it has none yet)."""
    return list((obj.get("status") or {}).get("conditions") or [])


def format_conditions(conditions: list[dict[str, Any]]) -> list[str]:
    """One ``Type=Status (Reason: message)`` line per condition."""
    lines = []
    for c in conditions:
        detail = ": ".join(p for p in (c.get("reason"), c.get("message")) if p)
        lines.append(f"{c.get('type')}={c.get('status')}" + (f" ({detail})" if detail else ""))
    return lines


def isvc_ready(obj: Mapping[str, Any]) -> bool:
    """True when ``Ready=True`` was observed for the object's current generation."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or int(observed) < int(generation)):
        return False
    return any(
        c.get("type") == "Ready" and str(c.get("status")) == "True" for c in conditions_of(obj)
    )


def rollout_complete(deployment: Mapping[str, Any], image: str, container: str) -> bool:
    """``kubectl rollout status`` for the predictor Deployment, plus "it runs ``image``".

    KServe reports ``Ready`` from the Deployment's ``Available`` condition, which stays true
    while the old pod serves and the new one crash-loops; this checks the rollout itself.
    """
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    images = {c.get("name"): c.get("image") for c in containers}
    if images.get(container) != image:
        return False
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and int(observed) < int(generation):
        return False
    replicas = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    return updated >= replicas and available >= updated and total <= updated
