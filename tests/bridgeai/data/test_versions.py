"""Data versions on real git + DVC repositories: tags, moving tags, fresh-clone reads, secrets."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from blocks import DataRepository, ObjectStorage
from bridgeai.data import cleaning
from bridgeai.data import versions as data_versions
from bridgeai.data.repository import DataRepo, DataRepoError, default_workdir, redact_url
from bridgeai.data.split import split_frame
from bridgeai.data.versions import describe, list_data_versions, load_split, load_splits, next_tag
from bridgeai.testing.synthetic import housing_frame
from tests.support.env import REPO_ROOT
from tests.support.ingest import (
    bare_remote,
    commit_count,
    files_containing,
    git,
    publish,
    tags,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:dvc.*")


def _splits(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return split_frame(cleaning.clean(frame).frame)


# -- pure helpers -------------------------------------------------------------------------------
def test_next_tag_starts_at_1_0_0_and_bumps_the_highest_version() -> None:
    assert next_tag([]) == "data-v1.0.0"
    existing = ["data-v1.0.0", "data-v1.10.0", "data-v1.9.3", "data-latest", "v9.9.9"]
    assert next_tag(existing) == "data-v1.11.0"
    assert next_tag(existing, "patch") == "data-v1.10.1"
    assert next_tag(existing, "major") == "data-v2.0.0"
    with pytest.raises(ValueError, match="major, minor or patch"):
        next_tag(existing, "huge")  # type: ignore[arg-type]


def test_redact_url_removes_userinfo_and_query() -> None:
    assert redact_url("https://u:pw@host:8443/a/b.csv?X-Amz-Signature=s") == (
        "https://host:8443/a/b.csv?<redacted>"
    )
    assert redact_url("/data/x.csv") == "/data/x.csv"


def test_block_keeps_the_token_out_of_repr_and_the_workdir_per_remote() -> None:
    block = DataRepository(url="https://git.example/data.git", token="s3cr3t-token")
    repo = block.repository()
    assert "s3cr3t" not in repr(repo)
    assert repo.workdir == default_workdir("https://git.example/data.git")
    assert repo.workdir != DataRepository().repository().workdir


# -- embedded mode ------------------------------------------------------------------------------
def test_embedded_versions_tags_and_fresh_cache_reads(bridgeai_home: Path) -> None:
    storage = ObjectStorage()
    repo = DataRepo()
    old, new = housing_frame(150, seed=1), housing_frame(150, seed=2, price_shift=1.2)

    v1 = publish(repo, storage, old)
    v2 = publish(repo, storage, new)

    assert (v1.tag, v2.tag) == ("data-v1.0.0", "data-v1.1.0")
    assert repo.workdir == bridgeai_home / "data-repo"
    refs = tags(repo.workdir)
    assert refs["data-latest"] == refs["data-v1.1.0"] == v2.commit
    assert refs["data-previous"] == refs["data-v1.0.0"] == v1.commit
    assert list_data_versions(repository=repo) == ["data-v1.0.0", "data-v1.1.0"]
    assert (
        describe("data-previous", repository=repo).model_dump()
        == describe("data-v1.0.0", repository=repo).model_dump()
    )
    assert describe(repository=repo).tag == "data-v1.1.0"

    # The commit holds pointers only; the bytes are in the DVC remote (the storage folder).
    tracked = git(repo.workdir, "ls-tree", "-r", "--name-only", v1.commit).split()
    assert "data/train.parquet.dvc" in tracked and "data/train.parquet" not in tracked
    remote_file = storage.root() / "artifacts" / "dvc" / "files" / "md5" / v1.md5["train"][:2]
    assert (remote_file / v1.md5["train"][2:]).is_file()

    # Every local cache gone: the reads come from the remote and match what was pushed.
    shutil.rmtree(repo.workdir / ".dvc" / "cache")
    shutil.rmtree(repo.workdir / ".dvc" / "tmp")
    for split in ("data/train.parquet", "data/val.parquet", "data/test.parquet"):
        (repo.workdir / split).unlink()
    frames = load_splits("data-v1.0.0", storage=storage, repository=repo)
    for name, expected in _splits(old).items():
        assert frames[name].equals(expected), name
        assert v1.rows[name] == expected.height
    assert load_split("data-latest", "test", storage=storage, repository=repo).equals(
        _splits(new)["test"]
    )


def test_identical_content_creates_nothing(bridgeai_home: Path) -> None:
    storage, repo = ObjectStorage(), DataRepo()
    first = publish(repo, storage, housing_frame(120, seed=3))
    commits = commit_count(repo.workdir)
    again = publish(repo, storage, housing_frame(120, seed=3))
    assert again.tag == first.tag and not again.created
    assert again.checksum == first.checksum and again.md5 == first.md5
    assert commit_count(repo.workdir) == commits
    assert list_data_versions(repository=repo) == ["data-v1.0.0"]


def test_unknown_tag_and_split_errors_say_what_exists(bridgeai_home: Path) -> None:
    storage, repo = ObjectStorage(), DataRepo()
    with pytest.raises(DataRepoError, match="run the data-ingestion flow"):
        load_split("data-latest", "train", storage=storage, repository=repo)
    assert list_data_versions(repository=repo) == []
    publish(repo, storage, housing_frame(100, seed=4))
    with pytest.raises(DataRepoError, match=r"data-v9\.0\.0.*versions: data-v1\.0\.0"):
        describe("data-v9.0.0", repository=repo)
    with pytest.raises(DataRepoError, match="data-previous appears once a second version"):
        describe("data-previous", repository=repo)
    with pytest.raises(ValueError, match="unknown split"):
        load_split("data-latest", "validation", storage=storage, repository=repo)


def test_corrupt_remote_copy_is_detected(bridgeai_home: Path) -> None:
    storage, repo = ObjectStorage(), DataRepo()
    version = publish(repo, storage, housing_frame(100, seed=5))
    md5 = version.md5["train"]
    remote = storage.root() / "artifacts" / "dvc" / "files" / "md5" / md5[:2] / md5[2:]
    remote.chmod(0o644)
    remote.write_bytes(remote.read_bytes()[:-10] + b"0123456789")
    shutil.rmtree(repo.workdir / ".dvc" / "cache")
    with pytest.raises(DataRepoError, match="corrupt"):
        load_split(version.tag, "train", storage=storage, repository=repo)


def test_commits_use_the_repository_identity_not_the_users(
    bridgeai_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hostile global config: a user identity, commit signing with a missing key, a hook dir.
    config = tmp_path / "gitconfig"
    config.write_text(
        "[user]\n\tname = Some User\n\temail = user@example.com\n"
        "[commit]\n\tgpgsign = true\n[user]\n\tsigningkey = NOPE\n"
    )
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    # As inside a git hook of another repository: must not redirect the data repository.
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere.git"))
    repo = DataRepo()
    publish(repo, ObjectStorage(), housing_frame(100, seed=6))
    monkeypatch.delenv("GIT_DIR")
    assert not (tmp_path / "elsewhere.git").exists()
    authors = set(git(repo.workdir, "log", "--format=%an <%ae> / %cn <%ce>").splitlines())
    assert authors == {
        "BridgeAI data ingestion <bridgeai-data@localhost> / "
        "BridgeAI data ingestion <bridgeai-data@localhost>"
    }


@pytest.mark.slow
def test_concurrent_ingestions_on_one_repository_are_serialised(
    bridgeai_home: Path, tmp_path: Path
) -> None:
    # Without Prefect (a plain stand-in for the local storage block): start-up stays short.
    remote = str(ObjectStorage().dvc_remote()["url"])
    script = (
        "import sys, types; from bridgeai.data.repository import DataRepo;"
        "from bridgeai.testing.synthetic import housing_frame;"
        "from tests.support.ingest import publish;"
        f"s = types.SimpleNamespace(dvc_remote=lambda: {{'url': {remote!r}}},"
        " dvc_credentials=lambda: {});"
        "v = publish(DataRepo(), s, housing_frame(100, seed=int(sys.argv[1])));"
        "print(v.tag)"
    )
    root = REPO_ROOT
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(seed)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (7, 8)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    assert sorted(o[0].strip() for o in outputs) == ["data-v1.0.0", "data-v1.1.0"]
    workdir = bridgeai_home / "data-repo"
    assert git(workdir, "status", "--porcelain") == ""
    assert list_data_versions(repository=DataRepo()) == ["data-v1.0.0", "data-v1.1.0"]


# -- a git remote + S3: another machine's view ---------------------------------------------------
@pytest.mark.integration
def test_remote_repository_with_s3_reads_from_a_fresh_clone(
    bridgeai_home: Path, tmp_path: Path, s3_storage: ObjectStorage
) -> None:
    remote = bare_remote(tmp_path / "data.git")
    writer = DataRepo(tmp_path / "writer", remote_url=str(remote))
    frames = {"old": housing_frame(150, seed=21), "new": housing_frame(150, seed=22)}
    v1 = publish(writer, s3_storage, frames["old"])
    v2 = publish(writer, s3_storage, frames["new"])
    assert tags(remote)["data-latest"] == v2.commit
    assert tags(remote)["data-previous"] == v1.commit

    # "Another machine": no clone, no cache; only the remote URL and the storage block.
    reader_dir = tmp_path / "reader"
    reader = DataRepo(reader_dir, remote_url=str(remote))
    assert list_data_versions(repository=reader) == ["data-v1.0.0", "data-v1.1.0"]
    shutil.rmtree(reader_dir)
    shutil.rmtree(writer.workdir)
    train = load_split("data-v1.0.0", "train", storage=s3_storage, repository=reader)
    assert train.equals(_splits(frames["old"])["train"])
    assert train.height == v1.rows["train"] > 0
    assert describe("data-latest", repository=reader).tag == "data-v1.1.0"

    # The secret is in memory only: not in the remote's history, the clone, nor DVC's config.
    secret = s3_storage.secret_access_key.get_secret_value()
    assert files_containing(remote, secret) == []
    assert files_containing(reader_dir, secret) == []
    assert secret not in (reader_dir / ".dvc" / "config").read_text()
    assert not (reader_dir / ".dvc" / "config.local").exists()
    committed = git(remote, "show", "data-v1.1.0:.dvc/config")
    assert s3_storage.endpoint_url in committed and s3_storage.access_key_id not in committed


def test_a_rejected_push_keeps_nothing(bridgeai_home: Path, tmp_path: Path) -> None:
    storage = ObjectStorage()  # the git side is under test here; S3 is covered above
    remote = bare_remote(tmp_path / "data.git")
    first = DataRepo(tmp_path / "a", remote_url=str(remote))
    second = DataRepo(tmp_path / "b", remote_url=str(remote))
    publish(first, storage, housing_frame(100, seed=31))
    second.open()
    publish(first, storage, housing_frame(100, seed=32))  # data-v1.1.0 from the first clone

    # The second clone is stale: it computes data-v1.1.0 too and its push must be rejected.
    cleaned = cleaning.clean(housing_frame(100, seed=33)).frame
    meta = {"tag": "data-v1.1.0", "source": "t", "checksum": "x", "rows": {}, "split": {}}
    second.stage(split_frame(cleaned), meta, storage.dvc_remote())
    second.push_data(data_versions.remote_config(storage))
    before = tags(second.workdir)
    with pytest.raises(DataRepoError, match="changed while this ingestion ran") as caught:
        second.commit_version("data-v1.1.0", "data-v1.1.0: stale")
    assert not caught.value.transient  # a new run must sync first: no blind task retry
    assert tags(second.workdir) == before
    assert git(second.workdir, "rev-parse", "HEAD") == before["data-v1.0.0"]
    second.discard()
    assert publish(second, storage, housing_frame(100, seed=33)).tag == "data-v1.2.0"


def test_https_remote_with_token(bridgeai_home: Path, git_http_server) -> None:
    server = git_http_server
    block = DataRepository(url=server.url, username=server.username, token=server.token)
    version = publish(block.repository(), ObjectStorage(), housing_frame(100, seed=41))
    assert version.tag == "data-v1.0.0"
    assert any(status == 200 and "receive-pack" in path for path, status in server.requests)
    workdir = block.repository().workdir
    assert files_containing(workdir, server.token) == []
    assert server.url in git(workdir, "config", "--get", "remote.origin.url")

    wrong = DataRepository(url=server.url, username=server.username, token="wrong", workdir=None)
    shutil.rmtree(workdir)
    with pytest.raises(DataRepoError, match="token") as caught:
        list_data_versions(repository=wrong)
    assert not caught.value.transient
    assert "wrong" not in str(caught.value)


# -- storage failures: what to fix, or retry ------------------------------------------------------
def test_storage_errors_say_what_to_fix_and_which_are_transient() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    from bridgeai.data.dvc_store import storage_error

    remote = {"url": "s3://artifacts/dvc", "endpointurl": "http://127.0.0.1:1"}

    def client_error(code: str, status: int) -> ClientError:
        body = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return ClientError(body, "PutObject")  # type: ignore[arg-type]

    denied = storage_error(client_error("InvalidAccessKeyId", 403), "push to", remote)
    assert not denied.transient and "access_key_id and secret_access_key" in str(denied)
    bucket = storage_error(client_error("NoSuchBucket", 404), "push to", remote)
    assert not bucket.transient and "ensure_buckets" in str(bucket)
    busy = storage_error(client_error("SlowDown", 503), "push to", remote)
    assert busy.transient
    down = storage_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "p", remote)
    assert down.transient and "is the S3 server running" in str(down)
    wrapped = RuntimeError("upload failed")
    wrapped.__cause__ = ConnectionResetError()
    assert storage_error(wrapped, "push to", remote).transient
    assert not storage_error(ValueError("bad"), "push to", remote).transient


@pytest.mark.integration
def test_wrong_s3_credentials_fail_without_retry_and_keep_nothing(
    bridgeai_home: Path, s3_storage: ObjectStorage
) -> None:
    from pydantic import SecretStr

    wrong = s3_storage.model_copy(update={"secret_access_key": SecretStr("not-the-secret")})
    repo = DataRepo()
    with pytest.raises(DataRepoError, match="rejected the credentials") as caught:
        publish(repo, wrong, housing_frame(100, seed=81))
    assert not caught.value.transient
    assert list_data_versions(repository=repo) == []
    assert git(repo.workdir, "status", "--porcelain") == ""


@pytest.mark.integration
def test_identical_content_in_another_storage_is_versioned_again(
    bridgeai_home: Path, s3_storage: ObjectStorage
) -> None:
    repo, local = DataRepo(), ObjectStorage()
    first = publish(repo, local, housing_frame(100, seed=91))
    # Embedded first, then the local stack's S3: the S3 readers need the bytes in S3.
    shutil.rmtree(repo.workdir / ".dvc" / "cache")
    with pytest.raises(DataRepoError, match="pushed to another storage") as caught:
        load_split(first.tag, "train", storage=s3_storage, repository=repo)
    assert not caught.value.transient
    moved = publish(repo, s3_storage, housing_frame(100, seed=91))
    assert moved.created and moved.tag == "data-v1.1.0" and moved.checksum == first.checksum
    assert moved.md5 == first.md5  # same bytes, now in both remotes
    frame = load_split(moved.tag, "train", storage=s3_storage, repository=repo)
    assert frame.equals(load_split(first.tag, "train", storage=local, repository=repo))
    assert publish(repo, s3_storage, housing_frame(100, seed=91)).tag == "data-v1.1.0"
