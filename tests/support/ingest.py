"""Fixtures and helpers for the ingestion and data-version tests.

Real components only: git repositories (a bare one stands in for GitHub), a smart-HTTP git
server (``git http-backend``) that demands a token, SeaweedFS for S3, and DVC itself.
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import polars as pl

from bridgeai.data import cleaning, validation
from bridgeai.data import versions as data_versions
from bridgeai.data.repository import DataRepo
from bridgeai.data.split import split_frame
from bridgeai.data.versions import DataVersion, SplitParams


# -- data ---------------------------------------------------------------------------------------
def write_csv(path: Path, frame: pl.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path


def expected_splits(csv: Path, params: SplitParams | None = None) -> dict[str, pl.DataFrame]:
    """What ingestion must version for ``csv``: parse, clean and split it independently."""
    params = params or SplitParams()
    cleaned = cleaning.clean(validation.parse(validation.read_csv(csv))).frame
    return split_frame(cleaned, params.test_size, params.val_size, params.seed)


# -- versioning without Prefect (the flow's steps, in order) ----------------------------------
def publish(
    repo: DataRepo, storage: Any, frame: pl.DataFrame, *, bump: data_versions.Bump = "minor"
) -> DataVersion:
    """Version ``frame`` the way the data-ingestion flow does, without Prefect."""
    params = SplitParams()
    cleaned = cleaning.clean(frame).frame
    checksum = cleaning.checksum(cleaned, params.model_dump())
    splits = split_frame(cleaned)
    with repo.lock():
        repo.open(sync=True)
        remote = storage.dvc_remote()
        existing = data_versions.find_version(repo, checksum, remote_url=remote["url"])
        if existing:
            return existing
        tag = data_versions.next_tag(repo.version_tags(), bump)
        rows = {k: v.height for k, v in splits.items()}
        meta = data_versions.metadata(
            tag=tag,
            source="test",
            checksum=checksum,
            rows=rows,
            split=params,
            created_at=datetime.now(UTC),
            remote=remote,
        )
        try:
            md5 = repo.stage(splits, meta, remote)
            repo.push_data(data_versions.remote_config(storage))
            commit = repo.commit_version(tag, f"{tag}: test")
        except BaseException:
            repo.discard()
            raise
    return DataVersion(
        tag=tag, commit=commit, md5=md5, rows=rows, source="test", checksum=checksum, created=True
    )


# -- inspecting a repository --------------------------------------------------------------------
def git(repo_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo_dir, capture_output=True, text=True, check=True
    ).stdout.strip()


def commit_count(repo_dir: Path) -> int:
    return int(git(repo_dir, "rev-list", "--count", "--all"))


def tags(repo_dir: Path) -> dict[str, str]:
    """tag -> commit, for every tag."""
    out = git(
        repo_dir,
        "for-each-ref",
        "refs/tags",
        "--format=%(refname:short) %(*objectname)%(objectname)",
    )
    result = {}
    for line in out.splitlines():
        name, sha = line.split()
        # Annotated tags print the peeled commit first; lightweight ones only the commit.
        result[name] = sha[:40]
    return result


def files_containing(repo_dir: Path, secret: str) -> list[str]:
    """Every blob in the repository's history, plus .git/config, that contains ``secret``."""
    hits = []
    objects = git(repo_dir, "rev-list", "--all", "--objects").splitlines()
    for line in objects:
        sha, _, path = line.partition(" ")
        if git(repo_dir, "cat-file", "-t", sha) != "blob":
            continue
        content = subprocess.run(
            ["git", "cat-file", "blob", sha], cwd=repo_dir, capture_output=True, check=True
        ).stdout
        if secret.encode() in content:
            hits.append(path or sha)
    config = repo_dir / ".git" / "config"
    config = config if config.is_file() else repo_dir / "config"  # a bare repository
    if secret in config.read_text():
        hits.append(str(config.relative_to(repo_dir)))
    return hits


def bare_remote(path: Path) -> Path:
    """A bare git repository standing in for the data repository's hosting (GitHub, Gitea)."""
    subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True)
    return path


# -- a git server that requires a token ---------------------------------------------------------
@dataclass
class GitHTTPServer:
    url: str
    username: str
    token: str
    requests: list[tuple[str, int]]


class _GitCGIHandler(BaseHTTPRequestHandler):
    """Smart-HTTP git through ``git http-backend``, behind HTTP Basic auth."""

    root: Path
    credentials: str
    requests: list[tuple[str, int]]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.requests.append((self.path, 401))
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="data"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": self.credentials.split(":")[0],
            "REMOTE_ADDR": "127.0.0.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        result = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode(errors="replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.requests.append((self.path, status))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


# -- an S3 server a test may stop -----------------------------------------------------------------
@dataclass
class DedicatedS3:
    """A SeaweedFS of one's own (the session's shared one must never be stopped)."""

    config: Any
    log_file: Path
    process: Any

    def storage(self) -> Any:
        from pydantic import SecretStr

        from blocks import ObjectStorage

        return ObjectStorage(
            endpoint_url=self.config.endpoint_url,
            access_key_id=self.config.access_key,
            secret_access_key=SecretStr(self.config.secret_key),
        )

    def stop(self) -> None:
        from bridgeai import procs

        procs.stop_process(self.process.pid)

    def start(self) -> None:
        from bridgeai.ops import seaweed

        self.process = seaweed.start(self.config, self.log_file)
