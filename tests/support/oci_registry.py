"""A real registry (Debian's ``docker-registry``, distribution v2) on a free loopback port, with
htpasswd auth, and a helper that pushes a minimal OCI image over the HTTP API (no Docker engine).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bridgeai import procs
from tests.conftest import require


@dataclass
class Registry:
    host: str  # 127.0.0.1:<port>
    username: str
    password: str

    def push(self, repo: str, tag: str, payload: bytes) -> str:
        """Push a one-config, no-layer OCI image; return its manifest digest."""
        import httpx

        auth = (self.username, self.password)
        base = f"http://{self.host}/v2/{repo}"
        config_digest = "sha256:" + hashlib.sha256(payload).hexdigest()
        with httpx.Client(auth=auth, timeout=30) as client:
            start = client.post(f"{base}/blobs/uploads/")
            start.raise_for_status()
            location = start.headers["Location"]
            url = location if location.startswith("http") else f"http://{self.host}{location}"
            sep = "&" if "?" in url else "?"
            client.put(f"{url}{sep}digest={config_digest}", content=payload).raise_for_status()
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": config_digest,
                        "size": len(payload),
                    },
                    "layers": [],
                }
            ).encode()
            client.put(
                f"{base}/manifests/{tag}",
                content=manifest,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            ).raise_for_status()
        return "sha256:" + hashlib.sha256(manifest).hexdigest()


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """``docker-registry`` with htpasswd (bcrypt) auth on 127.0.0.1:<free port>."""
    binary = shutil.which("docker-registry")
    require(bool(binary) and bool(shutil.which("htpasswd")), "docker-registry and htpasswd")
    root = tmp_path_factory.mktemp("registry")
    user, password = "deployer", secrets.token_urlsafe(12)
    htpasswd = subprocess.run(
        ["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True
    ).stdout
    (root / "htpasswd").write_text(htpasswd)
    port = procs.free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
        f"auth: {{htpasswd: {{realm: test, path: {root / 'htpasswd'}}}}}\n"
    )
    log = root / "registry.log"
    process = procs.start_process([str(binary), "serve", str(config)], log_file=log)
    try:
        procs.wait_until(
            lambda: procs.http_ok(f"http://127.0.0.1:{port}/v2/", accept=lambda s: s == 401),
            timeout=60,
            service="docker-registry",
            log_file=log,
            process=process,
        )
        yield Registry(f"127.0.0.1:{port}", user, password)
    finally:
        procs.stop_process(process.pid)
