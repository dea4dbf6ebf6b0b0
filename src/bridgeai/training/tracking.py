"""Recording a training run in MLflow: lineage tags, parameters, metrics, the model and plots.

Every run carries the same lineage tags (and so does its registered version, see
:mod:`bridgeai.training.registry`), so any served model can be traced to the exact data (DVC
md5s), code (git sha) and orchestration run (Prefect flow-run id) that made it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from bridgeai.training import evaluation

if TYPE_CHECKING:
    import polars as pl

    from bridgeai.training.evaluation import Metrics
    from bridgeai.training.fit import TrainedModel

#: Set in images and CI, where the project is not a git checkout.
GIT_SHA_ENV = "BRIDGEAI_GIT_SHA"
UNKNOWN = "unknown"


class Lineage(BaseModel):
    """Where a model came from; written as tags on the run and on the registered version."""

    data_version: str = Field(description="The concrete data version, data-vX.Y.Z.")
    data_commit: str = Field(description="Commit of the data repository behind it.")
    dvc_md5_train: str
    dvc_md5_val: str
    dvc_md5_test: str
    git_sha: str = Field(description="Commit of this project's code.")
    prefect_flow_run_id: str = Field(description="The Prefect flow run that trained the model.")

    @classmethod
    def from_data_version(
        cls, version: Any, *, flow_run_id: str | None, git_sha: str | None = None
    ) -> Lineage:
        """Lineage from a :class:`bridgeai.data.versions.DataVersion` (or anything shaped so)."""
        md5 = dict(version.md5)
        return cls(
            data_version=version.tag,
            data_commit=version.commit,
            dvc_md5_train=md5.get("train", UNKNOWN),
            dvc_md5_val=md5.get("val", UNKNOWN),
            dvc_md5_test=md5.get("test", UNKNOWN),
            git_sha=git_sha or project_git_sha(),
            prefect_flow_run_id=flow_run_id or UNKNOWN,
        )

    def tags(self) -> dict[str, str]:
        """The tags, named exactly as the other flows read them."""
        return {k: str(v) for k, v in self.model_dump().items()}


def project_git_sha() -> str:
    """This project's commit: ``$BRIDGEAI_GIT_SHA``, else ``git rev-parse HEAD``, else unknown."""
    if os.environ.get(GIT_SHA_ENV):
        return os.environ[GIT_SHA_ENV]
    root = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return done.stdout.strip() or UNKNOWN


@dataclass
class RunRecord:
    """What :func:`log_training_run` leaves in MLflow."""

    run_id: str
    model_uri: str
    model_id: str | None
    artifact_uri: str


def write_evaluation_artifacts(
    trained: TrainedModel, test: pl.DataFrame, directory: Path
) -> dict[str, Path]:
    """Feature importance (CSV + PNG) and residual plot (PNG) for ``trained`` on ``test``."""
    from bridgeai.training.fit import target

    table = evaluation.feature_importance(trained.model)
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = directory / "feature_importance.csv"
    table.write_csv(csv_path)
    return {
        "feature_importance_table": csv_path,
        "feature_importance_plot": evaluation.plot_feature_importance(
            table, directory / "feature_importance.png"
        ),
        "residual_plot": evaluation.plot_residuals(
            target(test), trained.model.predict_frame(test), directory / "residuals.png"
        ),
    }


def log_training_run(
    *,
    tracking_uri: str,
    experiment_id: str,
    trained: TrainedModel,
    test: pl.DataFrame,
    test_metrics: Metrics,
    baseline_metrics: Metrics,
    lineage: Lineage,
    run_name: str | None = None,
    extra_params: dict[str, Any] | None = None,
    search_table: pl.DataFrame | None = None,
) -> RunRecord:
    """Log one training run to the tracking server at ``tracking_uri``.

    Metrics: ``test_*`` and ``val_*`` for the model, ``baseline_test_*`` for the median-price
    baseline (all in price units), plus ``best_iteration``. Artifacts: the model (pyfunc with
    signature, input example and pinned requirements) and ``evaluation/`` plots and tables.
    If anything fails the run is ended as FAILED, so a half-logged run is never mistaken for a
    good one.
    """
    import mlflow

    from bridgeai.model import mlflow_client
    from bridgeai.model import pyfunc as mlflow_model  # mlflow's pyfunc machinery: only here

    params: dict[str, Any] = {
        **trained.params.mlflow_params(),
        "target_transform": trained.target_transform,
        "train_rows": trained.train_rows,
        "val_rows": trained.val_rows,
        "test_rows": test.height,
        **(extra_params or {}),
    }
    metrics = {
        **{f"test_{k}": v for k, v in test_metrics.as_dict().items()},
        **{f"val_{k}": v for k, v in trained.val_metrics.as_dict().items()},
        **{f"baseline_test_{k}": v for k, v in baseline_metrics.as_dict().items()},
        "best_iteration": float(trained.best_iteration),
    }
    with (
        mlflow_client.fluent(tracking_uri),
        mlflow.start_run(
            experiment_id=experiment_id, run_name=run_name, tags=lineage.tags()
        ) as run,
    ):
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory(prefix="bridgeai-eval-") as tmp:
            folder = Path(tmp) / "evaluation"
            write_evaluation_artifacts(trained, test, folder)
            if search_table is not None:
                search_table.write_csv(folder / "search.csv")
            mlflow.log_artifacts(str(folder), artifact_path="evaluation")
        info = mlflow_model.log_model(trained.model, name="model")
        return RunRecord(
            run_id=run.info.run_id,
            model_uri=info.model_uri,
            model_id=getattr(info, "model_id", None),
            artifact_uri=run.info.artifact_uri,
        )
