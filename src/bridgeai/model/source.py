"""Where a model comes from: a local directory, or a ``models:/`` / ``runs:/`` URI in MLflow.

The one place a registered model is looked up and downloaded, used by training (the champion
gate re-scores the champion), drift (the champion predicts the reference rows), deploy (which
version to serve) and serving (what the model server loads):

* :func:`resolve_version` turns an alias or a version number into the registry's model version
  (:func:`find_version` when a missing alias is normal, as for the first champion);
* :func:`fetch` downloads what a URI names into a folder, with ``model-info.json`` beside it
  recording where it came from, so an image serving a baked-in directory still reports its
  registry version; :func:`load` does the same and returns the loaded model.

MLflow is imported only when a URI needs it: a server loading a baked-in directory starts
without it. Clients come from :func:`bridgeai.model.mlflow_client.client`; this module never
loads a Prefect block.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, Field

from bridgeai.model import ARTIFACT_KEY, CHAMPION_URI, REGISTERED_MODEL, registry_uri
from bridgeai.model.errors import BridgeAIError, is_transient
from bridgeai.model.house_price import find_model_dir

if TYPE_CHECKING:
    from bridgeai.model.house_price import HousePriceModel

#: Written next to (inside) a model directory that left the registry.
INFO_FILE = "model-info.json"

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))/?$")
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)(?:/(?P<path>.*))?$")
#: MLflow's answers for "no such model, version or alias".
_MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class ModelSourceError(BridgeAIError):
    """The model URI or directory cannot be used; the message says what to fix."""

    status_code = 400


class ModelNotFound(ModelSourceError):
    """The registry has no such model, version, alias or run."""

    status_code = 404


class ModelInfo(BaseModel):
    """Identity of a model as the registry knows it."""

    name: str = Field(default=REGISTERED_MODEL, description="Registered model name.")
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


# -- the registry -------------------------------------------------------------------------------
def resolve_version(
    client: Any,
    name: str = REGISTERED_MODEL,
    *,
    alias: str | None = None,
    version: str | int | None = None,
) -> Any:
    """The registry's model version for ``version``, else for ``alias``.

    Raises:
        ModelNotFound: the model, version or alias does not exist.
        ModelSourceError: the registry failed (``transient`` when it did not answer).
    """
    from mlflow.exceptions import MlflowException

    try:
        if version is not None:
            return client.get_model_version(name, str(version))
        if alias is None:
            raise ModelSourceError("resolve_version needs an alias or a version")
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code not in _MISSING:
            raise _registry_error(client, f"looking up {name}", exc) from exc
        if version is not None:
            raise ModelNotFound(
                f"model {name!r} has no version {version}: list its versions in the MLflow UI "
                f"or with MlflowClient().search_model_versions(\"name='{name}'\")"
            ) from None
        raise ModelNotFound(
            f"model {name!r} has no {alias!r} alias yet: run model-training (it sets the alias "
            "when the new version beats the champion), or name a version"
        ) from None


def find_version(client: Any, name: str, alias: str) -> Any | None:
    """The model version holding ``alias``, or None when no version (or no model) holds it."""
    try:
        return resolve_version(client, name, alias=alias)
    except ModelNotFound:
        return None


def resolve(uri: str, client: Any | None = None) -> ModelInfo:
    """Look a ``models:/`` or ``runs:/`` URI up in MLflow without downloading anything.

    A ``runs:/`` URI gets the version of the registered model that run produced, if any.

    Raises:
        ModelNotFound: the model, alias, version or run does not exist.
        ModelSourceError: the URI has the wrong shape, or the registry failed.
    """
    client = client or _default_client()
    if uri.startswith("runs:/"):
        return _resolve_run(client, uri)
    ref = parse_models_uri(uri)
    mv = resolve_version(client, ref.name, alias=ref.alias, version=ref.version)
    return ModelInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        source=registry_uri(mv.name, version=mv.version),
        aliases=list(getattr(mv, "aliases", []) or []),
    )


def _resolve_run(client: Any, uri: str) -> ModelInfo:
    from mlflow.exceptions import MlflowException

    match = _RUNS_URI.match(uri)
    if not match:
        raise ModelSourceError(f"{uri!r} is not a runs:/<run_id>/<path> URI")
    run_id = match["run_id"]
    try:
        client.get_run(run_id)
        found = client.search_model_versions(f"run_id = '{run_id}'")
    except MlflowException as exc:
        if exc.error_code in _MISSING:
            raise ModelNotFound(f"{uri}: MLflow has no run {run_id}") from None
        raise _registry_error(client, f"looking up {uri}", exc) from exc
    version = next((v for v in found if v.name == REGISTERED_MODEL), found[0] if found else None)
    return ModelInfo(
        name=version.name if version else REGISTERED_MODEL,
        version=str(version.version) if version else None,
        run_id=run_id,
        source=uri,
        aliases=list(getattr(version, "aliases", []) or []) if version else [],
    )


def fetch(uri: str, dest: Path, client: Any | None = None) -> tuple[Path, ModelInfo]:
    """Download the model a registry URI names into ``dest``; return its directory and identity.

    Only the model directory (``model.txt`` + ``preprocessing.json``) is downloaded, into
    ``dest`` itself, with ``model-info.json`` beside the files, so ``dest`` is ready to load or
    to bake into an image.

    Raises:
        ModelNotFound: the URI names nothing in the registry.
        ModelSourceError: what it names is not a BridgeAI model, or the download failed.
    """
    client = client or _default_client()
    info = resolve(uri, client)
    with tempfile.TemporaryDirectory(prefix="bridgeai-download-") as tmp:
        try:
            local = _download(client, uri, info, tmp)
        except Exception as exc:  # MLflow raises many types here (store, S3, HTTP)
            if getattr(exc, "error_code", None) in _MISSING:
                raise ModelSourceError(
                    f"{uri} has no {ARTIFACT_KEY} artifact: not a BridgeAI model"
                ) from None
            raise _registry_error(client, f"downloading {uri}", exc) from exc
        try:
            model_dir = find_model_dir(local)
        except FileNotFoundError as exc:
            raise ModelSourceError(f"{uri} is not a BridgeAI model: {exc}") from None
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(model_dir, dest)
    info.write(dest)
    return dest, info


def _download(client: Any, uri: str, info: ModelInfo, dest: str) -> str:
    """Download the model directory of ``uri`` (only that, not the pyfunc's code) into ``dest``.

    A registered version is downloaded from its storage location: MLflow resolves ``models:/``
    URIs through its process-global registry URI, whatever the client was built for. A
    ``runs:/`` URI names an MLflow 3 logged model only MLflow can find, so MLflow's fluent API
    is pointed at the client's server for that one call.
    """
    import mlflow

    from bridgeai.model.mlflow_client import (
        fluent,
        progress_bars_in_terminals_only,
        tracking_uri_of,
    )

    tracking = tracking_uri_of(client)
    with progress_bars_in_terminals_only():
        if uri.startswith("runs:/"):
            with fluent(tracking):
                return str(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=dest))
        location = str(client.get_model_version_download_uri(info.name, info.version))
        return str(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{location.rstrip('/')}/artifacts/{ARTIFACT_KEY}",
                dst_path=dest,
                tracking_uri=tracking,
            )
        )


def load(uri: str, client: Any | None = None) -> tuple[HousePriceModel, ModelInfo]:
    """Download and load the model a registry URI names.

    Raises:
        ModelNotFound, ModelSourceError: see :func:`fetch`; also when this code cannot read
            the model's format.
    """
    from bridgeai.model.house_price import HousePriceModel

    with tempfile.TemporaryDirectory(prefix="bridgeai-model-") as tmp:
        model_dir, info = fetch(uri, Path(tmp) / "model", client)
        try:
            return HousePriceModel.load(model_dir), info
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise ModelSourceError(f"{uri} cannot be loaded by this code: {exc}") from exc


def _default_client() -> Any:
    from bridgeai.model.mlflow_client import client

    return client()


def _registry_error(client: Any, action: str, exc: BaseException) -> ModelSourceError:
    """A registry failure as an error that says whether retrying may help."""
    from bridgeai.model.mlflow_client import tracking_uri_of

    transient = is_transient(exc)
    where = _redact(tracking_uri_of(client))
    return ModelSourceError(
        f"{action} in MLflow at {where} failed: {getattr(exc, 'message', exc)}",
        status_code=503 if transient else 500,
        transient=transient,
    )


def _redact(uri: str) -> str:
    """A URI without any ``user:password@`` part, for messages."""
    return re.sub(r"//[^/@]+@", "//***@", uri)
