"""ContainerRegistry credential shapes and MLflowServer's embedded client."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from pydantic import SecretStr

from blocks import ContainerRegistry, MLflowServer


def test_registry_gives_docker_and_kubernetes_credentials() -> None:
    registry = ContainerRegistry(
        server="127.0.0.1:5000", namespace="team", username="bot", password=SecretStr("tok")
    )
    assert registry.repository() == "127.0.0.1:5000/team/bridgeai-mlops"
    assert registry.auth_config() == {
        "username": "bot",
        "password": "tok",
        "serveraddress": "127.0.0.1:5000",
    }
    doc = json.loads(registry.docker_config_json())
    entry = doc["auths"]["127.0.0.1:5000"]
    assert base64.b64decode(entry["auth"]).decode() == "bot:tok"
    assert "tok" not in repr(registry)


def test_anonymous_registry_has_no_credentials() -> None:
    registry = ContainerRegistry()
    assert registry.auth_config() is None
    assert json.loads(registry.docker_config_json()) == {"auths": {}}

    class Recorder:
        called = False

        def login(self, **kwargs: object) -> None:
            self.called = True

    recorder = Recorder()
    registry.login(recorder)
    assert not recorder.called


def test_embedded_mlflow_client_creates_the_experiment_under_bridgeai_home(
    bridgeai_home: Path,
) -> None:
    server = MLflowServer()
    client = server.client()
    experiment_id = server.ensure_experiment(client)
    experiment = client.get_experiment(experiment_id)
    assert experiment.name == "bridgeai-house-price-prediction"
    assert experiment.artifact_location.startswith((bridgeai_home / "mlflow").as_uri())
    assert (bridgeai_home / "mlflow" / "mlflow.db").is_file()
    assert server.ensure_experiment(client) == experiment_id
    assert server.model_uri() == "models:/house_price_prediction_prod@champion"
    assert server.model_uri(3) == "models:/house_price_prediction_prod/3"
