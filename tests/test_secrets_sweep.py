"""The secrets sweep: after an S3-backed pipeline run on the local stack, with an API key, a
PostgreSQL prediction log with a password and registry credentials set, none of the four secrets
is anywhere it must not be.

The run is the user's: ``bridgeai up`` (SeaweedFS, MLflow server, Prefect server and worker),
``prefect deploy`` of ``mlops-pipeline/local``, a flow run through the API executed by the
worker, which ingests into S3, trains into MLflow, builds and pushes the model image with the
ContainerRegistry block's credentials, serves it, posts smoke predictions with the API key and
logs them to PostgreSQL. Then every byte of these is searched, for each secret in plain, URL-
and base64-encoded form (and ``user:password`` base64, as Docker's auth configs write it):

* the data repository's history (every blob), ``.git/config`` and ``.dvc/config``;
* Prefect's database (flow-run parameters, logs, artifacts, states: every page of the SQLite
  file and its WAL) and result storage (the server's and the worker's ``PREFECT_HOME``);
* MLflow's database and its artifacts (every object in every bucket, read over S3);
* the services' logs (every ``*.log`` under ``$BRIDGEAI_HOME``);
* the built image: its config and every file of every layer (``docker save``);
* and, for good measure, every other file under ``$BRIDGEAI_HOME`` except the two places that
  must hold the S3 secret (the stack's 0600 credentials file and SeaweedFS's identity file,
  whose data folder is read over the S3 API instead).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import secrets
import subprocess
import tarfile
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.support.env import REPO_ROOT
from tests.support.service import count_rows
from tests.support.stack import BIN, cli, exported, stack_env

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.docker]


def _forms(name: str, value: str, user: str | None = None) -> dict[str, bytes]:
    forms = {
        f"{name}": value.encode(),
        f"{name} (url-encoded)": urllib.parse.quote(value, safe="").encode(),
        f"{name} (base64)": base64.b64encode(value.encode()),
    }
    if user:
        forms[f"{name} (base64 user:password)"] = base64.b64encode(f"{user}:{value}".encode())
    return {k: v for k, v in forms.items() if len(v) >= 8}


def _hits(needles: dict[str, bytes], blobs: Iterable[tuple[str, bytes]]) -> list[str]:
    found = []
    for where, data in blobs:
        for name, needle in needles.items():
            if needle in data:
                found.append(f"{name} in {where}")
    return found


def _files(root: Path, skip: Iterable[Path] = ()) -> Iterator[tuple[str, bytes]]:
    skipped = [p.resolve() for p in skip]
    for path in sorted(root.rglob("*")):
        resolved = path.resolve()
        if not path.is_file() or any(resolved == s or s in resolved.parents for s in skipped):
            continue
        yield str(path), path.read_bytes()


def _git_history(repo: Path) -> Iterator[tuple[str, bytes]]:
    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True).stdout

    for line in git("rev-list", "--all", "--objects").decode().splitlines():
        sha, _, path = line.partition(" ")
        if git("cat-file", "-t", sha).strip() == b"blob":
            yield f"git blob {sha[:12]} {path}", git("cat-file", "blob", sha)
    yield ".git/config", (repo / ".git" / "config").read_bytes()
    yield ".dvc/config", (repo / ".dvc" / "config").read_bytes()
    assert not (repo / ".dvc" / "config.local").exists()


def _s3_objects(user_env: dict[str, str]) -> Iterator[tuple[str, bytes]]:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=user_env["AWS_ENDPOINT_URL"],
        aws_access_key_id=user_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=user_env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket["Name"], Key=item["Key"])["Body"].read()
                yield f"s3://{bucket['Name']}/{item['Key']}", body


def _image(client, reference: str, work: Path) -> Iterator[tuple[str, bytes]]:
    saved = work / "image.tar"
    with open(saved, "wb") as handle:
        for chunk in client.images.get(reference).save(named=True):
            handle.write(chunk)
    yield from _tar_members(f"image {reference}", saved.read_bytes())
    saved.unlink()


def _tar_members(where: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """Every regular file of a tar (nested layer tars and gzip'd layers opened too)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data))  # noqa: SIM115 - closed below
    except tarfile.TarError:
        yield where, data
        return
    with archive:
        for member in archive:
            if not member.isfile():
                continue
            extracted = archive.extractfile(member)
            content = extracted.read() if extracted else b""
            name = f"{where}:{member.name}"
            if (
                content[:2] == b"\x1f\x8b"
                or member.name.endswith((".tar", "layer.tar"))
                or ("blobs/sha256/" in member.name and content[257:262] == b"ustar")
            ):
                yield from _tar_members(name, content)
            else:
                yield name, content


def test_the_sweep_finds_a_secret_in_each_kind_of_place(tmp_path: Path) -> None:
    """The search itself can fail: a planted secret is found in a git blob, a nested gzip'd
    layer tar, and in base64 ``user:password`` form."""
    secret = "s3cr3t-" + secrets.token_hex(8)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / "config").write_text("[core]\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "leak.txt").write_text(f"password = {secret}\n")
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
        cwd=repo, check=True,
    )  # fmt: skip
    (repo / "leak.txt").unlink()  # gone from the tree, still in the history
    needles = _forms("planted", secret, user="deployer")
    assert any("leak.txt" in hit for hit in _hits(needles, _git_history(repo)))

    def tar_of(name: str, data: bytes) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as archive:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        return out.getvalue()

    auth = base64.b64encode(f"deployer:{secret}".encode())
    layer = gzip.compress(tar_of("root/.docker/config.json", b'{"auth": "' + auth + b'"}'))
    image = tar_of("blobs/sha256/abc", layer)
    hits = _hits(needles, _tar_members("image", image))
    where = "image:blobs/sha256/abc:root/.docker/config.json"
    assert f"planted (base64 user:password) in {where}" in hits


def _wait(client, run_id, timeout: float = 1800):
    deadline = time.monotonic() + timeout
    state = client.read_flow_run(run_id).state
    while time.monotonic() < deadline and not (state and state.is_final()):
        time.sleep(3)
        state = client.read_flow_run(run_id).state
    return state


def test_no_secret_is_left_anywhere_after_an_s3_backed_pipeline_run(
    tmp_path: Path, docker_env, postgres_cluster, shared_data: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks import ContainerRegistry

    role = f"sweep_{secrets.token_hex(4)}"
    db_password = "pw-" + secrets.token_urlsafe(18)
    postgres_cluster.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{db_password}'")
    postgres_cluster.psql(f"CREATE DATABASE {role} OWNER {role}")
    database_url = f"postgresql://{role}:{db_password}@127.0.0.1:{postgres_cluster.port}/{role}"
    api_key = "key-" + secrets.token_urlsafe(18)
    namespace = f"sweep-{secrets.token_hex(4)}"
    home = tmp_path / "home"
    # What a user exports before `bridgeai up`: the worker, and the services it starts, inherit it.
    env = stack_env(
        home,
        BRIDGEAI_DATA_SOURCE=str(shared_data / "HousingData.csv"),
        BRIDGEAI_API_KEY=api_key,
        BRIDGEAI_DATABASE_URL=database_url,
        DOCKER_HOST=docker_env.docker_host,
    )
    engine = docker_env.client
    repository = f"{docker_env.registry}/{namespace}/bridgeai-mlops"
    try:
        up = cli(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        user = exported(env)
        with temporary_settings({PREFECT_API_URL: user["PREFECT_API_URL"]}):
            ContainerRegistry(
                server=docker_env.registry,
                namespace=namespace,
                username=docker_env.username,
                password=SecretStr(docker_env.password),
            ).save("bridgeai", overwrite=True)
        deployed = subprocess.run(
            [str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "mlops-pipeline/local"],
            cwd=REPO_ROOT, env=user, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        with (
            temporary_settings({PREFECT_API_URL: user["PREFECT_API_URL"]}),
            get_client(sync_client=True) as client,
        ):
            deployment = client.read_deployment_by_name("mlops-pipeline/local")
            run = client.create_flow_run_from_deployment(
                deployment.id,
                parameters={"build_image": "always", "base_image": docker_env.base_image},
            )
            state = _wait(client, run.id)
            worker_log = (home / "stack" / "logs" / "prefect-worker.log").read_text()[-6000:]
            assert state is not None and state.is_completed(), f"{state}\n{worker_log}"
            assert client.read_flow_run(run.id).parameters["base_image"] == docker_env.base_image
        stack_s3_secret = user["AWS_SECRET_ACCESS_KEY"]

        # The run really used each secret: a model image was pushed, predictions were logged.
        engine.images.get(f"{repository}:1")
        assert count_rows(database_url) > 0

        needles = {
            **_forms("S3 secret key", stack_s3_secret),
            **_forms("registry password", docker_env.password, user=docker_env.username),
            **_forms("database password", db_password),
            **_forms("API key", api_key),
        }
        stack = home / "stack"
        found = []
        found += _hits(needles, _git_history(home / "data-repo"))
        found += _hits(needles, _files(stack / "prefect"))
        found += _hits(needles, _files(stack / "prefect-worker"))
        found += _hits(needles, _files(stack / "mlflow"))
        found += _hits(needles, _s3_objects(user))
        found += _hits(needles, ((str(p), p.read_bytes()) for p in home.rglob("*.log")))
        found += _hits(needles, _image(engine, f"{repository}:1", tmp_path))
        # Everything else on disk, but the two files whose job is to hold the S3 secret.
        allowed = [stack / "s3-credentials.json", stack / "seaweed"]
        found += _hits(needles, _files(home, skip=allowed))
        assert not found, "secrets found:\n" + "\n".join(sorted(set(found)))
        # The S3 secret is where it must be, so the search would have seen it elsewhere.
        assert needles["S3 secret key"] in (stack / "s3-credentials.json").read_bytes()
    finally:
        down = cli(env, "down")
        for tag in ("1", "latest"):
            with contextlib.suppress(Exception):  # best-effort cleanup of a shared engine
                engine.images.remove(f"{repository}:{tag}", force=True)
    assert down.returncode == 0, down.stderr
