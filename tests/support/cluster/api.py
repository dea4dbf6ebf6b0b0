"""The simulated cluster's Kubernetes API: kmock's in-memory emulator, extended to serve the real
``prefect-kubernetes`` worker, kopf, the ``kubernetes`` clients and our own code.

kmock's ``KubernetesEmulator`` stores objects in memory, serves API discovery and dispatches
requests. What an API server does beyond that, and what clients here rely on, is added:

* object metadata: ``generateName`` (kmock stores such an object under the name ``None``),
  ``uid``, ``resourceVersion`` (one counter, as etcd's revision), ``creationTimestamp``,
  ``generation`` bumped on spec changes only;
* patches as the content type says: JSON merge patch (RFC 7386), strategic merge patch (lists of
  named items merged by name, as for containers, env and volumes) and JSON patch (RFC 6902); the
  ``status`` subresource changes only ``status``, and the main resource never does;
* ``labelSelector`` and ``fieldSelector`` on lists and watches, ``resourceVersion`` on watches
  (events after it are replayed; none is sent twice), ``timeoutSeconds``; ``jobs``, ``pods`` and
  every other resource discovered as watchable (kmock marks them not watchable, so the worker's
  kopf observer never saw a pod or a Job);
* graceful pod deletion (``deletionTimestamp``; the node agent stops the container, then removes
  the pod), and the ``log`` subresource served by the node agent;
* HTTPS with a cluster CA, as clients verify a real API server.

No authentication or RBAC is enforced: any token is accepted (see docs/kind.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import secrets
import ssl
import string
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
from kmock import KubernetesEmulator, ResourceInfo, resource

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

#: group/version/plural -> (Kind, namespaced, subresources)
RESOURCES: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "v1/pods": ("Pod", True, ("status", "log")),
    "v1/services": ("Service", True, ("status",)),
    "v1/endpoints": ("Endpoints", True, ()),
    "v1/secrets": ("Secret", True, ()),
    "v1/configmaps": ("ConfigMap", True, ()),
    "v1/serviceaccounts": ("ServiceAccount", True, ()),
    "v1/events": ("Event", True, ()),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", True, ("status",)),
    "v1/nodes": ("Node", False, ("status",)),
    "batch/v1/jobs": ("Job", True, ("status",)),
    "apps/v1/deployments": ("Deployment", True, ("status",)),
    "apps/v1/replicasets": ("ReplicaSet", True, ("status",)),
    "apps/v1/statefulsets": ("StatefulSet", True, ("status",)),
    "serving.kserve.io/v1beta1/inferenceservices": ("InferenceService", True, ("status",)),
    "rbac.authorization.k8s.io/v1/roles": ("Role", True, ()),
    "rbac.authorization.k8s.io/v1/rolebindings": ("RoleBinding", True, ()),
    "networking.k8s.io/v1/ingresses": ("Ingress", True, ("status",)),
    # Stored, not acted on: no metrics API, so an HPA keeps minReplicas (as on Kind without
    # metrics-server).
    "autoscaling/v2/horizontalpodautoscalers": ("HorizontalPodAutoscaler", True, ("status",)),
    "events.k8s.io/v1/events": ("Event", True, ()),
}
#: Kind -> group/version/plural, for objects applied from manifests.
BY_KIND = {
    (kind, key.rsplit("/", 1)[0].removeprefix("v1") or "v1"): key
    for key, (kind, _, _) in RESOURCES.items()
}
_HISTORY = 50_000
_SUFFIX = string.ascii_lowercase + string.digits


def resource_key(api_version: str, kind: str) -> str:
    """``group/version/plural`` of a manifest's ``apiVersion`` and ``kind``."""
    for key, (known_kind, _, _) in RESOURCES.items():
        if known_kind == kind and key.rsplit("/", 1)[0] == api_version:
            return key
    raise KeyError(f"the simulated API does not serve {api_version} {kind}")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """A Kubernetes ``Status`` failure: code, reason, message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
        }


# -- selectors --------------------------------------------------------------------------------
_SET_EXPR = re.compile(r"^\s*(?P<key>[\w./-]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def label_matches(labels: Mapping[str, str], selector: str | None) -> bool:
    """The label selector grammar: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``in``, ``notin``."""
    for term in _split_selector(selector or ""):
        if match := _SET_EXPR.match(term):
            values = {v.strip() for v in match["values"].split(",") if v.strip()}
            present = labels.get(match["key"]) in values
            if present != (match["op"] == "in"):
                return False
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in re.split(r"==?", term, maxsplit=1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _path_value(obj: Mapping[str, Any], dotted: str) -> str:
    node: Any = obj
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return "" if node is None else str(node)


def field_matches(obj: Mapping[str, Any], selector: str | None) -> bool:
    for term in _split_selector(selector or ""):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if _path_value(obj, key.strip()) == value.strip():
                return False
        else:
            key, value = re.split(r"==?", term, maxsplit=1)
            if _path_value(obj, key.strip()) != value.strip():
                return False
    return True


# -- patches ----------------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: dicts merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch, except lists of named items (containers, env, volumes) merge by name."""
    if isinstance(patch, dict) and isinstance(target, dict):
        result = dict(target)
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None:
                result.pop(key, None)
            else:
                result[key] = strategic_merge_patch(result.get(key), value)
        return result
    if (
        isinstance(patch, list)
        and isinstance(target, list)
        and patch
        and all(isinstance(i, dict) and "name" in i for i in patch + target)
    ):
        merged = {item["name"]: item for item in target}
        order = [item["name"] for item in target]
        for item in patch:
            if item.get("$patch") == "delete":
                merged.pop(item["name"], None)
                continue
            if item["name"] not in merged:
                order.append(item["name"])
            merged[item["name"]] = strategic_merge_patch(merged.get(item["name"]), item)
        return [merged[name] for name in order if name in merged]
    return copy.deepcopy(patch)


def json_patch(target: Any, operations: Iterable[Mapping[str, Any]]) -> Any:
    """RFC 6902 ``add``, ``replace``, ``remove`` and ``test`` (enough for the clients here)."""
    document = copy.deepcopy(target)
    for op in operations:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = document
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1] if parts else ""
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise ApiError(422, "Invalid", f"json patch test failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                else:
                    parent[index] = op["value"]
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last, None)
        else:
            raise ApiError(422, "Invalid", f"unsupported json patch op {kind!r}")
    return document


# -- the server ---------------------------------------------------------------------------------
@dataclass(eq=False)  # one per watch request, kept in a set
class _Watcher:
    resource: Any
    namespace: str | None
    name: str | None
    labels: str | None
    fields: str | None
    queue: asyncio.Queue[dict[str, Any] | None]

    def wants(self, res: Any, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        return (
            res == self.resource
            and (self.namespace is None or meta.get("namespace") == self.namespace)
            and (self.name is None or meta.get("name") == self.name)
            and label_matches(meta.get("labels") or {}, self.labels)
            and field_matches(obj, self.fields)
        )


LogSource = Callable[[str, str, Mapping[str, str]], Awaitable[bytes | AsyncIterator[bytes]]]


@attrs.define(kw_only=True)
class SimulatedAPI(KubernetesEmulator):
    """The extended emulator; see the module docstring. Mutate objects only on its event loop."""

    log_source: LogSource | None = None
    _rv: int = attrs.field(default=1, init=False)
    _history: deque[tuple[int, Any, dict[str, Any]]] = attrs.field(
        factory=lambda: deque(maxlen=_HISTORY), init=False
    )
    _watchers: set[_Watcher] = attrs.field(factory=set, init=False)
    _mutation_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for key, (kind, namespaced, subresources) in RESOURCES.items():
            self.resources[key] = ResourceInfo(
                kind=kind,
                namespaced=namespaced,
                singular=kind.lower(),
                verbs=set(VERBS),
                subresources=set(subresources),
            )

    async def _serve_version(self, request: Any) -> Any:
        # kmock names the core group's version "/v1"; kubectl (rightly) finds no pods there.
        listing = await super()._serve_version(request)
        if isinstance(listing, dict) and str(listing.get("groupVersion", "")).startswith("/"):
            listing["groupVersion"] = listing["groupVersion"].lstrip("/")
        return listing

    # -- the in-process store API (controllers, node agent, setup) ----------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _publish(self, res: Any, kind: str, obj: dict[str, Any]) -> None:
        event = {"type": kind, "object": copy.deepcopy(obj)}
        self._history.append((int(obj["metadata"]["resourceVersion"]), res, event))
        for watcher in list(self._watchers):
            if watcher.wants(res, obj):
                watcher.queue.put_nowait(event)

    def _existing(self, res: Any, namespace: str | None, name: str) -> Any | None:
        key = (res, namespace, name)
        if key not in set(self._objects.keys()):
            return None
        obj = self._objects[key]
        return None if obj.deleted else obj

    def get(self, key: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A copy of the stored object, or None."""
        obj = self._existing(resource(key), namespace, name)
        return copy.deepcopy(obj.raw) if obj is not None else None

    def list(
        self, key: str, namespace: str | None = None, labels: str | None = None
    ) -> list[dict[str, Any]]:
        """Copies of the stored objects of ``key`` (all namespaces when ``namespace`` is None)."""
        res = resource(key)
        out = []
        for (r, ns, _), obj in list(self._objects.items()):
            if r != res or obj.deleted or (namespace is not None and ns != namespace):
                continue
            if label_matches(obj.raw.get("metadata", {}).get("labels") or {}, labels):
                out.append(copy.deepcopy(obj.raw))
        return out

    def create(self, key: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new object (metadata filled in as the API server does) and announce it."""
        res = resource(key)
        kind, namespaced, _ = RESOURCES[key]
        obj = copy.deepcopy(dict(body))
        obj.setdefault("apiVersion", key.rsplit("/", 1)[0])
        obj.setdefault("kind", kind)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise ApiError(422, "Invalid", "metadata.name or metadata.generateName is required")
            meta["name"] = prefix + "".join(secrets.choice(_SUFFIX) for _ in range(5))
        namespace = meta.get("namespace") if namespaced else None
        if namespaced and not namespace:
            raise ApiError(422, "Invalid", "metadata.namespace is required")
        if self._existing(res, namespace, meta["name"]) is not None:
            raise ApiError(
                409, "AlreadyExists", f'{key.rsplit("/", 1)[1]} "{meta["name"]}" already exists'
            )
        meta.update(
            uid=str(uuid.uuid4()),
            creationTimestamp=now_rfc3339(),
            resourceVersion=self._next_rv(),
            generation=1,
        )
        meta.pop("deletionTimestamp", None)
        if key == "v1/pods":
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        storage_key = (res, namespace, meta["name"])
        if storage_key in set(self._objects.keys()):
            self._objects[storage_key].create(obj)
        else:
            self._objects[storage_key] = obj
        self._publish(res, "ADDED", obj)
        return copy.deepcopy(obj)

    def replace(self, key: str, namespace: str | None, name: str, new: dict[str, Any]) -> dict:
        """Store ``new`` as the object's next version (generation bumped on a spec change)."""
        res = resource(key)
        current = self._existing(res, namespace, name)
        if current is None:
            raise ApiError(404, "NotFound", f'{key.rsplit("/", 1)[1]} "{name}" not found')
        old = current.raw
        new = copy.deepcopy(new)
        meta = new.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "name", "namespace"):
            if field in old.get("metadata", {}):
                meta[field] = old["metadata"][field]
        generation = int(old.get("metadata", {}).get("generation", 1))
        spec_changed = {k: v for k, v in old.items() if k not in ("metadata", "status")} != {
            k: v for k, v in new.items() if k not in ("metadata", "status")
        }
        meta["generation"] = generation + 1 if spec_changed else generation
        if new == old:
            return copy.deepcopy(old)
        meta["resourceVersion"] = self._next_rv()
        current.create(new)
        self._publish(res, "MODIFIED", new)
        return copy.deepcopy(new)

    def patch(
        self, key: str, namespace: str | None, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the stored object (status included: this is the in-process API)."""
        current = self.get(key, namespace, name)
        if current is None:
            raise ApiError(404, "NotFound", f'{key.rsplit("/", 1)[1]} "{name}" not found')
        return self.replace(key, namespace, name, merge_patch(current, dict(patch)))

    def remove(self, key: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """Delete the object now (no grace) and announce it."""
        res = resource(key)
        current = self._existing(res, namespace, name)
        if current is None:
            return None
        obj = copy.deepcopy(current.raw)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        current.delete()
        self._publish(res, "DELETED", obj)
        return obj

    def delete(self, key: str, namespace: str | None, name: str, grace: int | None = None) -> dict:
        """Delete as the API does: pods (and objects with finalizers) get a deletionTimestamp."""
        current = self.get(key, namespace, name)
        if current is None:
            raise ApiError(404, "NotFound", f'{key.rsplit("/", 1)[1]} "{name}" not found')
        meta = current["metadata"]
        graceful = key == "v1/pods" or meta.get("finalizers")
        if not graceful:
            return self.remove(key, namespace, name) or current
        if meta.get("deletionTimestamp"):
            return current
        meta["deletionTimestamp"] = now_rfc3339()
        if key == "v1/pods":
            spec_grace = current.get("spec", {}).get("terminationGracePeriodSeconds", 30)
            meta["deletionGracePeriodSeconds"] = spec_grace if grace is None else grace
        return self.replace(key, namespace, name, current)

    def record_event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = "kubelet",
    ) -> None:
        """A ``v1`` Event about ``involved`` (an object), as kubelets and controllers write."""
        meta = involved.get("metadata", {})
        stamp = now_rfc3339()
        self.create(
            "v1/events",
            {
                "metadata": {
                    "generateName": f"{meta.get('name')}.",
                    "namespace": meta.get("namespace") or "default",
                },
                "involvedObject": {
                    "kind": involved.get("kind"),
                    "name": meta.get("name"),
                    "namespace": meta.get("namespace"),
                    "uid": meta.get("uid"),
                    "apiVersion": involved.get("apiVersion"),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "source": {"component": component},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            },
        )

    # -- HTTP ---------------------------------------------------------------------------------
    @staticmethod
    def _key_of(request: Any) -> str:
        res = request.resource
        group = res.group or ""
        return f"{group}/{res.version}/{res.plural}" if group else f"{res.version}/{res.plural}"

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        if request.resource is None or request.resource.plural is None:
            return await super()._handle(request)
        key = self._key_of(request)
        if key not in RESOURCES:
            error = ApiError(404, "NotFound", f"the server could not find the resource {key}")
            return aiohttp.web.json_response(error.status(), status=404)
        try:
            if request.subresource == "log":
                return await self._serve_pod_log(request)
            method = str(getattr(request.method, "value", request.method)).upper()
            if method == "GET" and request.params.get("watch") in ("true", "1"):
                return await self._watch(request, key)
            async with self._mutation_lock:
                body, status = self._serve(request, key, method)
            return aiohttp.web.json_response(body, status=status)
        except ApiError as exc:
            return aiohttp.web.json_response(exc.status(), status=exc.code)

    def _serve(self, request: Any, key: str, method: str) -> tuple[dict[str, Any], int]:
        namespace, name, sub = request.namespace, request.name, request.subresource
        kind = RESOURCES[key][0]
        if method == "GET" and name is None:
            items = [
                obj
                for obj in self.list(key, namespace, request.params.get("labelSelector"))
                if field_matches(obj, request.params.get("fieldSelector"))
            ]
            return {
                "apiVersion": key.rsplit("/", 1)[0],
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }, 200
        if method == "GET":
            found = self.get(key, namespace, name)
            if found is None:
                raise ApiError(404, "NotFound", f'{key.rsplit("/", 1)[1]} "{name}" not found')
            return found, 200
        if method == "POST" and name is None:
            body = dict(request.data or {})
            if namespace:
                body.setdefault("metadata", {})["namespace"] = namespace
            return self.create(key, body), 201
        if method in ("PATCH", "PUT") and name is not None:
            current = self.get(key, namespace, name)
            if current is None:
                raise ApiError(404, "NotFound", f'{key.rsplit("/", 1)[1]} "{name}" not found')
            new = self._patched(current, request, method)
            if sub == "status":
                new = {**current, "status": new.get("status", current.get("status"))}
            elif "status" in RESOURCES[key][2]:
                new["status"] = current.get("status")
                if new["status"] is None:
                    new.pop("status")
            return self.replace(key, namespace, name, new), 200
        if method == "DELETE" and name is not None:
            options = request.data if isinstance(request.data, dict) else {}
            grace = options.get("gracePeriodSeconds")
            if "gracePeriodSeconds" in request.params:
                grace = int(request.params["gracePeriodSeconds"])
            return self.delete(key, namespace, name, grace), 200
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {key}")

    @staticmethod
    def _patched(current: dict[str, Any], request: Any, method: str) -> dict[str, Any]:
        if method == "PUT":
            return dict(request.data or {})
        content_type = request.headers.get("Content-Type", "")
        data = request.data
        if "json-patch" in content_type:
            return dict(json_patch(current, data or []))
        if "strategic-merge-patch" in content_type:
            return dict(strategic_merge_patch(current, data or {}))
        return dict(merge_patch(current, data or {}))

    async def _watch(self, request: Any, key: str) -> aiohttp.web.StreamResponse:
        params = request.params
        watcher = _Watcher(
            resource=resource(key),
            namespace=request.namespace,
            name=request.name or _field_name(params.get("fieldSelector")),
            labels=params.get("labelSelector"),
            fields=params.get("fieldSelector"),
            queue=asyncio.Queue(),
        )
        since = params.get("resourceVersion")
        async with self._mutation_lock:
            if since and since != "0":
                start = int(since)
                if self._history and start < self._history[0][0] - 1:
                    raise ApiError(410, "Expired", f"too old resource version: {since}")
                backlog = [
                    event
                    for rv, res, event in self._history
                    if rv > start and watcher.wants(res, event["object"])
                ]
            else:
                backlog = [
                    {"type": "ADDED", "object": obj}
                    for obj in self.list(key, request.namespace, watcher.labels)
                    if watcher.wants(watcher.resource, obj)
                ]
            for event in backlog:
                watcher.queue.put_nowait(event)
            self._watchers.add(watcher)
        response = aiohttp.web.StreamResponse(
            status=200, headers={"Content-Type": "application/json"}
        )
        await response.prepare(request._raw_request)
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = await watcher.queue.get()
                    if event is None:
                        break
                    await response.write(json.dumps(event).encode() + b"\n")
        except (TimeoutError, ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.discard(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _serve_pod_log(self, request: Any) -> aiohttp.web.StreamResponse:
        if self.get("v1/pods", request.namespace, request.name) is None:
            raise ApiError(404, "NotFound", f'pods "{request.name}" not found')
        if self.log_source is None:
            raise ApiError(503, "ServiceUnavailable", "no node agent serves logs")
        produced = await self.log_source(request.namespace, request.name, request.params)
        if isinstance(produced, bytes):
            return aiohttp.web.Response(body=produced, content_type="text/plain")
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request._raw_request)
        with contextlib.suppress(ConnectionResetError):
            async for chunk in produced:
                await response.write(chunk)
            await response.write_eof()
        return response

    def close_watches(self) -> None:
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)


def _field_name(selector: str | None) -> str | None:
    for term in _split_selector(selector or ""):
        if term.startswith("metadata.name=") and "!=" not in term:
            return term.split("=", 1)[1].lstrip("=")
    return None


class ApiServer:
    """The API on its own event loop in a thread, over HTTPS on ``host:port``.

    Everything that touches the objects (controllers, the node agent) runs on this loop:
    :meth:`call` runs a function there from another thread.
    """

    def __init__(self, host: str, port: int, cert: Path, key: Path) -> None:
        self.host, self.port = host, port
        self.loop = asyncio.new_event_loop()
        self.api: SimulatedAPI | None = None
        self._cert, self._key = cert, key
        self._thread = threading.Thread(target=self._run, name="sim-cluster", daemon=True)
        self._ready = threading.Event()
        self._runner: aiohttp.web.ServerRunner | None = None
        self._stack = contextlib.AsyncExitStack()
        self.failure: BaseException | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> SimulatedAPI:
        self._thread.start()
        if not self._ready.wait(60) or self.api is None:
            raise RuntimeError(f"the simulated API did not start: {self.failure!r}")
        return self.api

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # reported by start()
            self.failure = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        api = SimulatedAPI()
        await self._stack.enter_async_context(api)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._cert, self._key)
        server = aiohttp.web.Server(api)
        self._runner = aiohttp.web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, self.host, self.port, ssl_context=context)
        await site.start()
        self.api = api

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 60) -> Any:
        """Run ``fn(*args)`` on the API's loop (awaited if it is a coroutine); return its result."""

        async def run() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self) -> None:
        async def shutdown() -> None:
            if self.api is not None:
                self.api.close_watches()
            if self._runner is not None:
                await self._runner.cleanup()
            await self._stack.aclose()

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
