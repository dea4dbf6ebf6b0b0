"""Where a served model comes from: a local directory, or a ``models:/`` / ``runs:/`` URI in MLflow.

Shared by the model server (which loads what it serves) and the image builder (which bakes a model
into an image). A registry URI resolves to a concrete version and run id; the model directory is
downloaded and written next to a small ``model-info.json`` that records where it came from, so an
image serving a baked-in directory still reports its registry version.

MLflow is imported only when a URI needs it: a server loading a baked-in directory starts without
it. The tracking URI is ``$MLFLOW_TRACKING_URI`` or the embedded store
(:func:`bridgeai.paths.embedded_mlflow_uri`); this module never loads a Prefect block.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, Field

from bridgeai.model import CHAMPION_URI, REGISTERED_MODEL
from bridgeai.model.house_price import find_model_dir

#: Written next to (inside) a model directory that left the registry.
INFO_FILE = "model-info.json"
#: The registered model name when a source does not say otherwise.
DEFAULT_MODEL_NAME = REGISTERED_MODEL

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))/?$")
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)(?:/(?P<path>.*))?$")


class ModelSourceError(RuntimeError):
    """The model URI or directory cannot be used; the message says what to fix."""


class ModelInfo(BaseModel):
    """Identity of a model as the registry knows it."""

    name: str = Field(default=DEFAULT_MODEL_NAME, description="Registered model name.")
    version: str | None = Field(default=None, description="Registry version, e.g. '3'.")
    run_id: str | None = Field(default=None, description="MLflow run that logged the model.")
    source: str | None = Field(default=None, description="The URI the model was fetched from.")
    aliases: list[str] = Field(default_factory=list, description="Registry aliases, if any.")

    def write(self, directory: Path) -> Path:
        """Write this record as ``<directory>/model-info.json`` and return the path."""
        path = directory / INFO_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path


@dataclass(frozen=True)
class RegistryRef:
    """A parsed ``models:/name@alias`` or ``models:/name/version``."""

    name: str
    alias: str | None = None
    version: str | None = None


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, or the embedded store under ``$BRIDGEAI_HOME``."""
    from bridgeai.paths import embedded_mlflow_uri

    return os.environ.get("MLFLOW_TRACKING_URI") or embedded_mlflow_uri()


def is_registry_uri(uri: str) -> bool:
    """True for ``models:/`` and ``runs:/`` URIs (which need MLflow), false for directories."""
    return uri.startswith(("models:/", "runs:/"))


def parse_models_uri(uri: str) -> RegistryRef:
    """Split ``models:/name@alias`` or ``models:/name/version``.

    Raises:
        ModelSourceError: the URI has another shape.
    """
    match = _MODELS_URI.match(uri)
    if not match:
        raise ModelSourceError(
            f"{uri!r} is not a model registry URI: use models:/<name>@<alias> "
            f"(e.g. {CHAMPION_URI}) or models:/<name>/<version>"
        )
    return RegistryRef(match["name"], alias=match["alias"], version=match["version"])


def local_path(uri: str) -> Path:
    """The directory a ``file://`` URI or a plain path names."""
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri).expanduser()


def read_local(uri: str) -> tuple[Path, ModelInfo]:
    """Find the model directory at a path (or ``file://`` URI) and its recorded identity.

    Raises:
        ModelSourceError: nothing there, or no BridgeAI model inside.
    """
    root = local_path(uri)
    if not root.exists():
        raise ModelSourceError(
            f"model path {str(root)!r} does not exist: pass a model directory, or a "
            "models:/<name>@<alias> or runs:/<run_id>/model URI"
        )
    try:
        model_dir = find_model_dir(root)
    except FileNotFoundError as exc:
        raise ModelSourceError(str(exc)) from None
    for candidate in (model_dir, root):
        info_file = candidate / INFO_FILE
        if info_file.is_file():
            return model_dir, ModelInfo.model_validate(json.loads(info_file.read_text()))
    return model_dir, ModelInfo(source=str(root))


def _client() -> Any:
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def resolve(uri: str, client: Any | None = None) -> ModelInfo:
    """Look a ``models:/`` or ``runs:/`` URI up in MLflow without downloading anything.

    A ``runs:/`` URI gets the version of the registered model that run produced, if any.

    Raises:
        ModelSourceError: the model, alias, version or run does not exist.
    """
    from mlflow.exceptions import MlflowException

    client = client or _client()
    try:
        if uri.startswith("runs:/"):
            match = _RUNS_URI.match(uri)
            if not match:
                raise ModelSourceError(f"{uri!r} is not a runs:/<run_id>/<path> URI")
            run_id = match["run_id"]
            client.get_run(run_id)
            found = client.search_model_versions(f"run_id = '{run_id}'")
            version = next((v for v in found if v.name == DEFAULT_MODEL_NAME), None)
            if version is None and found:
                version = found[0]
            return ModelInfo(
                name=version.name if version else DEFAULT_MODEL_NAME,
                version=str(version.version) if version else None,
                run_id=run_id,
                source=uri,
                aliases=list(getattr(version, "aliases", []) or []) if version else [],
            )
        ref = parse_models_uri(uri)
        if ref.alias:
            mv = client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            mv = client.get_model_version(ref.name, str(ref.version))
    except MlflowException as exc:
        raise ModelSourceError(
            f"{uri} cannot be resolved in MLflow at {_redact(tracking_uri())}: {exc.message}"
        ) from None
    return ModelInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        source=f"models:/{mv.name}/{mv.version}",
        aliases=list(getattr(mv, "aliases", []) or []),
    )


def fetch(uri: str, dest: Path, client: Any | None = None) -> tuple[Path, ModelInfo]:
    """Download the model a registry URI names into ``dest``; return its directory and identity.

    The model directory (``model.txt`` + ``preprocessing.json``) is copied to ``dest`` itself,
    with ``model-info.json`` beside the files, so ``dest`` is ready to bake into an image.

    Raises:
        ModelSourceError: the URI does not resolve, or what it names is not a BridgeAI model.
    """
    import tempfile

    import mlflow

    client = client or _client()
    info = resolve(uri, client)
    download_uri = info.source if uri.startswith("models:/") else uri
    with tempfile.TemporaryDirectory(prefix="bridgeai-download-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=download_uri,
                dst_path=tmp,
                tracking_uri=tracking_uri(),
                registry_uri=tracking_uri(),
            )
        except Exception as exc:  # MLflow raises many types here (store, S3, HTTP)
            raise ModelSourceError(f"downloading {uri} failed: {exc}") from exc
        try:
            model_dir = find_model_dir(local)
        except FileNotFoundError as exc:
            raise ModelSourceError(f"{uri} is not a BridgeAI model: {exc}") from None
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(model_dir, dest)
    info.write(dest)
    return dest, info


def _redact(uri: str) -> str:
    """A URI without any ``user:password@`` part, for messages."""
    return re.sub(r"//[^/@]+@", "//***@", uri)
