"""Links into the MLflow UI for the flows' result artifacts (only when MLflow is served over HTTP).

An embedded store (SQLite, local folders) has no UI to link to, so every helper returns None
there and the artifacts show plain ids instead.
"""

from __future__ import annotations

from typing import Any


def mlflow_ui(server: Any) -> str | None:
    """The MLflow UI's base URL, or None for an embedded store."""
    uri = str(server.resolved_tracking_uri())
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def model_version_url(server: Any, name: str, version: str | int | None) -> str | None:
    """The registered version's page."""
    base = mlflow_ui(server)
    return f"{base}/#/models/{name}/versions/{version}" if base and version else None


def run_url(server: Any, run_id: str | None, experiment_id: str | None = None) -> str | None:
    """The run's page (its experiment looked up when not given)."""
    base = mlflow_ui(server)
    if not base or not run_id:
        return None
    if experiment_id is None:
        experiment_id = server.client().get_run(run_id).info.experiment_id
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def artifact_url(server: Any, run_id: str, path: str) -> str | None:
    """A run artifact as the tracking server serves it (what an image artifact can show)."""
    base = mlflow_ui(server)
    return f"{base}/get-artifact?path={path}&run_uuid={run_id}" if base else None


def md(text: str, url: str | None) -> str:
    """A markdown link, or the text as code when there is nothing to link to."""
    return f"[{text}]({url})" if url else f"`{text}`"
