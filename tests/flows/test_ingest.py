"""The data-ingestion flow end to end: real Prefect API, git, DVC, SeaweedFS and HTTP."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)

import flows.ingest as ingest_flow
from blocks import DataRepository, ObjectStorage
from bridgeai import procs
from bridgeai.data.versions import describe, list_data_versions, load_split
from bridgeai.testing.synthetic import housing_frame
from flows.ingest import data_ingestion
from tests.support.http import serve_directory
from tests.support.ingest import (
    _GitCGIHandler,
    bare_remote,
    commit_count,
    expected_splits,
    files_containing,
    git,
    tags,
    write_csv,
)

pytestmark = [
    pytest.mark.usefixtures("prefect_harness"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dvc.*"),
]


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow's I/O tasks with their retries kept, but without the seconds of back-off."""
    for name in ("download_source", "check_existing_version", "push_data", "commit_version"):
        task = getattr(ingest_flow, name)
        monkeypatch.setattr(ingest_flow, name, task.with_options(retry_delay_seconds=0.1))


@pytest.fixture
def embedded(tmp_path: Path) -> dict[str, Any]:
    """Embedded-mode blocks (local storage folder, local repository) under unique names."""
    storage = ObjectStorage(local_root=str(tmp_path / "storage"))
    repository = DataRepository(workdir=str(tmp_path / "data-repo"))
    names = {"storage_block": _name("ingest-storage"), "repository_block": _name("ingest-repo")}
    storage.save(names["storage_block"])
    repository.save(names["repository_block"])
    return {
        "names": names,
        "storage": storage,
        "repository": repository,
        "workdir": tmp_path / "data-repo",
    }


def _task_runs(flow_run_id: Any) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {run.name.rsplit("-", 1)[0]: run for run in runs}  # "push-data-55b" -> "push-data"


def _artifacts(flow_run_id: Any) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def _table(artifact: Any) -> list[dict[str, Any]]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


# -- the original's files, over HTTP, versioned in S3 with a git remote -------------------------
@pytest.mark.integration
def test_old_then_new_csv_versions_over_http_into_s3(
    tmp_path: Path,
    shared_data: Path,
    shared_data_url: str,
    s3_storage: ObjectStorage,
) -> None:
    storage_block, repository_block = _name("ingest-s3"), _name("ingest-remote")
    s3_storage.save(storage_block)
    remote = bare_remote(tmp_path / "data.git")
    DataRepository(url=str(remote), workdir=str(tmp_path / "clone")).save(repository_block)
    blocks = {"storage_block": storage_block, "repository_block": repository_block}

    v1 = data_ingestion(source=f"{shared_data_url}/HousingData-old.csv", **blocks)
    v2 = data_ingestion(source=f"{shared_data_url}/HousingData-new.csv", **blocks)

    assert (v1.tag, v2.tag) == ("data-v1.0.0", "data-v1.1.0")
    assert v1.created and v2.created
    assert v1.rows == {"train": 260, "val": 66, "test": 82}  # 408 rows, 64/16/20
    assert sum(v2.rows.values()) == 409
    refs = tags(remote)
    assert refs["data-latest"] == refs["data-v1.1.0"] == v2.commit
    assert refs["data-previous"] == refs["data-v1.0.0"] == v1.commit

    commits = commit_count(remote)
    state = data_ingestion(
        source=f"{shared_data_url}/HousingData-new.csv", return_state=True, **blocks
    )
    again = state.result()
    assert again.tag == "data-v1.1.0" and not again.created
    assert again.commit == v2.commit and again.md5 == v2.md5
    assert commit_count(remote) == commits and tags(remote) == refs
    artifacts = _artifacts(state.state_details.flow_run_id)
    assert {r["split"]: r["rows"] for r in _table(artifacts["data-version"])} == v2.rows
    columns = {r["column"] for r in _table(artifacts["data-columns"])}
    assert columns == set(pl.read_csv(shared_data / "HousingData-new.csv").columns)

    # Every local cache gone (the working clone, its DVC cache and index): a fresh machine.
    shutil.rmtree(tmp_path / "clone")
    repository = DataRepository.load(repository_block)
    train = load_split("data-v1.0.0", "train", storage=s3_storage, repository=repository)
    assert train.equals(expected_splits(shared_data / "HousingData-old.csv")["train"])
    assert describe("data-previous", repository=repository).tag == "data-v1.0.0"

    # The bytes are in the bucket, the secret is nowhere in git.
    fs = s3_storage.filesystem()
    md5 = v1.md5["train"]
    assert fs.exists(f"{s3_storage.data_bucket}/dvc/files/md5/{md5[:2]}/{md5[2:]}")
    secret = s3_storage.secret_access_key.get_secret_value()
    assert files_containing(remote, secret) == []
    assert files_containing(tmp_path / "clone", secret) == []
    assert list((tmp_path / "clone" / ".dvc").glob("config.local")) == []


# -- bad files are refused and leave no trace ---------------------------------------------------
def _breaks(kind: str) -> pl.DataFrame:
    frame = housing_frame(80, seed=51).with_columns(pl.all().cast(pl.String))
    if kind == "missing column":
        return frame.drop("airconditioning")
    if kind == "non-numeric price":
        frame[7, "price"] = "call us"
        return frame
    frame[3, "furnishingstatus"] = "palace"
    return frame


INVALID = {
    "missing column": "airconditioning: is missing",
    "non-numeric price": "price: 1 row(s) not a number (e.g. line 9: 'call us')",
    "palace": "furnishingstatus: 1 row(s) not one of furnished",
}


def test_invalid_csv_fails_naming_the_column_and_versions_nothing(
    tmp_path: Path, embedded: dict[str, Any]
) -> None:
    names, workdir = embedded["names"], embedded["workdir"]
    good = write_csv(tmp_path / "good.csv", housing_frame(80, seed=52))
    assert data_ingestion(source=str(good), **names).tag == "data-v1.0.0"
    commits, refs = commit_count(workdir), tags(workdir)

    for kind, message in INVALID.items():
        bad = write_csv(tmp_path / f"{kind}.csv", _breaks(kind))
        state = data_ingestion(source=str(bad), return_state=True, **names)
        assert state.is_failed(), kind
        with pytest.raises(ValueError) as caught:
            state.result()
        assert message in str(caught.value) and "nothing was versioned" in str(caught.value)
        assert commit_count(workdir) == commits and tags(workdir) == refs, kind
        artifact = _artifacts(state.state_details.flow_run_id)["data-validation"]
        assert message.split(":")[0] in artifact.data
        if kind != "missing column":  # a row-level problem shows its whole row
            assert "Sample rows" in artifact.data and ("call us" in artifact.data) == (
                kind == "non-numeric price"
            )

    better = write_csv(tmp_path / "better.csv", housing_frame(80, seed=53))
    assert data_ingestion(source=str(better), **names).tag == "data-v1.1.0"


# -- S3 down while pushing ----------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.faults
def test_s3_down_at_push_time_retries_then_fails_without_a_tag(
    tmp_path: Path,
    dedicated_s3,
    synthetic_csvs: dict[str, Path],
    fast_retries: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The S3 client's own retries (~7 s per push) off: the flow's retries are under test.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    storage_block, repository_block = _name("ingest-dedicated"), _name("ingest-repo")
    dedicated_s3.storage().save(storage_block)
    workdir = tmp_path / "data-repo"
    DataRepository(workdir=str(workdir)).save(repository_block)
    blocks = {"storage_block": storage_block, "repository_block": repository_block}
    assert data_ingestion(source=str(synthetic_csvs["old"]), **blocks).tag == "data-v1.0.0"
    commits, refs = commit_count(workdir), tags(workdir)

    dedicated_s3.stop()
    state = data_ingestion(source=str(synthetic_csvs["new"]), return_state=True, **blocks)
    assert state.is_failed()
    with pytest.raises(
        Exception, match=r"could not push the data to http://127\.0\.0\.1"
    ) as caught:
        state.result()
    assert "is the S3 server running" in str(caught.value)
    push = _task_runs(state.state_details.flow_run_id)["push-data"]
    assert push.run_count == 4  # the first attempt and three retries
    assert commit_count(workdir) == commits and tags(workdir) == refs
    assert git(workdir, "status", "--porcelain") == ""

    dedicated_s3.start()
    v2 = data_ingestion(source=str(synthetic_csvs["new"]), **blocks)
    assert v2.tag == "data-v1.1.0"
    assert tags(workdir)["data-previous"] == refs["data-v1.0.0"]


# -- the git remote dies at the remote-commit step ----------------------------------------------
class _DyingGitServer:
    """A smart-HTTP git remote on a fixed loopback port that, while ``die_on_push`` is set,
    dies when a push arrives: it reads the pack, updates nothing, drops the connection and
    stops listening (later attempts get "connection refused"). ``start()`` brings it back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}/data.git"
        self.credentials = f"bridgeai:tok-{secrets.token_urlsafe(12)}"
        self.die_on_push = False
        self.pushes_seen = 0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        outer = self

        class Handler(_GitCGIHandler):
            root = outer.root
            credentials = outer.credentials
            requests: list[tuple[str, int]] = []

            def do_POST(self) -> None:
                if outer.die_on_push and "git-receive-pack" in self.path:
                    outer.pushes_seen += 1
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    self.close_connection = True
                    self.connection.close()
                    threading.Thread(target=outer.stop, daemon=True).start()
                    return
                super().do_POST()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()


@pytest.fixture
def dying_git_remote(tmp_path: Path) -> Iterator[_DyingGitServer]:
    root = tmp_path / "git-server"
    root.mkdir()
    bare_remote(root / "data.git")
    subprocess.run(["git", "config", "http.receivepack", "true"], cwd=root / "data.git", check=True)
    server = _DyingGitServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.integration
@pytest.mark.faults
def test_git_remote_down_at_the_commit_step_leaves_no_version_and_the_next_gets_its_number(
    tmp_path: Path,
    dying_git_remote: _DyingGitServer,
    synthetic_csvs: dict[str, Path],
    fast_retries: None,
) -> None:
    remote = dying_git_remote
    username, token = remote.credentials.split(":")
    storage_block, repository_block = _name("ingest-storage"), _name("ingest-http")
    ObjectStorage(local_root=str(tmp_path / "storage")).save(storage_block)
    workdir = tmp_path / "clone"
    DataRepository(url=remote.url, username=username, token=token, workdir=str(workdir)).save(
        repository_block
    )
    blocks = {"storage_block": storage_block, "repository_block": repository_block}
    assert data_ingestion(source=str(synthetic_csvs["old"]), **blocks).tag == "data-v1.0.0"
    bare = remote.root / "data.git"
    remote_commits, remote_refs = commit_count(bare), tags(bare)
    local_refs = tags(workdir)

    remote.die_on_push = True
    state = data_ingestion(source=str(synthetic_csvs["new"]), return_state=True, **blocks)
    assert state.is_failed() and remote.pushes_seen == 1  # it died at the push, then was down
    with pytest.raises(Exception, match=r"git push on http://127\.0\.0\.1:\d+/data\.git failed"):
        state.result()
    commit = _task_runs(state.state_details.flow_run_id)["commit-version"]
    assert commit.run_count == 4  # the first attempt and three retries on "connection refused"
    # Nothing anywhere: no tag, no commit on the remote; the clone rolled back and clean.
    assert commit_count(bare) == remote_commits and tags(bare) == remote_refs
    assert tags(workdir) == local_refs
    assert git(workdir, "rev-parse", "HEAD") == local_refs["data-v1.0.0"]
    assert git(workdir, "status", "--porcelain") == ""
    assert files_containing(workdir, token) == [] and files_containing(bare, token) == []

    remote.die_on_push = False
    remote.start()  # back on the same port
    v2 = data_ingestion(source=str(synthetic_csvs["new"]), **blocks)
    assert v2.tag == "data-v1.1.0" and v2.created  # the next number, not a skipped one
    assert tags(bare)["data-latest"] == v2.commit
    assert tags(bare)["data-previous"] == remote_refs["data-v1.0.0"]


# -- without ../shared: synthetic data, embedded mode -------------------------------------------
def test_embedded_synthetic_versions_bumps_and_dataset_record(
    tmp_path: Path,
    embedded: dict[str, Any],
    synthetic_csvs: dict[str, Path],
) -> None:
    names, workdir = embedded["names"], embedded["workdir"]
    v1 = data_ingestion(source=synthetic_csvs["old"], **names)  # a Path, as from a notebook
    v2 = data_ingestion(source=synthetic_csvs["new"].as_uri(), bump="patch", **names)
    # Same content with other split parameters is other content.
    v3 = data_ingestion(source=str(synthetic_csvs["new"]), bump="major", seed=7, **names)
    assert [v.tag for v in (v1, v2, v3)] == ["data-v1.0.0", "data-v1.0.1", "data-v2.0.0"]
    assert list_data_versions(repository=embedded["repository"]) == [v.tag for v in (v1, v2, v3)]
    assert describe("data-previous", repository=embedded["repository"]).tag == "data-v1.0.1"

    record = json.loads(git(workdir, "show", "data-v2.0.0:dataset.json"))
    assert record["split"] == {"test_size": 0.2, "val_size": 0.2, "seed": 7}
    assert record["checksum"] == v3.checksum and record["rows"] == v3.rows
    assert record["cleaning"]["rows_read"] == 200
    frame = load_split("data-v1.0.1", "val", storage=embedded["storage"], repository=workdir)
    assert frame.equals(expected_splits(synthetic_csvs["new"])["val"])


def test_duplicates_and_unpriced_rows_are_dropped_before_versioning(
    tmp_path: Path, embedded: dict[str, Any]
) -> None:
    frame = housing_frame(100, seed=61)
    unpriced = frame.head(3).with_columns(pl.lit(None, pl.Int64).alias("price"))
    path = write_csv(tmp_path / "messy.csv", pl.concat([frame, frame.head(5), unpriced]))
    version = data_ingestion(source=str(path), **embedded["names"])
    assert sum(version.rows.values()) == 100
    clean = data_ingestion(
        source=str(write_csv(tmp_path / "clean.csv", frame)), **embedded["names"]
    )
    assert clean.tag == version.tag and not clean.created  # same content once cleaned


def _versioned_events(flow_run_id: Any) -> list[Any]:
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(
                event=EventNameFilter(name=["bridgeai.data.versioned"]),
                related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
            ),
            limit=10,
        )
    return list(page.events)


def test_a_new_version_emits_bridgeai_data_versioned_and_identical_content_nothing(
    tmp_path: Path, embedded: dict[str, Any]
) -> None:
    import time

    names = embedded["names"]
    first, second = housing_frame(90, seed=81), housing_frame(90, seed=82)
    runs = [
        data_ingestion(source=str(write_csv(tmp_path / f"{i}.csv", frame)), **names,
                       return_state=True)
        for i, frame in enumerate((first, first, second))
    ]  # fmt: skip
    new, same, newer = (state.result() for state in runs)
    assert (new.created, same.created, newer.created) == (True, False, True)
    run_ids = [state.state_details.flow_run_id for state in runs]
    # One events client sends in order: once the third run's event is in, the second's would be.
    deadline = time.monotonic() + 120
    while not (last := _versioned_events(run_ids[2])):
        assert time.monotonic() < deadline, "the third ingestion's event never arrived"
        time.sleep(1)
    (event,) = _versioned_events(run_ids[0])
    assert event.resource.id == f"bridgeai.data-version.{new.tag}"
    assert event.payload["tag"] == new.tag and event.payload["previous_tag"] is None
    assert event.payload["rows"] == new.rows and event.payload["checksum"] == new.checksum
    assert _versioned_events(run_ids[1]) == []  # identical content: nothing to train on
    (event,) = last
    assert (event.payload["tag"], event.payload["previous_tag"]) == (newer.tag, new.tag)


# -- the download's retry policy ----------------------------------------------------------------
class _Flaky(SimpleHTTPRequestHandler):
    failures: int = 0
    status: int = 503
    hits: list[int]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.hits.append(1)
        if len(self.hits) <= self.failures:
            self.send_error(self.status)
            return
        super().do_GET()


@pytest.fixture
def flaky_server(tmp_path: Path) -> Iterator[type[_Flaky]]:
    directory = tmp_path / "www"
    write_csv(directory / "houses.csv", housing_frame(60, seed=71))
    handler = type("H", (_Flaky,), {"hits": []})
    with serve_directory(directory, handler) as url:
        handler.url = f"{url}/houses.csv"  # type: ignore[attr-defined]
        yield handler


def test_download_retries_5xx_but_not_404(
    embedded: dict[str, Any], flaky_server: type[_Flaky], fast_retries: None
) -> None:
    flaky_server.failures, flaky_server.status = 2, 503
    url = flaky_server.url  # type: ignore[attr-defined]
    assert data_ingestion(source=url, **embedded["names"]).tag == "data-v1.0.0"
    assert len(flaky_server.hits) == 3

    flaky_server.hits.clear()
    flaky_server.failures, flaky_server.status = 99, 404
    state = data_ingestion(source=url, return_state=True, **embedded["names"])
    assert state.is_failed() and len(flaky_server.hits) == 1
    with pytest.raises(Exception, match="HTTP 404: check the URL"):
        state.result()


def test_offline_default_source_says_how_to_use_a_local_file(
    embedded: dict[str, Any], fast_retries: None
) -> None:
    # tests/conftest.py points BRIDGEAI_DATA_SOURCE at a closed loopback port.
    state = data_ingestion(return_state=True, **embedded["names"])
    with pytest.raises(Exception, match="set BRIDGEAI_DATA_SOURCE or pass source= to a local CSV"):
        state.result()
    assert _task_runs(state.state_details.flow_run_id)["download-source"].run_count == 4
    assert not (embedded["workdir"] / ".git").exists()


def test_a_password_in_the_source_url_is_refused(embedded: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must not carry a password"):
        data_ingestion(source="https://user:hunter2@example.com/x.csv", **embedded["names"])
