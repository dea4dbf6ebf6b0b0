"""The cluster's data repository remote: smart-HTTP git (``git http-backend``) behind Basic auth.

Data versions are git commits and tags (DVC pointers); in a cluster every flow run works in a
fresh pod, so they must live in a remote that outlives the pods. This is that remote, small enough
to run from the flow-runner image in its own Deployment (``deployments/kind/manifests/
git-server.yaml``): a threaded HTTP server that hands each request to git's own CGI program and
answers 401 without the right user and token (the Kubernetes Secret ``bridgeai-git``). The bare
repositories it serves are created on start, with pushes enabled::

    BRIDGEAI_GIT_USERNAME=bridgeai BRIDGEAI_GIT_TOKEN=... \\
        python -m bridgeai.ops.git_server --root /srv/git --port 8080 --repository data

serves ``http://<host>:8080/data.git``; ``GET /healthz`` answers 200 once it listens.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger("bridgeai.git_server")


class GitServerSettings(BaseSettings):
    """Credentials of the git server, from ``BRIDGEAI_GIT_USERNAME`` / ``BRIDGEAI_GIT_TOKEN``."""

    model_config = SettingsConfigDict(env_prefix="BRIDGEAI_GIT_", extra="ignore")

    username: str = "bridgeai"
    token: SecretStr | None = None


def ensure_repository(root: Path, name: str) -> Path:
    """Create the bare repository ``<root>/<name>.git`` (pushes allowed) unless it exists."""
    path = root / f"{name.removesuffix('.git')}.git"
    if not (path / "HEAD").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True
        )
    subprocess.run(["git", "config", "http.receivepack", "true"], cwd=path, check=True)
    return path


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, de-chunked (git sends large pushes with chunked encoding)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                break
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(parts)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def make_handler(root: Path, username: str, token: str) -> type[BaseHTTPRequestHandler]:
    """A request handler class serving ``root``'s repositories to ``username``:``token``."""
    expected = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()
    backend = shutil.which("git") or "git"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            logger.info("%s %s", self.address_string(), format % args)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, b"ok\n", [("Content-Type", "text/plain")])
                return
            self._git()

        def do_POST(self) -> None:
            self._git()

        def _reply(self, status: int, body: bytes, headers: Sequence[tuple[str, str]]) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _git(self) -> None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), expected.encode()):
                body = _read_body(self)  # drain it, keep the connection usable
                del body
                self._reply(
                    401,
                    b"authentication required\n",
                    [("WWW-Authenticate", 'Basic realm="bridgeai data"')],
                )
                return
            path, _, query = self.path.partition("?")
            body = _read_body(self)
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "REMOTE_USER": username,
                "REMOTE_ADDR": self.client_address[0],
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            }
            result = subprocess.run(
                [backend, "http-backend"], input=body, env=env, capture_output=True, check=False
            )
            head, _, payload = result.stdout.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode(errors="replace").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            if result.returncode != 0 and not head:
                logger.error("git http-backend failed: %s", result.stderr.decode()[-500:])
                status, payload, headers = 500, b"git http-backend failed\n", []
            self._reply(status, payload, headers)

    return Handler


def serve(
    root: Path,
    host: str,
    port: int,
    repositories: Sequence[str],
    settings: GitServerSettings | None = None,
) -> ThreadingHTTPServer:
    """Create the repositories and return a server bound to ``host:port`` (not yet serving).

    Raises:
        ValueError: no token is configured (the server never serves without credentials).
    """
    settings = settings or GitServerSettings()
    if settings.token is None or not settings.token.get_secret_value():
        raise ValueError("BRIDGEAI_GIT_TOKEN is not set: the git server refuses to run open")
    root.mkdir(parents=True, exist_ok=True)
    for name in repositories:
        ensure_repository(root, name)
    handler = make_handler(root, settings.username, settings.token.get_secret_value())
    return ThreadingHTTPServer((host, port), handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=Path("/srv/git"))
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--repository", action="append", default=None, help="repeatable")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = serve(args.root, args.host, args.port, args.repository or ["data"])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logger.info("serving %s on http://%s:%d", args.root, args.host, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
