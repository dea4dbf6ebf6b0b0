"""Model sources: directories with their identity, and registry URIs resolved in MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridgeai.model import source as model_source
from bridgeai.model.source import ModelInfo, ModelSourceError
from bridgeai.testing.models import tiny_model


def test_directory_with_info_file(tmp_path: Path) -> None:
    model_dir = tiny_model().save(tmp_path / "m")
    ModelInfo(version="4", run_id="r4", source="models:/x/4").write(model_dir)
    found, info = model_source.read_local(model_dir.as_uri())  # file:// works too
    assert found == model_dir
    assert (info.version, info.run_id) == ("4", "r4")


def test_directory_without_info_file(tmp_path: Path) -> None:
    model_dir = tiny_model().save(tmp_path / "nested" / "model_dir")
    found, info = model_source.read_local(str(tmp_path))
    assert found == model_dir
    assert info.version is None
    assert info.name == "house_price_prediction_prod"


def test_bad_paths_and_uris_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="does not exist"):
        model_source.read_local(str(tmp_path / "missing"))
    with pytest.raises(ModelSourceError, match="not a BridgeAI model"):
        model_source.read_local(str(tmp_path))
    with pytest.raises(ModelSourceError, match="models:/<name>@<alias>"):
        model_source.parse_models_uri("models:/only/too/many/parts")


def test_parse_models_uri() -> None:
    ref = model_source.parse_models_uri("models:/house_price_prediction_prod@champion")
    assert (ref.name, ref.alias, ref.version) == ("house_price_prediction_prod", "champion", None)
    ref = model_source.parse_models_uri("models:/house_price_prediction_prod/3")
    assert (ref.alias, ref.version) == (None, "3")


@pytest.mark.integration
def test_fetch_resolves_alias_and_run_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.model_server import register

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    model = tiny_model()
    registered = register(model)
    model_dir, info = model_source.fetch(
        "models:/house_price_prediction_prod@champion", tmp_path / "a"
    )
    assert (info.version, info.run_id) == (registered.version, registered.run_id)
    assert info.source == f"models:/house_price_prediction_prod/{registered.version}"
    assert "champion" in info.aliases
    assert (model_dir / "model.txt").read_text() == model.booster.model_to_string()
    assert ModelInfo.model_validate_json((model_dir / "model-info.json").read_text()) == info

    _, by_run = model_source.fetch(f"runs:/{registered.run_id}/model", tmp_path / "b")
    assert (by_run.version, by_run.run_id) == (registered.version, registered.run_id)

    with pytest.raises(model_source.ModelNotFound, match="has no version 99"):
        model_source.resolve("models:/house_price_prediction_prod/99")
    with pytest.raises(model_source.ModelNotFound, match="has no 'staging' alias"):
        model_source.resolve("models:/house_price_prediction_prod@staging")
