"""Real MLflow registries for deployment tests: tiny models registered in a SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def register_versions(root: Path, count: int = 2, champion: int | None = None) -> Any:
    """Register ``count`` versions of the model in ``root`` and alias the champion.

    Returns the (unsaved) ``MLflowServer`` block pointing at the store; the champion is the last
    version unless ``champion`` says otherwise.
    """
    import mlflow

    from blocks import MLflowServer
    from bridgeai.model.mlflow_client import fluent
    from bridgeai.model.pyfunc import log_model
    from bridgeai.testing.models import tiny_model

    root.mkdir(parents=True, exist_ok=True)
    server = MLflowServer(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    client = server.client()
    experiment = client.create_experiment(
        server.experiment, artifact_location=(root / "artifacts").as_uri()
    )
    for index in range(count):
        with fluent(server.resolved_tracking_uri()), mlflow.start_run(experiment_id=experiment):
            log_model(
                tiny_model(rounds=5 * (index + 1)), registered_model_name=server.registered_model
            )
    client.set_registered_model_alias(server.registered_model, server.alias, str(champion or count))
    return server
