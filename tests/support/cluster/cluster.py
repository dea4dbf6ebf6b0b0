"""The simulated Kind cluster, brought up the way deployments/kind/up.sh brings up the real one.

:class:`SimulatedCluster` starts, in up.sh's order: the API server (kmock, extended, over HTTPS)
with its controllers and the node agent; the Secrets up.sh creates (same names and keys, values
generated); the stand-ins (PostgreSQL, MinIO, MLflow, the Prefect server, the git server) on their
Services' addresses; the work pools from ``create-pools.sh``; the blocks from
``configure_blocks.py``; every deployment with ``prefect deploy --all`` and
``BRIDGEAI_FLOW_RUNNER_BUILD=1``, whose kind build step builds the flow-runner image offline and
pushes it to the registry; ``deployments/kind/manifests/`` applied (the flow-runner image of their
Deployments replaced by that build, as ``kubectl set image`` would); and the real
``prefect worker start --pool kind --type kubernetes`` with a kubeconfig for the API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridgeai import procs
from tests.support.cluster import standins
from tests.support.cluster.api import ApiServer, SimulatedAPI, resource_key
from tests.support.cluster.controllers import STAND_IN, Controllers
from tests.support.cluster.kubelet import NodeAgent
from tests.support.cluster.network import (
    AddressPool,
    ClusterNetwork,
    NetworkNamespaces,
    ServicePort,
)
from tests.support.cluster.tls import make_ca
from tests.support.env import REPO_ROOT

logger = logging.getLogger("sim.cluster")
NAMESPACE = "bridgeai"
KIND = REPO_ROOT / "deployments" / "kind"
MANIFEST_IMAGE = "localhost:5000/bridgeai/flow-runner:latest"
BIN = standins.BIN


@dataclass
class ClusterImages:
    """The images the cluster runs or builds from, all present in the CI engine."""

    sandbox: str  # the pause container's image (any image with `sleep`)
    flow_runner_base: str
    model_base: str


@dataclass
class SimulatedCluster:
    """A running simulated cluster; see the module docstring. Use :func:`simulated_cluster`."""

    root: Path
    docker: Any
    registry: str
    registry_user: str
    registry_password: str
    images: ClusterImages
    docker_socket: str
    session: str = field(default_factory=lambda: secrets.token_hex(4))
    pool: AddressPool = field(default_factory=AddressPool)
    server: ApiServer | None = None
    agent: NodeAgent | None = None
    controllers: Controllers | None = None
    network: ClusterNetwork | None = None
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    stand_ins: dict[str, standins.StandIn] = field(default_factory=dict)
    names: standins.NameMap = field(default_factory=standins.NameMap)
    flow_runner_image: str | None = None
    worker: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    _tasks: list[Any] = field(default_factory=list)

    # -- addresses --------------------------------------------------------------------------------
    @property
    def registry_namespace(self) -> str:
        return f"sim-{self.session}"

    def address(self, service: str, namespace: str = NAMESPACE) -> str:
        return self.pool.address(f"svc/{namespace}/{service}")

    @property
    def prefect_api(self) -> str:
        return f"http://{self.address('prefect-server')}:4200/api"

    @property
    def api(self) -> SimulatedAPI:
        assert self.server is not None and self.server.api is not None
        return self.server.api

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 60) -> Any:
        """Run ``fn(*args)`` on the cluster's loop (where the objects live)."""
        assert self.server is not None
        return self.server.call(fn, *args, timeout=timeout)

    def get(self, key: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        return self.call(self.api.get, key, namespace, name)

    def list(self, key: str, namespace: str | None = NAMESPACE, labels: str | None = None) -> list:
        return self.call(self.api.list, key, namespace, labels)

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def env(self) -> dict[str, str]:
        """What a user of this cluster exports: the Prefect API, the kubeconfig, the engine."""
        return {
            "PREFECT_API_URL": self.prefect_api,
            "KUBECONFIG": str(self.kubeconfig),
            "DOCKER_HOST": f"unix://{self.docker_socket}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }

    # -- bring-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self._start_api()
        self._timed("api", started)
        self._create_secrets()
        self._start_stand_ins()
        self._timed("stand-ins", started)
        self._prefect_setup()
        self._timed("deploy (flow-runner image build + push)", started)
        self._apply_manifests()
        self._start_worker()
        # The prediction service is ready (/ready) only once a model is served: here it need
        # only be running; the pipeline's smoke step waits for its readiness.
        self.wait_available(["job-reporter"], timeout=600)
        self.wait_running("prediction-service-0", timeout=600)
        self._timed("cluster ready", started)

    def _timed(self, what: str, since: float) -> None:
        self.timings[what] = round(time.monotonic() - since, 1)
        logger.info("cluster: %s after %.0f s", what, self.timings[what])

    def _start_api(self) -> None:
        api_address = self.pool.address("svc/default/kubernetes")
        port = procs.free_port()
        ca = make_ca(
            ["127.0.0.1", api_address],
            ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local", "localhost"],
        )  # fmt: skip
        _, cert, key = ca.write(self.root / "pki")
        self.server = ApiServer("127.0.0.1", port, cert, key)
        self.server.start()
        self._write_kubeconfig(ca.ca_pem, port)
        node_mounts = {}
        for mount in yaml.safe_load((KIND / "cluster.yaml").read_text())["nodes"][0].get(
            "extraMounts", []
        ):
            host_path = mount["hostPath"]
            # This machine's Docker engine listens on its own socket, not /var/run/docker.sock.
            if host_path == "/var/run/docker.sock":
                host_path = self.docker_socket
            node_mounts[mount["containerPath"]] = host_path

        async def boot() -> None:
            netns = NetworkNamespaces()
            controllers = Controllers(self.api, None, self._stand_in_healthy)  # type: ignore[arg-type]
            network = ClusterNetwork(self.pool, netns, controllers.endpoints)
            controllers.network = network
            agent = NodeAgent(
                self.api, network, self.docker, self.root / "node",
                session=self.session, sandbox_image=self.images.sandbox,
                node_mounts=node_mounts,
                registry_auth={self.registry: {
                    "username": self.registry_user, "password": self.registry_password,
                }},
                ca_pem=ca.ca_pem, api_address=api_address, api_port=port,
            )  # fmt: skip
            controllers.agent = agent  # type: ignore[attr-defined]
            self.network, self.controllers, self.agent = network, controllers, agent
            await network.add_service(
                "default", "kubernetes", [ServicePort(443, 443, "https")], None,
                host_backend={443: ("127.0.0.1", port)}, address=api_address,
            )  # fmt: skip
            # Kind's registry container, as pods reach it (nodes and the host use `registry`).
            registry_host, registry_port = self.registry.rsplit(":", 1)
            kind_registry = await network.add_service(
                "kind", "kind-registry", [ServicePort(5000, 5000)], None,
                host_backend={5000: (registry_host, int(registry_port))},
            )  # fmt: skip
            network.extra_names["kind-registry"] = kind_registry.address
            self._tasks = [
                asyncio.ensure_future(controllers.run()),
                asyncio.ensure_future(agent.run()),
            ]

        self.call(boot)
        self.call(self.api.create, "v1/services", {
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 443}],
                     "clusterIP": api_address},
        })  # fmt: skip
        self.names.names.update({"kubernetes.default.svc.cluster.local": api_address})

    def _write_kubeconfig(self, ca_pem: bytes, port: int) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kind-bridgeai", "cluster": {
                "server": f"https://127.0.0.1:{port}",
                "certificate-authority-data": base64.b64encode(ca_pem).decode(),
            }}],
            "users": [{"name": "kind-bridgeai", "user": {"token": f"sim-{self.session}"}}],
            "contexts": [{"name": "kind-bridgeai", "context": {
                "cluster": "kind-bridgeai", "user": "kind-bridgeai", "namespace": NAMESPACE,
            }}],
            "current-context": "kind-bridgeai",
        }  # fmt: skip
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _stand_in_healthy(self, namespace: str, name: str) -> bool:
        service = {"mlflow": "mlflow", "git-server": "git", "postgres": "postgres"}.get(name, name)
        found = self.stand_ins.get(service)
        return bool(found and found.healthy())

    # -- Secrets (as up.sh) -----------------------------------------------------------------------
    def _create_secrets(self) -> None:
        from tests.support.deployment_config import secrets_created

        s3_key, s3_secret = f"sim-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
        pg = secrets.token_hex(16)
        pg_host = f"postgres.{NAMESPACE}.svc.cluster.local:5432"
        values = {
            "bridgeai-s3": {"access-key-id": s3_key, "secret-access-key": s3_secret},
            "bridgeai-minio": {"rootUser": s3_key, "rootPassword": s3_secret},
            "bridgeai-postgres": {"password": pg},
            "prefect-server-database": {
                "connection-string": f"postgresql+asyncpg://bridgeai:{pg}@{pg_host}/prefect"
            },
            "bridgeai-predictions-db": {
                "database-url": f"postgresql://bridgeai:{pg}@{pg_host}/predictions"
            },
            "bridgeai-git": {"username": "bridgeai", "token": secrets.token_hex(16)},
        }
        # up.sh creates bridgeai-mlflow only when MLflow has a login; the stand-in has none.
        wanted = {k: v for k, v in secrets_created().items() if k != "bridgeai-mlflow"}
        created = {name: set(keys) for name, keys in values.items()}
        if created != wanted:
            raise RuntimeError(
                f"up.sh creates the Secrets {wanted}, the simulation {created}: keep them in step"
            )
        self.secrets = values
        for name, data in values.items():
            self.create_secret(name, data)

    def create_secret(self, name: str, data: dict[str, str], namespace: str = NAMESPACE) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.call(self.api.create, "v1/secrets", {
            "metadata": {"name": name, "namespace": namespace}, "type": "Opaque", "data": encoded,
        })  # fmt: skip

    def delete_secret(self, name: str, namespace: str = NAMESPACE) -> None:
        self.call(self.api.remove, "v1/secrets", namespace, name)

    # -- stand-ins --------------------------------------------------------------------------------
    def _register_stand_in_service(self, name: str, port: int, target: int | None = None) -> str:
        address = self.address(name)
        backend = {port: (address, target or port)}

        async def add() -> None:
            assert self.network is not None
            await self.network.add_service(
                NAMESPACE, name, [ServicePort(port, target or port)], None,
                host_backend=backend, address=address,
            )  # fmt: skip

        self.call(add)
        for dns in (f"{name}.{NAMESPACE}.svc.cluster.local", f"{name}.{NAMESPACE}.svc"):
            self.names.names[dns] = address
        return address

    def _manifest(self, file: str, kind: str, name: str) -> dict[str, Any]:
        for doc in yaml.safe_load_all((KIND / "manifests" / file).read_text()):
            if doc and doc["kind"] == kind and doc["metadata"]["name"] == name:
                return dict(doc)
        raise KeyError(f"{file} has no {kind} {name}")

    def _start_stand_ins(self) -> None:
        # PostgreSQL: the role and the databases of postgres.yaml's init ConfigMap.
        pg_address = self._register_stand_in_service("postgres", 5432)
        init_sql = self._manifest("postgres.yaml", "ConfigMap", "postgres-init")["data"]
        stand_in, _ = standins.postgres(
            pg_address, self.secrets["bridgeai-postgres"]["password"], "".join(init_sql.values())
        )
        self.stand_ins["postgres"] = stand_in
        # MinIO: root credentials and buckets of the chart's values.
        minio_address = self._register_stand_in_service("minio", 9000)
        values = yaml.safe_load((KIND / "values" / "minio.yaml").read_text())
        root = self.secrets[values["existingSecret"]]
        self.stand_ins["minio"] = standins.minio(
            self.root / "minio", minio_address, root["rootUser"], root["rootPassword"],
            [b["name"] for b in values["buckets"]],
        )  # fmt: skip
        # MLflow and the git server: their manifests' own command lines.
        assert self.agent is not None
        for service, file, deployment, port, ready in (
            ("mlflow", "mlflow.yaml", "mlflow", 5000, "/mlflow/health"),
            ("git", "git-server.yaml", "git-server", 80, "/healthz"),
        ):
            pod = self._manifest(file, "Deployment", deployment)["spec"]["template"]
            pod = {
                **pod,
                "metadata": {**pod.get("metadata", {}), "name": deployment, "namespace": NAMESPACE},
            }
            (container,) = pod["spec"]["containers"]
            target = int(container["ports"][0]["containerPort"])
            address = self._register_stand_in_service(service, port, target)
            env = self.call(self.agent._environment, pod, container)
            rewrite = None
            if service == "git":
                data = self.root / "git"

                def rewrite(argv: list[str], data: Path = data, address: str = address) -> list:
                    argv = [str(data) if a == "/srv/git" else a for a in argv]
                    return [*argv, "--host", address]

            self.stand_ins[service] = standins.from_manifest(
                service, container, env, self.names, address, self.root / service,
                ready=f"http://{address}:{target}{ready}", rewrite=rewrite,
            )  # fmt: skip
        # The Prefect server on the database whose URL the chart reads from its Secret.
        prefect_address = self._register_stand_in_service("prefect-server", 4200)
        database = self.names.resolve(self.secrets["prefect-server-database"]["connection-string"])
        self.stand_ins["prefect-server"] = standins.prefect_server(
            self.root / "prefect-server", prefect_address, database
        )

    # -- Prefect: pools, blocks, deployments (as up.sh) -------------------------------------------
    def _prefect_setup(self) -> None:
        env = {**self.env(), "PREFECT_HOME": str(self.root / "prefect-client")}
        standins.run(
            ["bash", str(REPO_ROOT / "deployments/work-pools/create-pools.sh")],
            {**env, "PREFECT": str(BIN / "prefect")}, REPO_ROOT,
        )  # fmt: skip
        git = self.secrets["bridgeai-git"]
        standins.run(
            [str(BIN / "python"), str(KIND / "configure_blocks.py"),
             "--registry", self.registry, "--registry-namespace", self.registry_namespace],
            {**env, "BRIDGEAI_GIT_USERNAME": git["username"], "BRIDGEAI_GIT_TOKEN": git["token"],
             "BRIDGEAI_REGISTRY_USERNAME": self.registry_user,
             "BRIDGEAI_REGISTRY_PASSWORD": self.registry_password},
            REPO_ROOT,
        )  # fmt: skip
        started = time.monotonic()
        output = standins.run(
            [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
            {**env, "BRIDGEAI_FLOW_RUNNER_BUILD": "1",
             "BRIDGEAI_FLOW_RUNNER_BASE_IMAGE": self.images.flow_runner_base,
             "BRIDGEAI_BASE_IMAGE": self.images.model_base},
            REPO_ROOT, timeout=2400,
        )  # fmt: skip
        self.timings["prefect deploy --all"] = round(time.monotonic() - started, 1)
        (self.root / "deploy.log").write_text(output)
        self.flow_runner_image = self.deployment_image("data-ingestion/kind")

    def deployment_image(self, name: str) -> str:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with (
            temporary_settings({PREFECT_API_URL: self.prefect_api}),
            get_client(sync_client=True) as client,
        ):
            deployment = client.read_deployment_by_name(name)
        return str(deployment.job_variables["image"])

    # -- manifests (as up.sh's kubectl apply) -----------------------------------------------------
    def apply(self, document: dict[str, Any]) -> None:
        """Create one object of a manifest (Namespaces are implicit in the simulated API)."""
        if document["kind"] == "Namespace":
            return
        key = resource_key(document["apiVersion"], document["kind"])
        document.setdefault("metadata", {}).setdefault("namespace", NAMESPACE)
        self.call(self.api.create, key, document)

    def _apply_manifests(self) -> None:
        assert self.flow_runner_image is not None
        stood_in = {"postgres", "mlflow", "git-server"}
        for path in sorted((KIND / "manifests").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc:
                    continue
                text = json.dumps(doc).replace(MANIFEST_IMAGE, self.flow_runner_image)
                doc = json.loads(text)
                if (
                    doc["kind"] in ("Deployment", "StatefulSet")
                    and doc["metadata"]["name"] in stood_in
                ):
                    doc["metadata"].setdefault("annotations", {})[STAND_IN] = (
                        "a server on this machine"
                    )
                    if doc["kind"] == "StatefulSet":
                        continue  # no StatefulSet controller: postgres is only its stand-in
                if doc["kind"] == "Service" and doc["metadata"]["name"] in (
                    "postgres",
                    "mlflow",
                    "git",
                ):
                    doc.setdefault("spec", {})["clusterIP"] = self.address(doc["metadata"]["name"])
                self.apply(doc)
        for service in ("minio", "prefect-server"):  # the charts' Services
            self.apply({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": service, "namespace": NAMESPACE,
                             "annotations": {STAND_IN: "a server on this machine"}},
                "spec": {"clusterIP": self.address(service),
                         "ports": [{"port": 9000 if service == "minio" else 4200}]},
            })  # fmt: skip

    # -- the worker -------------------------------------------------------------------------------
    def _start_worker(self) -> None:
        home = self.root / "worker-home"
        home.mkdir(parents=True, exist_ok=True)
        log_file = self.root / "worker.log"
        # The chart's environment for the worker (values/prefect-worker.yaml).
        values = yaml.safe_load((KIND / "values" / "prefect-worker.yaml").read_text())["worker"]
        chart_env = {e["name"]: str(e["value"]) for e in values.get("extraEnvVars") or []}
        self.worker = procs.start_process(
            [str(BIN / "prefect"), "worker", "start", "--pool", "kind", "--type", "kubernetes",
             "--name", f"sim-kind-{self.session}"],
            log_file=log_file,
            # Polling every 2 s instead of 10: only the tests' waiting time changes.
            env={**self.env(), **chart_env, "PREFECT_HOME": str(home),
                 "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "5",
                 "PREFECT_LOGGING_LEVEL": "INFO"},
        )  # fmt: skip

    @property
    def worker_log(self) -> str:
        path = self.root / "worker.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_running(self, pod: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.get("v1/pods", pod)
            if found and (found.get("status") or {}).get("phase") == "Running":
                return
            time.sleep(1)
        raise TimeoutError(f"pod {pod} not running in {timeout:.0f}s: {found}")

    def wait_available(self, deployments: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                self.get("apps/v1/deployments", name) or self.get("apps/v1/statefulsets", name)
                for name in deployments
            ]
            if all(d and (d.get("status") or {}).get("availableReplicas", 0) >= 1 for d in found):
                return
            time.sleep(1)
        pods = {p["metadata"]["name"]: p.get("status") for p in self.list("v1/pods")}
        raise TimeoutError(f"{deployments} not available in {timeout:.0f}s; pods: {pods}")

    # -- teardown ---------------------------------------------------------------------------------
    def stop(self) -> None:
        if self.worker is not None:
            procs.stop_process(self.worker.pid, timeout=20)
        if self.server is not None and self.server.api is not None and self.agent is not None:

            async def down() -> None:
                for task in self._tasks:
                    task.cancel()
                assert self.agent is not None and self.network is not None
                await self.agent.shutdown()
                await self.network.close()

            with contextlib.suppress(Exception):
                self.call(down, timeout=180)
        for stand_in in reversed(list(self.stand_ins.values())):
            with contextlib.suppress(Exception):
                stand_in.terminate()
        if self.server is not None:
            self.server.stop()
        self._remove_images()

    def _remove_images(self) -> None:
        """Remove the images this session tagged (its registry namespace: the flow runner, the
        model images) from the shared engine. The flow runner's untagged install stage stays: it
        is the layer cache that lets the next session skip the dependency install."""
        prefix = f"{self.registry}/{self.registry_namespace}/"
        try:
            images = self.docker.images.list()
        except Exception:  # the engine is gone: nothing to clean
            return
        for found in images:
            for tag in found.tags:
                if tag.startswith(prefix):
                    with contextlib.suppress(Exception):
                        self.docker.images.remove(tag, force=True)


@contextlib.contextmanager
def simulated_cluster(**kwargs: Any) -> Iterator[SimulatedCluster]:
    cluster = SimulatedCluster(**kwargs)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0
