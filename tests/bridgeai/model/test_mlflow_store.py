"""New SQLite MLflow stores copied from a migrated template behave like freshly created ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridgeai.model.mlflow_store import prepare_sqlite_store


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "bridgeai"


def test_store_from_template_is_a_working_mlflow_store(tmp_path: Path, cache: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'one' / 'mlflow.db'}"
    prepare_sqlite_store(uri)
    templates = list(cache.glob("mlflow-*-empty.db"))
    assert len(templates) == 1, "the template is built once into the cache"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    default = client.get_experiment("0")
    assert default.artifact_location == (tmp_path / "one" / "artifacts").resolve().as_uri() + "/0"
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "r2", 0.5)
    assert client.get_run(run.info.run_id).data.metrics == {"r2": 0.5}
    client.create_registered_model("m")
    assert [m.name for m in client.search_registered_models()] == ["m"]

    # A second store comes from the same template and shares nothing with the first.
    other = f"sqlite:///{tmp_path / 'two' / 'mlflow.db'}"
    prepare_sqlite_store(other, artifact_root="s3://bucket/root")
    second = MlflowClient(tracking_uri=other, registry_uri=other)
    assert [e.name for e in second.search_experiments()] == ["Default"]
    assert second.get_experiment("0").artifact_location == "s3://bucket/root/0"
    assert second.search_registered_models() == []


def test_existing_stores_and_servers_are_left_alone(tmp_path: Path, cache: Path) -> None:
    existing = tmp_path / "mlflow.db"
    existing.write_bytes(b"not touched")
    prepare_sqlite_store(f"sqlite:///{existing}")
    assert existing.read_bytes() == b"not touched"
    prepare_sqlite_store("http://127.0.0.1:5080")
    assert not cache.exists(), "a server URI needs no template"
