"""The simulated node agent (kubelet): the cluster's pods as real containers on the CI engine.

For every pod bound to the node (the agent binds unscheduled pods to itself: there is one node and
no scheduler) it does what a kubelet does, with Docker instead of containerd:

* a sandbox container (Kubernetes' pause container: the base image sleeping) owns the pod's network
  namespace, with ``/etc/hosts`` holding the cluster's DNS names; the app container joins it;
* ``env`` resolved from Secrets and ConfigMaps (``secretKeyRef``, ``configMapKeyRef``, ``envFrom``,
  ``fieldRef``, ``$(VAR)`` expansion); a missing Secret, ConfigMap or key leaves the pod in
  ``CreateContainerConfigError`` with the kubelet's own message until it appears;
* the image pulled as ``imagePullPolicy`` says, with the pod's (or its service account's) pull
  secrets, else the node's registry login (what Kind's containerd config would hold);
  ``ErrImagePull`` / ``ImagePullBackOff`` when that fails;
* ``command``/``args`` as Kubernetes defines them (ENTRYPOINT/CMD), ``workingDir``,
  ``securityContext`` user and groups, memory and CPU limits (the engine kills a container over its
  memory limit: ``OOMKilled``, exit code 137);
* volumes: ``hostPath`` through the node's mounts (``deployments/kind/cluster.yaml``'s
  ``extraMounts``: the node's ``/var/run/docker.sock`` is this machine's Docker engine socket),
  ``emptyDir``, ``secret``, ``configMap``, ``persistentVolumeClaim`` (a folder, as Kind's
  local-path provisioner), the service-account token, ``ca.crt`` and namespace;
* readiness, liveness and startup probes (``httpGet``, ``tcpSocket``, ``exec``) run inside the
  pod's namespace; ``restartPolicy``; graceful deletion (``preStop``, SIGTERM, grace period,
  SIGKILL); pod phase, conditions and container statuses written back to the API, with events;
  container logs served to the API's ``log`` subresource.

Not simulated: scheduling (requests are not checked against the node), init containers,
ephemeral storage, image garbage collection, service environment variables other than
``KUBERNETES_SERVICE_*``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.cluster.api import ApiError, SimulatedAPI, now_rfc3339
from tests.support.cluster.network import ClusterNetwork

logger = logging.getLogger("sim.kubelet")
NODE = "bridgeai-control-plane"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
LABEL = "sim.bridgeai.dev/cluster"


class ConfigError(Exception):
    """The container's configuration cannot be built yet (CreateContainerConfigError)."""


class PullError(Exception):
    """The image cannot be pulled (ErrImagePull)."""


def parse_quantity(value: str | int | float | None) -> float | None:
    """A Kubernetes quantity (``512Mi``, ``2Gi``, ``500m``, ``2``) as a number."""
    if value is None:
        return None
    text = str(value)
    units = {
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
        "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3,
    }  # fmt: skip
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    return float(text)


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (``$$`` escapes)."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", substitute, value)


@dataclass
class ContainerRun:
    """One app container instance of a pod."""

    id: str
    started_at: str
    restart_count: int


@dataclass
class PodRuntime:
    """What the agent knows about one pod it runs."""

    uid: str
    namespace: str
    name: str
    sandbox: str | None = None
    pid: int | None = None
    hosts_file: Path | None = None
    container: ContainerRun | None = None
    previous: ContainerRun | None = None
    waiting: tuple[str, str] | None = None  # reason, message
    terminated: dict[str, Any] | None = None
    ready: bool = False
    started_probe_ok: bool = False
    restart_count: int = 0
    next_attempt: float = 0.0
    backoff: float = 5.0
    probe_due: dict[str, float] = field(default_factory=dict)
    probe_failures: dict[str, int] = field(default_factory=dict)
    last_status: dict[str, Any] | None = None
    terminating: bool = False
    busy: bool = False
    logs_after_exit: dict[str, bytes] = field(default_factory=dict)


class NodeAgent:
    """The kubelet of the simulated node; :meth:`tick` runs on the API's event loop."""

    def __init__(
        self,
        api: SimulatedAPI,
        network: ClusterNetwork,
        docker: Any,
        root: Path,
        *,
        session: str,
        sandbox_image: str,
        node_mounts: Mapping[str, str],
        registry_auth: Mapping[str, Mapping[str, str]],
        ca_pem: bytes,
        api_address: str,
        api_port: int,
    ) -> None:
        self.api = api
        self.network = network
        self.docker = docker
        self.root = root
        self.session = session
        self.sandbox_image = sandbox_image
        #: node path -> path on this machine (the node's own mounts, Kind's extraMounts)
        self.node_mounts = dict(node_mounts)
        #: registry host -> {"username", "password"}: the node's own registry login
        self.registry_auth = {k: dict(v) for k, v in registry_auth.items()}
        self.ca_pem = ca_pem
        self.api_address, self.api_port = api_address, api_port
        self.pods: dict[str, PodRuntime] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        api.log_source = self.logs

    # -- the loop ---------------------------------------------------------------------------
    async def run(self, interval: float = 0.5) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                logger.exception("kubelet pass failed")
            await asyncio.sleep(interval)

    def _spawn(self, runtime: PodRuntime, coro: Any) -> None:
        runtime.busy = True

        async def guarded() -> None:
            try:
                await coro
            except Exception:
                logger.exception("pod %s/%s", runtime.namespace, runtime.name)
            finally:
                runtime.busy = False

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tick(self) -> None:
        seen = set()
        for pod in self.api.list("v1/pods"):
            meta, spec = pod["metadata"], pod.get("spec", {})
            uid = meta["uid"]
            seen.add(uid)
            if not spec.get("nodeName"):
                self._bind(pod)
                continue
            runtime = self.pods.get(uid)
            if runtime is None:
                runtime = self.pods[uid] = PodRuntime(uid, meta["namespace"], meta["name"])
            if runtime.busy:
                continue
            if meta.get("deletionTimestamp"):
                self._spawn(runtime, self._terminate(pod, runtime))
            elif runtime.terminated is not None and spec.get("restartPolicy") == "Never":
                continue
            elif runtime.container is None:
                if time.monotonic() >= runtime.next_attempt:
                    self._spawn(runtime, self._start(pod, runtime))
            else:
                self._spawn(runtime, self._sync(pod, runtime))
        for uid in set(self.pods) - seen:
            runtime = self.pods.pop(uid)
            self._spawn(runtime, self._cleanup(runtime))

    def _bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        pod["spec"]["nodeName"] = NODE
        status = pod.setdefault("status", {})
        status.update(
            phase="Pending",
            qosClass=_qos(pod),
            conditions=[
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}
            ],
        )
        self.api.replace("v1/pods", meta["namespace"], meta["name"], pod)
        self.api.record_event(
            pod,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {NODE}",
            component="default-scheduler",
        )

    # -- start --------------------------------------------------------------------------------
    async def _start(self, pod: dict[str, Any], runtime: PodRuntime) -> None:
        spec = pod["spec"]
        (container,) = spec["containers"][:1]
        try:
            env = self._environment(pod, container)
        except ConfigError as exc:
            self._waiting(pod, runtime, "CreateContainerConfigError", str(exc))
            runtime.next_attempt = time.monotonic() + 2
            return
        policy = container.get("imagePullPolicy") or (
            "Always"
            if container["image"].endswith(":latest") or ":" not in container["image"]
            else "IfNotPresent"
        )
        try:
            await self._pull(pod, container["image"], policy)
        except PullError as exc:
            reason = "ImagePullBackOff" if runtime.waiting and runtime.waiting[0] in (
                "ErrImagePull", "ImagePullBackOff") else "ErrImagePull"  # fmt: skip
            self._waiting(pod, runtime, reason, str(exc))
            runtime.next_attempt = time.monotonic() + runtime.backoff
            runtime.backoff = min(runtime.backoff * 2, 60)
            return
        if runtime.sandbox is None:
            await self._sandbox(pod, runtime)
        binds = self._volumes(pod, container, runtime)
        created = await asyncio.to_thread(self._create, pod, container, env, binds, runtime)
        runtime.container = created
        runtime.waiting, runtime.terminated, runtime.ready = None, None, False
        runtime.probe_due.clear()
        runtime.probe_failures.clear()
        runtime.started_probe_ok = "startupProbe" not in container
        self.api.record_event(pod, "Started", f"Started container {container['name']}")
        self._write_status(pod, runtime)

    def _secret(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.api.get("v1/secrets", namespace, name)
        if found is None:
            return None
        data = {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}
        data.update(found.get("stringData") or {})
        return data

    def _config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.api.get("v1/configmaps", namespace, name)
        return None if found is None else dict(found.get("data") or {})

    def _environment(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        """The container's environment, as the kubelet builds it (raises ConfigError)."""
        namespace = pod["metadata"]["namespace"]
        env: dict[str, str] = {
            "KUBERNETES_SERVICE_HOST": self.api_address,
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            "KUBERNETES_PORT": f"tcp://{self.api_address}:443",
            "HOSTNAME": pod["metadata"]["name"],
        }
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "secretRef" in source:
                ref, values = (
                    source["secretRef"],
                    self._secret(namespace, source["secretRef"]["name"]),
                )
                kind = "secret"
            else:
                ref = source["configMapRef"]
                values, kind = self._config_map(namespace, ref["name"]), "configmap"
            if values is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind} "{ref["name"]}" not found')
            env.update({prefix + k: v for k, v in values.items()})
        for entry in container.get("env") or []:
            name = entry["name"]
            if "value" in entry:
                env[name] = expand(str(entry["value"]), env)
                continue
            source = entry.get("valueFrom") or {}
            if "secretKeyRef" in source or "configMapKeyRef" in source:
                is_secret = "secretKeyRef" in source
                ref = source["secretKeyRef"] if is_secret else source["configMapKeyRef"]
                values = (
                    self._secret(namespace, ref["name"])
                    if is_secret
                    else self._config_map(namespace, ref["name"])
                )
                kind = "Secret" if is_secret else "ConfigMap"
                if values is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
                if ref["key"] not in values:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(
                        f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}"
                    )
                env[name] = values[ref["key"]]
            elif "fieldRef" in source:
                env[name] = _field(pod, source["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in source:
                limits = (container.get("resources") or {}).get("limits") or {}
                env[name] = str(
                    limits.get(source["resourceFieldRef"]["resource"].split(".")[-1], "")
                )
        return env

    async def _pull(self, pod: dict[str, Any], image: str, policy: str) -> None:
        from docker.errors import ImageNotFound

        def present() -> bool:
            try:
                self.docker.images.get(image)
                return True
            except ImageNotFound:
                return False

        if policy == "Never":
            if not await asyncio.to_thread(present):
                raise PullError(
                    f'Container image "{image}" is not present with pull policy of Never'
                )
            return
        if policy == "IfNotPresent" and await asyncio.to_thread(present):
            return
        self.api.record_event(pod, "Pulling", f'Pulling image "{image}"')
        auth = self._auth_for(pod, image)
        started = time.monotonic()
        try:
            await asyncio.to_thread(self._do_pull, image, auth)
        except Exception as exc:  # the registry's words, as the kubelet reports them
            self.api.record_event(
                pod, "Failed", f'Failed to pull image "{image}": {exc}', type_="Warning"
            )
            raise PullError(f'Back-off pulling image "{image}": {exc}') from None
        self.api.record_event(
            pod,
            "Pulled",
            f'Successfully pulled image "{image}" in {time.monotonic() - started:.1f}s',
        )

    def _do_pull(self, image: str, auth: dict[str, str] | None) -> None:
        from bridgeai.deploy.image import pull

        pull(self.docker, image, auth)

    def _auth_for(self, pod: dict[str, Any], image: str) -> dict[str, str] | None:
        host = image.split("/", 1)[0]
        namespace = pod["metadata"]["namespace"]
        names = [s["name"] for s in pod["spec"].get("imagePullSecrets") or []]
        account = self.api.get(
            "v1/serviceaccounts", namespace, pod["spec"].get("serviceAccountName") or "default"
        )
        names += [s["name"] for s in (account or {}).get("imagePullSecrets") or []]
        for name in names:
            values = self._secret(namespace, name) or {}
            config = json.loads(values.get(".dockerconfigjson") or "{}")
            entry = (config.get("auths") or {}).get(host)
            if entry:
                return {"username": entry["username"], "password": entry["password"]}
        return self.registry_auth.get(host)

    async def _sandbox(self, pod: dict[str, Any], runtime: PodRuntime) -> None:
        meta = pod["metadata"]
        hosts = self.network.hosts(meta["namespace"])

        def create() -> tuple[str, int, Path | None]:
            name = f"k8s_POD_{meta['name']}_{meta['namespace']}_{meta['uid'][:8]}"
            with contextlib.suppress(Exception):
                self.docker.containers.get(name).remove(force=True)
            sandbox = self.docker.containers.run(
                self.sandbox_image,
                ["sleep", "infinity"],
                name=name,
                hostname=meta["name"][:63],
                network_mode="none",
                extra_hosts=hosts,
                labels={LABEL: self.session, "sim.bridgeai.dev/pod-uid": meta["uid"]},
                detach=True,
                init=False,
            )
            sandbox.reload()
            hosts_path = sandbox.attrs.get("HostsPath")
            return (
                sandbox.id,
                int(sandbox.attrs["State"]["Pid"]),
                Path(hosts_path) if hosts_path else None,
            )

        runtime.sandbox, runtime.pid, runtime.hosts_file = await asyncio.to_thread(create)
        await self.network.attach_pod(
            meta["uid"], meta["namespace"], runtime.pid, runtime.hosts_file
        )

    def _volumes(
        self, pod: dict[str, Any], container: dict[str, Any], runtime: PodRuntime
    ) -> dict[str, dict[str, str]]:
        meta, spec = pod["metadata"], pod["spec"]
        base = self.root / "pods" / meta["uid"]
        sources: dict[str, Path] = {}
        for volume in spec.get("volumes") or []:
            name = volume["name"]
            if "hostPath" in volume:
                node_path = volume["hostPath"]["path"]
                host = self.node_mounts.get(node_path)
                if host is None:  # the node's own filesystem
                    host = str(self.root / "node" / node_path.lstrip("/"))
                    Path(host).mkdir(parents=True, exist_ok=True)
                sources[name] = Path(host)
            elif "emptyDir" in volume:
                sources[name] = _mkdir(base / "volumes" / name)
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                sources[name] = _mkdir(self.root / "pvc" / meta["namespace"] / claim)
            elif "secret" in volume or "configMap" in volume:
                target = _mkdir(base / "volumes" / name)
                if "secret" in volume:
                    values = self._secret(meta["namespace"], volume["secret"]["secretName"]) or {}
                else:
                    values = self._config_map(meta["namespace"], volume["configMap"]["name"]) or {}
                for key, value in values.items():
                    (target / key).write_text(value)
                sources[name] = target
        binds: dict[str, dict[str, str]] = {}
        for mount in container.get("volumeMounts") or []:
            source = sources.get(mount["name"])
            if source is not None:
                mode = "ro" if mount.get("readOnly") else "rw"
                binds[str(source)] = {"bind": mount["mountPath"], "mode": mode}
        if spec.get("automountServiceAccountToken", True) is not False:
            token_dir = _mkdir(base / "serviceaccount")
            (token_dir / "token").write_text(f"sim-token-{meta['namespace']}-{meta['uid']}")
            (token_dir / "ca.crt").write_bytes(self.ca_pem)
            (token_dir / "namespace").write_text(meta["namespace"])
            binds[str(token_dir)] = {"bind": SA_DIR, "mode": "ro"}
        return binds

    def _create(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        env: dict[str, str],
        binds: dict[str, dict[str, str]],
        runtime: PodRuntime,
    ) -> ContainerRun:
        meta, spec = pod["metadata"], pod["spec"]
        limits = (container.get("resources") or {}).get("limits") or {}
        memory = parse_quantity(limits.get("memory"))
        cpus = parse_quantity(limits.get("cpu"))
        security = {
            **(spec.get("securityContext") or {}),
            **(container.get("securityContext") or {}),
        }
        kwargs: dict[str, Any] = {}
        if "runAsUser" in security:
            user = str(security["runAsUser"])
            if "runAsGroup" in security:
                user += f":{security['runAsGroup']}"
            kwargs["user"] = user
        groups = [str(g) for g in security.get("supplementalGroups") or []]
        if security.get("fsGroup") is not None:
            groups.append(str(security["fsGroup"]))
            for source in binds:
                if str(source).startswith(str(self.root)):
                    shutil.chown(source, group=int(security["fsGroup"]))
                    Path(source).chmod(0o2775)
        if groups:
            kwargs["group_add"] = groups
        if memory:
            kwargs["mem_limit"] = int(memory)
            kwargs["memswap_limit"] = int(memory)
        if cpus:
            import os

            kwargs["nano_cpus"] = int(min(cpus, os.cpu_count() or 1) * 1e9)
        command = [expand(str(c), env) for c in container.get("command") or []] or None
        args = [expand(str(a), env) for a in container.get("args") or []] or None
        name = "_".join(
            ("k8s", container["name"], meta["name"], meta["namespace"], meta["uid"][:8],
             str(runtime.restart_count))
        )  # fmt: skip
        with contextlib.suppress(Exception):
            self.docker.containers.get(name).remove(force=True)
        created = self.docker.containers.create(
            container["image"],
            command=args if args is not None else ([] if command else None),
            entrypoint=command,
            environment=env,
            working_dir=container.get("workingDir"),
            network_mode=f"container:{runtime.sandbox}",
            volumes=binds,
            labels={LABEL: self.session, "sim.bridgeai.dev/pod-uid": meta["uid"]},
            name=name,
            detach=True,
            stop_signal="SIGTERM",
            **kwargs,
        )
        created.start()
        created.reload()
        return ContainerRun(created.id, created.attrs["State"]["StartedAt"], runtime.restart_count)

    # -- running ------------------------------------------------------------------------------
    async def _sync(self, pod: dict[str, Any], runtime: PodRuntime) -> None:
        (container,) = pod["spec"]["containers"][:1]
        assert runtime.container is not None
        state = await asyncio.to_thread(self._inspect, runtime.container.id)
        if state is None or not state.get("Running"):
            await self._exited(pod, runtime, container, state or {})
            return
        now = time.monotonic()
        if not runtime.started_probe_ok and "startupProbe" in container:
            ok = await self._probe(runtime, container, "startupProbe", now)
            if ok:
                runtime.started_probe_ok = True
        elif "livenessProbe" in container:
            alive = await self._probe(runtime, container, "livenessProbe", now)
            if alive is False:
                self.api.record_event(
                    pod,
                    "Killing",
                    f"Container {container['name']} failed liveness probe, will be restarted",
                )
                await asyncio.to_thread(self._stop, runtime.container.id, 10)
                return
        if runtime.started_probe_ok:
            if "readinessProbe" in container:
                result = await self._probe(runtime, container, "readinessProbe", now)
                if result is not None:
                    if runtime.ready and not result:
                        self.api.record_event(
                            pod, "Unhealthy", "Readiness probe failed", type_="Warning"
                        )
                    runtime.ready = result
            else:
                runtime.ready = True
        self._write_status(pod, runtime)

    async def _probe(
        self, runtime: PodRuntime, container: dict[str, Any], kind: str, now: float
    ) -> bool | None:
        """True/False when the probe ran and decided, None when it is not due."""
        probe = container[kind]
        if kind not in runtime.probe_due:
            runtime.probe_due[kind] = now + float(probe.get("initialDelaySeconds", 0))
        if now < runtime.probe_due[kind]:
            return None
        runtime.probe_due[kind] = now + float(probe.get("periodSeconds", 10))
        ok = await self._run_probe(runtime, container, probe)
        if ok:
            runtime.probe_failures[kind] = 0
            return True
        runtime.probe_failures[kind] = runtime.probe_failures.get(kind, 0) + 1
        if kind == "readinessProbe" and not runtime.ready:
            return False
        return (
            False if runtime.probe_failures[kind] >= int(probe.get("failureThreshold", 3)) else None
        )

    async def _run_probe(self, runtime: PodRuntime, container: dict[str, Any], probe: dict) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        assert runtime.pid is not None and runtime.container is not None
        try:
            if "exec" in probe:
                code = await asyncio.wait_for(
                    asyncio.to_thread(self._exec, runtime.container.id, probe["exec"]["command"]),
                    timeout + 5,
                )
                return code == 0
            action = probe.get("httpGet") or probe.get("tcpSocket") or {}
            port = _port(container, action.get("port"))
            sock = await self.network.netns.connect(runtime.pid, port, timeout=timeout)
            reader, writer = await asyncio.open_connection(sock=sock)
            try:
                if "httpGet" not in probe:
                    return True
                path = action.get("path", "/")
                writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
                await writer.drain()
                line = await asyncio.wait_for(reader.readline(), timeout)
                status = int(line.split()[1]) if line.split()[1:] else 0
                return 200 <= status < 400
            finally:
                writer.close()
        except (OSError, TimeoutError, ValueError, IndexError):
            return False

    def _exec(self, container_id: str, command: list[str]) -> int:
        result = self.docker.containers.get(container_id).exec_run(command)
        return int(result.exit_code)

    def _inspect(self, container_id: str) -> dict[str, Any] | None:
        from docker.errors import NotFound

        try:
            return dict(self.docker.api.inspect_container(container_id)["State"])
        except NotFound:
            return None

    async def _exited(
        self, pod: dict[str, Any], runtime: PodRuntime, container: dict[str, Any], state: dict
    ) -> None:
        assert runtime.container is not None
        code = int(state.get("ExitCode", 137 if not state else 0))
        reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
        logs = await asyncio.to_thread(self._container_logs, runtime.container.id, None)
        runtime.logs_after_exit[runtime.container.id] = logs
        runtime.terminated = {
            "exitCode": code,
            "reason": reason,
            "startedAt": runtime.container.started_at,
            "finishedAt": state.get("FinishedAt") or now_rfc3339(),
            "containerID": f"docker://{runtime.container.id}",
        }
        if reason == "OOMKilled":
            self.api.record_event(
                pod,
                "OOMKilled",
                f"Container {container['name']} was killed for memory",
                type_="Warning",
            )
        runtime.ready = False
        policy = pod["spec"].get("restartPolicy", "Always")
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            runtime.previous, runtime.container = runtime.container, None
            runtime.restart_count += 1
            runtime.next_attempt = time.monotonic() + runtime.backoff
            runtime.backoff = min(runtime.backoff * 2, 60)
            runtime.waiting = (
                "CrashLoopBackOff",
                f"back-off restarting failed container {container['name']}",
            )
            await asyncio.to_thread(self._remove, runtime.previous.id)
        self._write_status(pod, runtime)

    # -- status -------------------------------------------------------------------------------
    def _waiting(self, pod: dict[str, Any], runtime: PodRuntime, reason: str, message: str) -> None:
        if runtime.waiting != (reason, message):
            self.api.record_event(
                pod,
                "Failed",
                f"Error: {message}" if reason == "CreateContainerConfigError" else message,
                type_="Warning",
            )
        runtime.waiting = (reason, message)
        self._write_status(pod, runtime)

    def _write_status(self, pod: dict[str, Any], runtime: PodRuntime) -> None:
        spec = pod["spec"]
        (container,) = spec["containers"][:1]
        state: dict[str, Any]
        if runtime.terminated is not None and runtime.container is not None:
            state = {"terminated": runtime.terminated}
        elif runtime.container is not None:
            state = {"running": {"startedAt": runtime.container.started_at}}
        else:
            reason, message = runtime.waiting or ("ContainerCreating", "")
            state = {"waiting": {"reason": reason, "message": message}}
        status_entry: dict[str, Any] = {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": runtime.ready,
            "started": runtime.container is not None and runtime.terminated is None,
            "restartCount": runtime.restart_count,
            "state": state,
        }
        if runtime.container is not None:
            status_entry["containerID"] = f"docker://{runtime.container.id}"
        if runtime.previous is not None and runtime.terminated is not None:
            status_entry["lastState"] = {"terminated": runtime.terminated}
        if runtime.terminated is not None and runtime.container is not None:
            phase = "Succeeded" if runtime.terminated["exitCode"] == 0 else "Failed"
        elif runtime.container is not None:
            phase = "Running"
        else:
            phase = "Pending"
        ready = "True" if runtime.ready else "False"
        status = {
            "phase": phase,
            "hostIP": "172.18.0.2",
            "podIP": self.network.pool.address(f"pod/{runtime.uid}"),
            "qosClass": _qos(pod),
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": ready},
                {"type": "Ready", "status": ready},
            ],
            "containerStatuses": [status_entry],
        }
        if runtime.container is not None:
            status["startTime"] = runtime.container.started_at
        if status == runtime.last_status:
            return
        current = self.api.get("v1/pods", runtime.namespace, runtime.name)
        if current is None:
            return
        stamp = now_rfc3339()
        old = {c["type"]: c for c in (current.get("status") or {}).get("conditions") or []}
        for condition in status["conditions"]:
            previous = old.get(condition["type"])
            keep = previous and previous.get("status") == condition["status"]
            condition["lastTransitionTime"] = (
                previous.get("lastTransitionTime", stamp) if keep else stamp
            )  # type: ignore[union-attr]
        runtime.last_status = {**status, "conditions": [dict(c) for c in status["conditions"]]}
        for condition in runtime.last_status["conditions"]:
            condition.pop("lastTransitionTime", None)
        current["status"] = {**(current.get("status") or {}), **status}
        with contextlib.suppress(ApiError):
            self.api.replace("v1/pods", runtime.namespace, runtime.name, current)

    # -- stop ---------------------------------------------------------------------------------
    async def _terminate(self, pod: dict[str, Any], runtime: PodRuntime) -> None:
        if not runtime.terminating:
            runtime.terminating = True
            grace = int(pod["metadata"].get("deletionGracePeriodSeconds", 30))
            (container,) = pod["spec"]["containers"][:1]
            if runtime.container is not None and runtime.terminated is None:
                self.api.record_event(pod, "Killing", f"Stopping container {container['name']}")
                hook = (container.get("lifecycle") or {}).get("preStop") or {}
                started = time.monotonic()
                if "exec" in hook:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(
                            asyncio.to_thread(
                                self._exec, runtime.container.id, hook["exec"]["command"]
                            ),
                            grace,
                        )
                elif "httpGet" in hook and runtime.pid is not None:
                    with contextlib.suppress(Exception):
                        probe = {"httpGet": hook["httpGet"], "timeoutSeconds": grace}
                        await self._run_probe(runtime, container, probe)
                elif "sleep" in hook:
                    await asyncio.sleep(min(float(hook["sleep"].get("seconds", 0)), grace))
                left = max(0, grace - int(time.monotonic() - started))
                await asyncio.to_thread(self._stop, runtime.container.id, left)
        await self._cleanup(runtime)
        self.api.remove("v1/pods", runtime.namespace, runtime.name)
        self.pods.pop(runtime.uid, None)

    def _stop(self, container_id: str, timeout: int) -> None:
        from docker.errors import NotFound

        with contextlib.suppress(NotFound):
            self.docker.api.stop(container_id, timeout=timeout)

    def _remove(self, container_id: str) -> None:
        from docker.errors import NotFound

        with contextlib.suppress(NotFound):
            self.docker.api.remove_container(container_id, force=True)

    async def _cleanup(self, runtime: PodRuntime) -> None:
        await self.network.detach_pod(runtime.uid)
        for run in (runtime.container, runtime.previous):
            if run is not None:
                await asyncio.to_thread(self._remove, run.id)
        if runtime.sandbox is not None:
            await asyncio.to_thread(self._remove, runtime.sandbox)
        runtime.sandbox = None

    async def shutdown(self) -> None:
        """Remove every container of this session."""
        for task in list(self._tasks):
            task.cancel()

        def remove_all() -> None:
            for container in self.docker.containers.list(
                all=True, filters={"label": f"{LABEL}={self.session}"}
            ):
                with contextlib.suppress(Exception):
                    container.remove(force=True)

        await asyncio.to_thread(remove_all)

    # -- logs -----------------------------------------------------------------------------------
    def _container_logs(self, container_id: str, tail: int | None) -> bytes:
        from docker.errors import NotFound

        try:
            out = self.docker.api.logs(
                container_id, stdout=True, stderr=True, tail="all" if tail is None else tail
            )
            return bytes(out)
        except NotFound:
            return b""

    async def logs(
        self, namespace: str, name: str, params: Mapping[str, str]
    ) -> bytes | AsyncIterator[bytes]:
        runtime = next(
            (r for r in self.pods.values() if r.namespace == namespace and r.name == name), None
        )
        tail = int(params["tailLines"]) if params.get("tailLines") else None
        if runtime is None:
            raise ApiError(400, "BadRequest", f'container is not running in pod "{name}"')
        run = runtime.previous if params.get("previous") in ("true", "1") else runtime.container
        if run is None:
            which = "previous terminated" if params.get("previous") else "running"
            raise ApiError(400, "BadRequest", f'no {which} container in pod "{name}"')
        if run.id in runtime.logs_after_exit:
            text = runtime.logs_after_exit[run.id]
            return b"\n".join(text.splitlines()[-tail:]) + b"\n" if tail else text
        if params.get("follow") not in ("true", "1"):
            return await asyncio.to_thread(self._container_logs, run.id, tail)
        return self._follow(run.id)

    async def _follow(self, container_id: str) -> AsyncIterator[bytes]:
        seen = 0
        while True:
            data = await asyncio.to_thread(self._container_logs, container_id, None)
            if len(data) > seen:
                yield data[seen:]
                seen = len(data)
            state = await asyncio.to_thread(self._inspect, container_id)
            if not state or not state.get("Running"):
                return
            await asyncio.sleep(0.5)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def _port(container: dict[str, Any], port: int | str | None) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for entry in container.get("ports") or []:
        if entry.get("name") == port:
            return int(entry["containerPort"])
    raise ValueError(f"container has no port named {port!r}")


def _field(pod: dict[str, Any], path: str) -> str:
    node: Any = pod
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def _qos(pod: dict[str, Any]) -> str:
    resources = [(c.get("resources") or {}) for c in pod.get("spec", {}).get("containers", [])]
    if not any(r.get("limits") or r.get("requests") for r in resources):
        return "BestEffort"
    if all((r.get("limits") or {}) == (r.get("requests") or {}) for r in resources):
        return "Guaranteed"
    return "Burstable"
