"""The simulation itself, through real clients: what the worker and our code rely on.

The ``kubernetes`` client and the real ``kubectl`` talk to the API over HTTPS with the cluster's
CA; ``generateName`` names objects; watches with label selectors stream events; pods run as
containers, each in its own network namespace (two pods bind the same port), reach Services by
their cluster DNS names, and a Service balances over its ready pods; a missing Secret key leaves a
pod in ``CreateContainerConfigError`` with the kubelet's message; logs come from the container.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time

import pytest

from tests.support.cluster.cluster import SimulatedCluster
from tests.support.env import require

pytestmark = [pytest.mark.cluster, pytest.mark.integration]
NS = "bridgeai"


@pytest.fixture(scope="module")
def core(sim_cluster: SimulatedCluster):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(sim_cluster.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def _server_pod(name: str, image: str, labels: dict, port: int = 8080) -> dict:
    script = (
        "import http.server, socket\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = socket.gethostname().encode()\n"
        "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers(); self.wfile.write(body)\n"
        "print('serving', flush=True)\n"
        f"http.server.HTTPServer(('0.0.0.0', {port}), H).serve_forever()\n"
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "containers": [{
                "name": "web", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-c", script],
                "ports": [{"name": "http", "containerPort": port}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
            }],
        },
    }  # fmt: skip


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return bool(predicate())


def _ready(core, name: str) -> bool:
    pod = core.read_namespaced_pod(name, NS)
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def test_generate_name_and_a_label_selected_watch(sim_cluster: SimulatedCluster, core) -> None:
    from kubernetes import watch

    seen: list[str] = []

    def follow() -> None:
        stream = watch.Watch().stream(
            core.list_namespaced_config_map, NS, label_selector="sim-test=watch", timeout_seconds=20
        )
        for event in stream:
            seen.append(f"{event['type']} {event['object'].metadata.name}")
            if event["type"] == "DELETED":
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(1)
    created = core.create_namespaced_config_map(
        NS, {"metadata": {"generateName": "watched-", "labels": {"sim-test": "watch"}}}
    )
    core.create_namespaced_config_map(NS, {"metadata": {"name": "unlabelled"}})
    name = created.metadata.name
    assert name.startswith("watched-") and len(name) == len("watched-") + 5
    assert created.metadata.uid and created.metadata.resource_version
    core.patch_namespaced_config_map(name, NS, {"data": {"a": "1"}})
    core.delete_namespaced_config_map(name, NS)
    core.delete_namespaced_config_map("unlabelled", NS)
    thread.join(20)
    assert seen == [f"ADDED {name}", f"MODIFIED {name}", f"DELETED {name}"]


def test_pods_have_their_own_network_and_services_balance_over_them(
    sim_cluster: SimulatedCluster, core
) -> None:
    import httpx

    image = sim_cluster.images.sandbox
    labels = {"app": "sim-web"}
    for name in ("web-a", "web-b"):  # both bind 0.0.0.0:8080: no collision
        core.create_namespaced_pod(NS, _server_pod(name, image, labels))
    core.create_namespaced_service(NS, {
        "metadata": {"name": "sim-web"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]},
    })  # fmt: skip
    try:
        assert _wait(lambda: _ready(core, "web-a") and _ready(core, "web-b"), 120)
        service = core.read_namespaced_service("sim-web", NS)
        address = service.spec.cluster_ip
        assert address.startswith(sim_cluster.pool.prefix)
        answers = {httpx.get(f"http://{address}/", timeout=10).text for _ in range(6)}
        assert answers == {"web-a", "web-b"}
        # Inside a pod: the Service by its cluster DNS name (and nothing on this machine).
        client_pod = {
            "metadata": {"name": "sim-client"},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "client", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-c",
                    "import urllib.request, socket\n"
                    "print(urllib.request.urlopen('http://sim-web.bridgeai.svc.cluster.local/').read().decode())\n"
                    "s = socket.socket()\n"
                    f"port = {sim_cluster.registry.rsplit(':', 1)[1]}\n"
                    "print('host registry reachable:', s.connect_ex(('127.0.0.1', port)) == 0)\n"],
            }]},
        }  # fmt: skip
        core.create_namespaced_pod(NS, client_pod)
        assert _wait(
            lambda: core.read_namespaced_pod("sim-client", NS).status.phase == "Succeeded", 120
        ), core.read_namespaced_pod("sim-client", NS).status
        log = core.read_namespaced_pod_log("sim-client", NS)
        assert log.splitlines()[0] in {"web-a", "web-b"}
        assert "host registry reachable: False" in log
    finally:
        from kubernetes.client.exceptions import ApiException

        for name in ("web-a", "web-b", "sim-client"):
            with contextlib.suppress(ApiException):
                core.delete_namespaced_pod(name, NS)
        core.delete_namespaced_service("sim-web", NS)


def test_a_missing_secret_key_is_the_kubelets_create_container_config_error(
    sim_cluster: SimulatedCluster, core
) -> None:
    sim_cluster.create_secret("sim-partial", {"present": "1"})
    pod = {
        "metadata": {"name": "sim-needs-key"},
        "spec": {"containers": [{
            "name": "app", "image": sim_cluster.images.sandbox, "command": ["true"],
            "env": [{"name": "X", "valueFrom": {
                "secretKeyRef": {"name": "sim-partial", "key": "absent"}}}],
        }]},
    }  # fmt: skip
    core.create_namespaced_pod(NS, pod)
    try:

        def waiting():
            statuses = core.read_namespaced_pod("sim-needs-key", NS).status.container_statuses
            return statuses and statuses[0].state.waiting

        assert _wait(lambda: bool(waiting()), 60)
        state = waiting()
        assert state.reason == "CreateContainerConfigError"
        assert state.message == "couldn't find key absent in Secret bridgeai/sim-partial"
        assert core.read_namespaced_pod("sim-needs-key", NS).status.phase == "Pending"
    finally:
        core.delete_namespaced_pod("sim-needs-key", NS)
        sim_cluster.delete_secret("sim-partial")


def test_the_real_kubectl_reads_the_cluster(sim_cluster: SimulatedCluster) -> None:
    kubectl = shutil.which("kubectl")
    require(kubectl is not None, "kubectl (Debian package kubectl; .ci/run installs it)")
    assert kubectl is not None
    result = subprocess.run(
        [kubectl, "--kubeconfig", str(sim_cluster.kubeconfig), "-n", NS, "get",
         "deployments,statefulsets", "-o", "name"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert "statefulset.apps/prediction-service" in names, names
    assert "deployment.apps/job-reporter" in names, names
