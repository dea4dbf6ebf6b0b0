"""The cluster's git remote (bridgeai.ops.git_server): real git clients push and clone through it,
a wrong or missing token is refused, and it never runs without credentials."""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bridgeai import procs
from bridgeai.ops import git_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    settings = git_server.GitServerSettings(username="bridgeai", token=SecretStr("tok-123"))
    port = procs.free_port()
    httpd = git_server.serve(tmp_path / "srv", procs.LOOPBACK, port, ["data"], settings)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{procs.LOOPBACK}:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _git(cwd: Path, *args: str, token: str | None) -> subprocess.CompletedProcess[str]:
    config = []
    if token is not None:
        header = base64.b64encode(f"bridgeai:{token}".encode()).decode()
        config = ["-c", f"http.extraHeader=Authorization: Basic {header}"]
    return subprocess.run(
        ["git", *config, "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0", "HOME": str(cwd)},
        check=False,
    )


def test_push_then_clone_through_the_server(server: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    assert _git(tmp_path, "clone", f"{server}/data.git", str(work), token="tok-123").returncode == 0
    (work / "data.dvc").write_text("outs: []\n")
    _git(work, "add", "data.dvc", token=None)
    _git(work, "commit", "-m", "data-v1.0.0", token=None)
    _git(work, "tag", "data-v1.0.0", token=None)
    pushed = _git(work, "push", "origin", "HEAD:main", "--tags", token="tok-123")
    assert pushed.returncode == 0, pushed.stderr
    again = tmp_path / "again"
    cloned = _git(tmp_path, "clone", f"{server}/data.git", str(again), token="tok-123")
    assert cloned.returncode == 0, cloned.stderr
    assert (again / "data.dvc").read_text() == "outs: []\n"
    assert _git(again, "tag", token=None).stdout.split() == ["data-v1.0.0"]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_missing_or_wrong_token_is_refused(server: str, tmp_path: Path, token) -> None:
    import httpx

    result = _git(tmp_path, "ls-remote", f"{server}/data.git", token=token)
    assert result.returncode != 0
    assert "Authentication failed" in result.stderr or "could not read Username" in result.stderr
    auth = ("bridgeai", token) if token else None
    answer = httpx.get(f"{server}/data.git/info/refs?service=git-upload-pack", auth=auth)
    assert answer.status_code == 401 and "Basic" in answer.headers["WWW-Authenticate"]


def test_health_needs_no_credentials(server: str) -> None:
    assert procs.http_ok(f"{server}/healthz")


def test_it_refuses_to_run_without_a_token(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("BRIDGEAI_GIT_TOKEN", raising=False)
    with pytest.raises(ValueError, match="BRIDGEAI_GIT_TOKEN is not set"):
        git_server.serve(tmp_path, procs.LOOPBACK, procs.free_port(), ["data"])
    assert git_server.main(["--root", str(tmp_path), "--port", "1"]) == 2
