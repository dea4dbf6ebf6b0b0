"""The simulated cluster's network: Service addresses, TCP proxies, pod network namespaces, DNS.

The CI Docker engine has no bridge network. Sharing the host's network would make every container
bind its ports on this (shared) machine, and two predictors on 8080 during a rollout, or several
Services on port 80, would collide. So:

* every Service gets its own loopback address (``127.a.b.n``, with ``a.b`` random per session so
  two sessions never meet; all of 127/8 is loopback on Linux) as its ``clusterIP``, and a TCP
  proxy from ``address:port`` to a ready backing pod's ``targetPort`` (kube-proxy's original
  userspace mode);
* every pod runs in its own network namespace holding only a loopback interface (Docker's
  ``none`` network), like a pod sandbox: its containers bind whatever ports they like. The node
  agent opens, inside that namespace, a listener on every Service address and port, forwarding
  to the Service on the host side; so pods reach Services, and nothing else;
* cluster DNS names (``<svc>.<ns>.svc.cluster.local``, ``<svc>.<ns>``, ``<svc>`` in the pod's
  namespace) resolve to those addresses through the containers' ``/etc/hosts``, written at
  creation (``extra_hosts``) and extended when a Service appears later.

Sockets are made inside a pod's namespace by a thread that enters it with ``setns(2)`` (root, as
the CI engine's containers are) and leaves again; a socket keeps its namespace for its lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import random
import socket
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("sim.network")
CLONE_NEWNET = 0x40000000
CLUSTER_DOMAIN = "svc.cluster.local"


class NetworkNamespaces:
    """Make sockets inside other processes' network namespaces."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._host = os.open("/proc/self/ns/net", os.O_RDONLY)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sim-netns")
        self._lock = threading.Lock()

    def _enter(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns: {os.strerror(errno)}")

    def _in(self, pid: int, fn: Callable[[], Any]) -> Any:
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            self._enter(fd)
            try:
                return fn()
            finally:
                self._enter(self._host)
        finally:
            os.close(fd)

    async def run_in(self, pid: int, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._in, pid, fn)

    async def connect(self, pid: int, port: int, timeout: float = 5.0) -> socket.socket:
        """A connected, non-blocking socket to ``127.0.0.1:port`` inside ``pid``'s namespace."""

        def dial() -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            sock.setblocking(False)
            return sock

        result: socket.socket = await self.run_in(pid, dial)
        return result

    async def listen(self, pid: int, address: str, port: int) -> socket.socket:
        def bind() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(128)
            sock.setblocking(False)
            return sock

        result: socket.socket = await self.run_in(pid, bind)
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(OSError):
            os.close(self._host)


class AddressPool:
    """Loopback addresses ``127.a.b.2`` .. ``127.a.b.254`` for one session."""

    def __init__(self) -> None:
        for _ in range(50):
            a, b = random.randint(16, 250), random.randint(1, 250)
            probe = f"127.{a}.{b}.2"
            with socket.socket() as sock:
                try:
                    sock.bind((probe, 0))
                except OSError:
                    continue
            self.prefix = f"127.{a}.{b}"
            break
        else:  # pragma: no cover
            raise RuntimeError("no usable loopback range")
        self._next = 2
        self.allocated: dict[str, str] = {}

    def address(self, name: str) -> str:
        """The address for ``name``, allocated on first use."""
        if name not in self.allocated:
            if self._next > 254:
                raise RuntimeError("the session ran out of loopback addresses")
            self.allocated[name] = f"{self.prefix}.{self._next}"
            self._next += 1
        return self.allocated[name]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


async def splice(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Copy both ways until both sides are done, then close both."""
    try:
        await asyncio.gather(_pipe(client[0], upstream[1]), _pipe(upstream[0], client[1]))
    finally:
        for writer in (client[1], upstream[1]):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


Dialer = Callable[[], "asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]"]


@dataclass
class ServicePort:
    port: int
    target: int | str
    name: str | None = None


@dataclass
class Service:
    namespace: str
    name: str
    address: str
    ports: list[ServicePort]
    selector: dict[str, str] | None
    #: A server on this machine standing in for the pods: (host, port) per Service port.
    host_backend: dict[int, tuple[str, int]] | None = None

    def dns_names(self) -> list[str]:
        base = f"{self.name}.{self.namespace}"
        return [f"{base}.{CLUSTER_DOMAIN}", f"{base}.svc", base]


@dataclass
class PodNetwork:
    uid: str
    namespace: str
    pid: int
    hosts_file: Path | None
    listeners: dict[tuple[str, int], asyncio.AbstractServer] = field(default_factory=dict)


class ClusterNetwork:
    """Services, their proxies, and each pod's view of them (runs on the cluster's loop)."""

    def __init__(
        self, pool: AddressPool, netns: NetworkNamespaces, endpoints: Callable[[Service], list]
    ) -> None:
        self.pool = pool
        self.netns = netns
        #: ``endpoints(service)`` -> [(pid, container ports by name)] of ready backing pods.
        self._endpoints = endpoints
        self.services: dict[tuple[str, str], Service] = {}
        self.extra_names: dict[str, str] = {}
        self._proxies: dict[tuple[str, int], asyncio.AbstractServer] = {}
        self._pods: dict[str, PodNetwork] = {}
        self._round_robin = 0

    # -- names --------------------------------------------------------------------------------
    def hosts(self, namespace: str) -> dict[str, str]:
        """Name -> address for a pod in ``namespace`` (Docker's ``extra_hosts``)."""
        names = dict(self.extra_names)
        for service in self.services.values():
            for name in service.dns_names():
                names[name] = service.address
            if service.namespace == namespace:
                names[service.name] = service.address
        return names

    def _append_hosts(self, service: Service) -> None:
        for pod in self._pods.values():
            if pod.hosts_file is None or not pod.hosts_file.exists():
                continue
            names = service.dns_names() + (
                [service.name] if service.namespace == pod.namespace else []
            )
            with contextlib.suppress(OSError), pod.hosts_file.open("a") as handle:
                handle.write(f"{service.address}\t{' '.join(names)}\n")

    # -- services -----------------------------------------------------------------------------
    async def add_service(
        self,
        namespace: str,
        name: str,
        ports: Iterable[ServicePort],
        selector: dict[str, str] | None,
        host_backend: dict[int, tuple[str, int]] | None = None,
        address: str | None = None,
    ) -> Service:
        """Register a Service: its address, its host-side proxies, its listeners in every pod."""
        key = (namespace, name)
        if key in self.services:
            return self.services[key]
        service = Service(
            namespace,
            name,
            address or self.pool.address(f"svc/{namespace}/{name}"),
            list(ports),
            selector,
            host_backend,
        )
        self.services[key] = service
        for port in service.ports:
            backend = (host_backend or {}).get(port.port)
            if backend == (service.address, port.port):
                continue  # the stand-in listens on the Service's own address and port
            server = await asyncio.start_server(
                lambda r, w, s=service, p=port: self._to_backend(s, p, r, w),
                service.address,
                port.port,
            )
            self._proxies[(service.address, port.port)] = server
        for pod in list(self._pods.values()):
            await self._listen_for(pod, service)
        self._append_hosts(service)
        logger.info("service %s/%s at %s", namespace, name, service.address)
        return service

    async def _to_backend(
        self,
        service: Service,
        port: ServicePort,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            if service.host_backend and port.port in service.host_backend:
                host, target = service.host_backend[port.port]
                upstream = await asyncio.open_connection(host, target)
            else:
                upstream = await self._to_pod(service, port)
        except (OSError, LookupError) as exc:
            logger.debug("%s/%s:%s: no backend (%s)", service.namespace, service.name, port, exc)
            writer.close()
            return
        await splice((reader, writer), upstream)

    async def _to_pod(
        self, service: Service, port: ServicePort
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        endpoints = self._endpoints(service)
        if not endpoints:
            raise LookupError("no ready endpoints")
        self._round_robin += 1
        last: OSError | None = None
        for offset in range(len(endpoints)):
            pid, named = endpoints[(self._round_robin + offset) % len(endpoints)]
            target = named.get(port.target) if isinstance(port.target, str) else port.target
            if target is None:
                continue
            try:
                sock = await self.netns.connect(pid, int(target))
                return await asyncio.open_connection(sock=sock)
            except OSError as exc:
                last = exc
        raise last or LookupError(f"no endpoint serves port {port.target}")

    # -- pods ---------------------------------------------------------------------------------
    async def attach_pod(self, uid: str, namespace: str, pid: int, hosts_file: Path | None) -> None:
        """Give a started pod its listeners for every Service (its way out)."""
        pod = PodNetwork(uid, namespace, pid, hosts_file)
        self._pods[uid] = pod
        for service in list(self.services.values()):
            await self._listen_for(pod, service)

    async def _listen_for(self, pod: PodNetwork, service: Service) -> None:
        for port in service.ports:
            key = (service.address, port.port)
            if key in pod.listeners:
                continue
            try:
                sock = await self.netns.listen(pod.pid, service.address, port.port)
            except OSError as exc:  # the pod's process is gone
                logger.debug("pod %s: cannot listen on %s: %s", pod.uid, key, exc)
                return
            server = await asyncio.start_server(
                lambda r, w, k=key: self._from_pod(k, r, w), sock=sock
            )
            pod.listeners[key] = server

    async def _from_pod(
        self, key: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream = await asyncio.open_connection(*key)
        except OSError:
            writer.close()
            return
        await splice((reader, writer), upstream)

    async def detach_pod(self, uid: str) -> None:
        pod = self._pods.pop(uid, None)
        if pod is None:
            return
        for server in pod.listeners.values():
            server.close()

    async def close(self) -> None:
        for uid in list(self._pods):
            await self.detach_pod(uid)
        for server in self._proxies.values():
            server.close()
        self._proxies.clear()
