"""A real registry (Debian's ``docker-registry``, distribution v2) on a free loopback port, with
htpasswd auth, and a helper that pushes a minimal OCI image over the HTTP API (no Docker engine).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass


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
