"""ObjectStorage against a local folder and a real SeaweedFS server."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks import ObjectStorage, StorageError


def test_local_storage_round_trips_under_bridgeai_home(bridgeai_home: Path) -> None:
    storage = ObjectStorage()
    assert storage.is_local
    uri = storage.uri(storage.reports_bucket, "a/report.html")
    assert uri == (bridgeai_home / "storage" / "evidently-reports" / "a" / "report.html").as_uri()
    fs = storage.filesystem()
    with fs.open(uri, "wb") as handle:
        handle.write(b"<html/>")
    assert (bridgeai_home / "storage/evidently-reports/a/report.html").read_bytes() == b"<html/>"
    assert storage.storage_options() == {}
    assert storage.mlflow_s3_env() == {}
    assert storage.dvc_credentials() == {}
    assert storage.dvc_remote()["url"] == str(bridgeai_home / "storage" / "artifacts" / "dvc")


def test_s3_settings_keep_the_secret_out_of_the_committed_dvc_config() -> None:
    storage = ObjectStorage(
        endpoint_url="http://127.0.0.1:8333",
        access_key_id="key-id",
        secret_access_key=SecretStr("s3cr3t-value"),
    )
    remote = storage.dvc_remote()
    assert remote == {
        "url": "s3://artifacts/dvc",
        "endpointurl": "http://127.0.0.1:8333",
        "region": "us-east-1",
    }
    assert "s3cr3t-value" not in repr(remote)
    assert storage.dvc_credentials() == {
        "access_key_id": "key-id",
        "secret_access_key": "s3cr3t-value",
    }
    assert storage.storage_options()["aws_allow_http"] == "true"
    assert storage.mlflow_s3_env()["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    assert "s3cr3t-value" not in repr(storage)
    assert storage.uri("artifacts", "dvc/x") == "s3://artifacts/dvc/x"


@pytest.mark.integration
def test_s3_storage_round_trips_through_seaweedfs(s3_storage: ObjectStorage) -> None:
    s3_storage.check()
    fs = s3_storage.filesystem()
    uri = s3_storage.uri(s3_storage.data_bucket, "probe/hello.txt")
    with fs.open(uri, "wb") as handle:
        handle.write(b"hello")
    assert s3_storage.filesystem().cat(uri) == b"hello"
    assert fs.exists(s3_storage.uri(s3_storage.reports_bucket))


@pytest.mark.integration
def test_seaweedfs_rejects_a_wrong_secret_and_the_error_says_so(s3_server) -> None:
    wrong = s3_server.storage(secret_access_key=SecretStr("not-the-secret"))
    with pytest.raises(StorageError, match="rejected the credentials"):
        wrong.check()
    fs = wrong.filesystem()
    with pytest.raises(PermissionError):
        fs.ls("artifacts")


def test_unreachable_s3_is_reported_as_such() -> None:
    from bridgeai.procs import free_port

    storage = ObjectStorage(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id="x",
        secret_access_key=SecretStr("y"),
    )
    with pytest.raises(StorageError, match="unreachable"):
        storage.check()
