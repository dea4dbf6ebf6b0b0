"""The container registry SIGKILLed in the middle of the model image's push.

What must hold: the ``build-model-image`` flow run fails and returns no ``ImageRef``; nothing
the flow published names a digest the registry does not hold; once the registry is back the
next run pushes and returns an ``ImageRef`` whose digest the registry serves.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

import flows.build_image as build_flow
from bridgeai import procs
from bridgeai.deploy import image
from tests.support.env import require

pytestmark = [
    pytest.mark.usefixtures("prefect_harness"),
    pytest.mark.docker,
    pytest.mark.slow,
]


class KillableRegistry:
    """``docker-registry`` with htpasswd auth and its own storage, restartable on its port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = procs.free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.user, self.password = "pusher", secrets.token_urlsafe(12)
        self.process = None
        root.mkdir(parents=True, exist_ok=True)
        htpasswd = subprocess.run(
            ["htpasswd", "-Bbn", self.user, self.password],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (root / "htpasswd").write_text(htpasswd)
        (root / "config.yml").write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
            f"http: {{addr: {self.host}}}\n"
            f"auth: {{htpasswd: {{realm: test, path: {root / 'htpasswd'}}}}}\n"
        )

    def start(self) -> None:
        self.process = procs.start_server(
            [str(shutil.which("docker-registry")), "serve", str(self.root / "config.yml")],
            log_file=self.root / "registry.log",
            service="docker-registry",
            ready=lambda: procs.http_ok(
                f"http://{self.host}/v2/", accept=lambda status: status == 401
            ),
            timeout=60,
        )

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None:
            procs.stop_process(self.process.pid)

    def has_manifest(self, repository: str, reference: str) -> bool:
        response = httpx.head(
            f"http://{self.host}/v2/{repository}/manifests/{reference}",
            auth=(self.user, self.password),
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                     "application/vnd.oci.image.manifest.v1+json"},
            timeout=30,
        )  # fmt: skip
        return response.status_code == 200

    def uploading(self) -> bool:
        return any((self.root / "data").glob("docker/registry/v2/repositories/**/_uploads/*"))


@pytest.fixture
def killable_registry(tmp_path: Path):
    require(
        bool(shutil.which("docker-registry") and shutil.which("htpasswd")),
        "docker-registry and htpasswd",
    )
    registry = KillableRegistry(tmp_path / "registry")
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


def test_registry_killed_mid_push_leaves_no_image_ref_without_its_digest(
    docker_env, killable_registry: KillableRegistry, tmp_path: Path, monkeypatch
) -> None:
    from blocks import ContainerRegistry
    from tests.support.mlflow_registry import register_versions

    monkeypatch.setattr(
        build_flow, "push_image", build_flow.push_image.with_options(retry_delay_seconds=0.5)
    )
    suffix = secrets.token_hex(4)
    server = register_versions(tmp_path / "mlflow", count=1)
    server.save(f"fault-image-{suffix}", overwrite=True)
    namespace = f"fault-{suffix}"
    ContainerRegistry(
        server=killable_registry.host,
        namespace=namespace,
        username=killable_registry.user,
        password=SecretStr(killable_registry.password),
    ).save(f"fault-registry-{suffix}")
    run = dict(
        base_image=docker_env.base_image,
        mlflow_block=f"fault-image-{suffix}",
        registry_block=f"fault-registry-{suffix}",
        wheels="environment",
    )
    repository = f"{namespace}/bridgeai-mlops"
    killed = threading.Event()

    def kill_mid_push() -> None:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and not killed.is_set():
            if killable_registry.uploading():
                killable_registry.kill()
                killed.set()
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_mid_push, daemon=True)
    watcher.start()
    engine = docker_env.client
    try:
        state = build_flow.build_model_image(**run, return_state=True)
        killed.set()
        watcher.join(30)
        assert killable_registry.process.poll() is not None, "the registry was not killed"
        assert state.is_failed()
        with pytest.raises(image.ImagePushError) as caught:
            state.result()
        assert f"push of {killable_registry.host}/{repository}:1 failed" in str(caught.value)
        assert killable_registry.password not in str(caught.value)

        killable_registry.start()  # same port and storage
        assert not killable_registry.has_manifest(repository, "1")  # nothing half-pushed shows
        assert not killable_registry.has_manifest(repository, "latest")

        ref = build_flow.build_model_image(**run)
        assert ref.digest and ref.digest.startswith("sha256:")
        assert killable_registry.has_manifest(repository, ref.digest)
        assert killable_registry.has_manifest(repository, "1")
    finally:
        pushed = f"{killable_registry.host}/{repository}"
        image.remove(engine, [f"{pushed}:1", f"{pushed}:latest"])
