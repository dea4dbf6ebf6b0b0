"""Applying the house-price InferenceService and waiting until it serves.

:func:`deploy` creates the object or merge-patches it, then waits until KServe reports ``Ready``
for *this* generation and the predictor Deployment has rolled out the new image (KServe keeps
``Ready=True`` while the old pod still serves a broken rollout, so the condition alone is not
enough). On a timeout it collects the conditions, the recent events and the pods' waiting reasons,
restores the previous spec (so the previous revision keeps serving and the cluster's desired
state matches what serves) and raises :class:`DeploymentFailed` with all of that in its message.

The objects themselves are rendered by :mod:`bridgeai.deploy.kserve`. Only the ``kubernetes``
client is used; this module never imports Prefect.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridgeai.deploy.kserve import (
    CONTAINER_NAME,
    GROUP,
    MODEL_NAME,
    MODEL_VERSION_LABEL,
    PLURAL,
    PULL_SECRET,
    SERVICE_ACCOUNT,
    VERSION,
    DeploymentError,
    DeploymentFailed,
    conditions_of,
    format_conditions,
    isvc_ready,
    merge_patch,
    predictor_service_name,
    render_pull_secret,
    render_service_account,
    rollout_complete,
    service_url,
)

FIELD_MANAGER = "bridgeai"


def load_api_client(context: str | None = None, config_file: str | None = None) -> Any:
    """A ``kubernetes`` ApiClient: in-cluster inside a pod, else from kubeconfig.

    An explicit ``context`` or ``config_file`` always means kubeconfig.

    Raises:
        DeploymentError: no configuration was found; says where it looked.
    """
    from kubernetes import client, config

    in_pod = "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if in_pod and not context and not config_file:
            config.load_incluster_config()
            return client.ApiClient()
        return config.new_client_from_config(config_file=config_file, context=context)
    except config.ConfigException as exc:
        where = config_file or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise DeploymentError(
            f"no Kubernetes configuration found ({exc}); looked in {where}"
            + (f" for context {context!r}" if context else "")
            + ": create the Kind cluster (deployments/kind/up.sh) or pass kube_config/kube_context"
        ) from None


@dataclass
class DeployOutcome:
    """What :func:`deploy` did."""

    name: str
    namespace: str
    image: str
    action: str  # "created" | "updated" | "unchanged"
    url: str
    conditions: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class InferenceServiceDeployer:
    """Create-or-patch, wait and diagnose one InferenceService through the Kubernetes API."""

    def __init__(
        self,
        api_client: Any,
        *,
        log: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.log = log or (lambda message: None)
        self.sleep = sleep

    # -- objects --------------------------------------------------------------------------------
    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The InferenceService, or None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            found: Any = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
            return dict(found)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._api_error("read", f"inferenceservice/{name}", namespace, exc) from None

    def apply(self, desired: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """Create ``desired`` or merge-patch the existing object into it.

        Returns:
            ("created" | "updated" | "unchanged", the previous object or None).
        """
        from kubernetes.client.exceptions import ApiException

        meta = desired["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        current = self.get(name, namespace)
        try:
            if current is None:
                self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, desired, field_manager=FIELD_MANAGER
                )
                return "created", None
            patch = self._patch_for(current, desired)
            if not patch:
                return "unchanged", current
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, patch, field_manager=FIELD_MANAGER
            )
            return "updated", current
        except ApiException as exc:
            raise self._api_error("apply", f"inferenceservice/{name}", namespace, exc) from None

    @staticmethod
    def _patch_for(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
        """Our labels/annotations merged in (others' kept), and the spec replaced exactly."""
        patch: dict[str, Any] = {}
        cur_meta = current.get("metadata") or {}
        for key in ("labels", "annotations"):
            wanted = desired["metadata"].get(key) or {}
            have = cur_meta.get(key) or {}
            changed = {k: v for k, v in wanted.items() if have.get(k) != v}
            if changed:
                patch.setdefault("metadata", {})[key] = changed
        spec = merge_patch(current.get("spec") or {}, desired["spec"])
        if spec:
            patch["spec"] = spec
        return patch

    def restore(self, previous: Mapping[str, Any]) -> None:
        """Put the previous spec (and model-version label) back."""
        meta = previous["metadata"]
        current = self.get(meta["name"], meta["namespace"])
        if current is None:
            return
        labels = dict(meta.get("labels") or {})
        desired = {"metadata": {"labels": labels}, "spec": previous["spec"]}
        patch = self._patch_for(current, desired)
        if MODEL_VERSION_LABEL not in labels and MODEL_VERSION_LABEL in (
            (current.get("metadata") or {}).get("labels") or {}
        ):
            patch.setdefault("metadata", {}).setdefault("labels", {})[MODEL_VERSION_LABEL] = None
        if patch:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], patch,
                field_manager=FIELD_MANAGER,
            )  # fmt: skip

    def ensure_pull_access(
        self, namespace: str, docker_config_json: str | None, account: str = SERVICE_ACCOUNT
    ) -> None:
        """Create or update the pull secret (when there are credentials) and the service account."""
        has_auths = bool(docker_config_json) and '"auths": {}' not in str(docker_config_json)
        if has_auths:
            assert docker_config_json is not None
            secret = render_pull_secret(docker_config_json, namespace=namespace)
            self._upsert_core("secret", secret)
        sa = render_service_account(
            namespace=namespace, name=account, pull_secret=PULL_SECRET if has_auths else None
        )
        self._upsert_core("service_account", sa)

    def _upsert_core(self, kind: str, body: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        create = getattr(self.core, f"create_namespaced_{kind}")
        patch = getattr(self.core, f"patch_namespaced_{kind}")
        try:
            create(namespace, body, field_manager=FIELD_MANAGER)
        except ApiException as exc:
            if exc.status != 409:
                raise self._api_error("create", f"{kind}/{name}", namespace, exc) from None
            try:
                patch(name, namespace, body, field_manager=FIELD_MANAGER)
            except ApiException as exc2:
                raise self._api_error("update", f"{kind}/{name}", namespace, exc2) from None

    # -- waiting --------------------------------------------------------------------------------
    def wait_ready(
        self, name: str, namespace: str, image: str, *, timeout: float, poll_interval: float = 2.0
    ) -> dict[str, Any]:
        """Poll until the service is ready on ``image``; return the object.

        Raises:
            TimeoutError: not ready within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        last_state = ""
        while True:
            obj = self.get(name, namespace) or {}
            deployment = self._predictor_deployment(name, namespace)
            ready = isvc_ready(obj)
            rolled = deployment is None or rollout_complete(deployment, image, CONTAINER_NAME)
            state = "; ".join(format_conditions(conditions_of(obj))) or "no status yet"
            if state != last_state:
                self.log(f"inferenceservice/{name}: {state}")
                last_state = state
            if ready and rolled:
                return obj
            if time.monotonic() >= deadline:
                raise TimeoutError(f"inferenceservice/{name} not ready after {timeout:.0f}s")
            self.sleep(poll_interval)

    def _predictor_deployment(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The Deployment KServe made for the predictor, as a camelCase dict, or None."""
        from kubernetes.client.exceptions import ApiException

        try:
            found = self.apps.read_namespaced_deployment(predictor_service_name(name), namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._api_error("read", "deployment", namespace, exc) from None
        return dict(self.apps.api_client.sanitize_for_serialization(found))

    # -- diagnosis ------------------------------------------------------------------------------
    def events(self, name: str, namespace: str, limit: int = 20) -> list[str]:
        """Recent events of the service and the objects KServe made for it (newest last)."""
        from kubernetes.client.exceptions import ApiException

        try:
            listing = self.core.list_namespaced_event(namespace)
        except ApiException:
            return []
        rows = []
        for event in listing.items or []:
            involved = event.involved_object
            if not involved or not (involved.name or "").startswith(name):
                continue
            when = event.last_timestamp or event.event_time or event.first_timestamp
            stamp = when.isoformat() if when else ""
            rows.append(
                (
                    stamp,
                    f"{stamp} {event.type} {involved.kind}/{involved.name} "
                    f"{event.reason}: {(event.message or '').strip()}".strip(),
                )
            )
        rows.sort(key=lambda row: row[0])
        return [text for _, text in rows[-limit:]]

    def pod_problems(self, name: str, namespace: str) -> list[str]:
        """``pod: container reason (message)`` for predictor pods that are not ready."""
        from kubernetes.client.exceptions import ApiException

        try:
            pods = self.core.list_namespaced_pod(
                namespace, label_selector=f"serving.kserve.io/inferenceservice={name}"
            )
        except ApiException:
            return []
        problems = []
        for pod in pods.items or []:
            labels = (pod.metadata and pod.metadata.labels) or {}
            if labels.get("serving.kserve.io/inferenceservice") != name:
                continue  # servers that ignore label selectors must not widen the report
            pod_name = pod.metadata.name if pod.metadata else "?"
            for status in (pod.status and pod.status.container_statuses) or []:
                waiting = status.state and status.state.waiting
                terminated = status.state and status.state.terminated
                if waiting:
                    problems.append(
                        f"{pod_name}: {status.name} {waiting.reason} ({waiting.message or ''})"
                    )
                elif terminated:
                    problems.append(
                        f"{pod_name}: {status.name} terminated {terminated.reason} "
                        f"(exit {terminated.exit_code})"
                    )
                elif not status.ready:
                    problems.append(f"{pod_name}: {status.name} not ready")
        return problems

    @staticmethod
    def _api_error(verb: str, what: str, namespace: str, exc: Any) -> DeploymentError:
        hint = ""
        if exc.status in (401, 403):
            hint = (
                ": the service account or kube context lacks RBAC for it "
                "(deployments/kind/manifests/flow-rbac.yaml grants the flow runner's)"
            )
        elif exc.status == 404 and "inferenceservice" in what:
            hint = ": is KServe installed (its CRDs) in this cluster?"
        body = (exc.body or "")[:500] if isinstance(exc.body, str) else ""
        return DeploymentError(
            f"could not {verb} {what} in namespace {namespace!r}: HTTP {exc.status} "
            f"{exc.reason}{hint}" + (f"; {body}" if body else "")
        )


def deploy(
    api_client: Any,
    desired: dict[str, Any],
    *,
    docker_config_json: str | None = None,
    timeout: float = 600.0,
    poll_interval: float = 2.0,
    log: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployOutcome:
    """Apply ``desired`` (from :func:`render_inference_service`) and wait until it serves.

    Raises:
        DeploymentFailed: not ready in time; carries conditions, events and pod reasons, and the
            previous spec has been restored so the previous revision keeps serving.
        DeploymentError: the API refused the objects (RBAC, missing CRD, invalid spec).
    """
    started = time.monotonic()
    log = log or (lambda message: None)
    deployer = InferenceServiceDeployer(api_client, log=log, sleep=sleep)
    meta = desired["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    image = desired["spec"]["predictor"]["containers"][0]["image"]
    account = desired["spec"]["predictor"].get("serviceAccountName")
    if account:
        deployer.ensure_pull_access(namespace, docker_config_json, account)
    action, previous = deployer.apply(desired)
    log(f"inferenceservice/{name} {action} in {namespace} (image {image})")
    try:
        obj = deployer.wait_ready(
            name, namespace, image, timeout=timeout, poll_interval=poll_interval
        )
    except TimeoutError as exc:
        current = deployer.get(name, namespace) or {}
        conditions = conditions_of(current)
        events = deployer.events(name, namespace)
        pods = deployer.pod_problems(name, namespace)
        restored = False
        if previous is not None and action == "updated":
            deployer.restore(previous)
            restored = True
        lines = [str(exc)]
        lines += ["conditions:"] + [f"  {c}" for c in format_conditions(conditions) or ["none"]]
        lines += ["pods:"] + [f"  {p}" for p in pods or ["none reported"]]
        lines += ["events:"] + [f"  {e}" for e in events or ["none"]]
        lines.append(
            "the previous spec was restored, so the previous revision keeps serving"
            if restored
            else "there was no previous revision to restore; the new object is left for inspection"
        )
        raise DeploymentFailed(
            "\n".join(lines), conditions=conditions, events=events, pods=pods, restored=restored
        ) from None
    address = ((obj.get("status") or {}).get("address") or {}).get("url")
    url = service_url(namespace, name)
    if address and address.startswith("http") and ".svc" in address:
        url = f"{address.rstrip('/')}/v2/models/{MODEL_NAME}/infer"
    return DeployOutcome(
        name=name,
        namespace=namespace,
        image=image,
        action=action,
        url=url,
        conditions=conditions_of(obj),
        seconds=round(time.monotonic() - started, 3),
    )
