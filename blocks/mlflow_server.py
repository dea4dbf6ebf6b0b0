"""The MLflow tracking server and model registry as a typed Prefect Block."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from bridgeai.model import CHAMPION, REGISTERED_MODEL, registry_uri
from bridgeai.paths import embedded_mlflow_uri, home_dir

if TYPE_CHECKING:
    from mlflow import MlflowClient


class MLflowServer(Block):
    """Where runs are tracked and models registered, and the names the flows use there.

    With no ``tracking_uri`` the block uses an embedded store: SQLite at
    ``$BRIDGEAI_HOME/mlflow/mlflow.db`` with artifacts under ``$BRIDGEAI_HOME/mlflow/artifacts``.
    ``client()`` is the one place an MLflow client is built.
    """

    _block_type_name = "BridgeAI MLflow Server"
    _block_type_slug = "bridgeai-mlflow-server"
    _logo_url = "https://mlflow.org/img/mlflow-black.svg"  # type: ignore[assignment]
    _description = "MLflow tracking URI, credentials, experiment and registered model names."

    tracking_uri: str | None = Field(
        default=None,
        description="e.g. http://127.0.0.1:5080. Empty: embedded SQLite store under "
        "$BRIDGEAI_HOME/mlflow.",
    )
    username: str | None = Field(
        default=None, description="Basic-auth user, if the server has one."
    )
    password: SecretStr | None = Field(default=None, description="Basic-auth password.")
    experiment: str = Field(
        default="bridgeai-house-price-prediction", description="Experiment for training runs."
    )
    registered_model: str = Field(default=REGISTERED_MODEL, description="Registered model name.")
    alias: str = Field(default=CHAMPION, description="Alias of the serving model version.")

    def resolved_tracking_uri(self) -> str:
        """The tracking URI, the embedded SQLite store when none is set."""
        return self.tracking_uri or embedded_mlflow_uri()

    def artifact_location(self) -> str | None:
        """Artifact root for new experiments: a folder beside a SQLite store, else the server's."""
        if not self.tracking_uri:
            return Path(home_dir("mlflow", "artifacts")).as_uri()
        if self.tracking_uri.startswith("sqlite:///"):
            # A database file has no artifact root of its own: MLflow would default to ./mlruns
            # in whatever directory the process happens to run in. Keep them beside the file.
            database = Path(self.tracking_uri.removeprefix("sqlite:///"))
            return (database.parent / "artifacts").resolve().as_uri()
        return None

    def env(self) -> dict[str, str]:
        """Environment variables that point ``mlflow`` commands and clients at this server."""
        env = {"MLFLOW_TRACKING_URI": self.resolved_tracking_uri()}
        if self.username:
            env["MLFLOW_TRACKING_USERNAME"] = self.username
        if self.password:
            env["MLFLOW_TRACKING_PASSWORD"] = self.password.get_secret_value()
        return env

    def client(self) -> MlflowClient:
        """An ``MlflowClient`` for this server (:func:`bridgeai.model.mlflow_client.client`).

        No process-global MLflow state is changed, except the basic-auth credentials, which
        MLflow reads from the environment on each request (exported only when set here).
        """
        from bridgeai.model import mlflow_client

        return mlflow_client.client(
            self.resolved_tracking_uri(),
            username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            artifact_location=self.artifact_location(),
        )

    def ensure_experiment(self, client: MlflowClient | None = None) -> str:
        """Create the experiment if needed (with the embedded artifact root) and return its id."""
        client = client or self.client()
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        return str(
            client.create_experiment(self.experiment, artifact_location=self.artifact_location())
        )

    def model_uri(self, version: int | str | None = None) -> str:
        """``models:/<name>@<alias>``, or ``models:/<name>/<version>`` when a version is given."""
        return registry_uri(self.registered_model, alias=self.alias, version=version)
