"""The one MLflow client factory: a plain function of the tracking URI and its credentials.

:func:`client` is what the ``MLflowServer`` block's ``client()``, the model server, training,
drift and deploy all call; nothing else in the project builds an ``MlflowClient``. It returns a
client bound to the given URI (tracking and registry) and sets no process-global MLflow state,
with one exception MLflow imposes: basic-auth credentials, which MLflow's REST and artifact
clients read from ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` on every request.
They are exported only when given, and only when they differ from what is already set.

MLflow's fluent API (``mlflow.start_run``, ``log_model``) reads a process-global tracking URI:
:func:`fluent` points it at a server for one ``with`` block and restores it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bridgeai.model.mlflow_store import prepare_sqlite_store
from bridgeai.paths import embedded_mlflow_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
_REGISTRY_URI_ENV = "MLFLOW_REGISTRY_URI"
_USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
_PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"  # noqa: S105 - the variable's name, not a secret
_PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, or the embedded SQLite store under ``$BRIDGEAI_HOME``."""
    return os.environ.get(TRACKING_URI_ENV) or embedded_mlflow_uri()


def client(
    tracking_uri: str | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    artifact_location: str | None = None,
) -> MlflowClient:
    """An ``MlflowClient`` for ``tracking_uri`` (tracking and model registry).

    Args:
        tracking_uri: ``http(s)://`` server or ``sqlite:///`` store; default
            :func:`default_tracking_uri`.
        username: basic-auth user, if the server has one.
        password: its password.
        artifact_location: artifact root of a new SQLite store's ``Default`` experiment.
    """
    from mlflow import MlflowClient

    uri = tracking_uri or default_tracking_uri()
    prepare_sqlite_store(uri, artifact_location)
    if username:
        _export_credentials(username, password or "")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def tracking_uri_of(mlflow_client: MlflowClient) -> str:
    """The tracking URI a client was built for."""
    return str(mlflow_client.tracking_uri)


@contextlib.contextmanager
def fluent(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (tracking and registry) at ``tracking_uri`` for a block.

    Afterwards MLflow's globals, and the ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI``
    variables it mirrors them into, are as they were (unset when they were unset).

    The globals are the process's, so threads share them: threads asking for the same URI share
    one pointing (restored when the last leaves), and a thread asking for another URI waits
    until they have left. Without that, the first thread to leave put the URI back under the
    others' open runs (two trainings in one process failed with "Run ... not found").
    A thread already inside may nest another URI; that inner block is its own.
    """
    me = threading.get_ident()
    with _FLUENT:
        nested = me in _fluent_holders and _fluent_uri[0] != tracking_uri
        while not nested and _fluent_holders and _fluent_uri[0] != tracking_uri:
            _FLUENT.wait()
        if nested or not _fluent_holders:
            saved = _point(tracking_uri)
        if not nested:
            if not _fluent_holders:
                _fluent_uri[:] = [tracking_uri, saved]
            _fluent_holders.append(me)
    try:
        with progress_bars_in_terminals_only():
            yield
    finally:
        with _FLUENT:
            if nested:
                _restore(saved)
            else:
                _fluent_holders.remove(me)
                if not _fluent_holders:
                    _restore(_fluent_uri[1])
                    _fluent_uri[:] = [None, None]
                    _FLUENT.notify_all()


_FLUENT = threading.Condition()
_fluent_holders: list[int] = []  # one entry per open block (a thread may hold several)
_fluent_uri: list[Any] = [None, None]  # [the URI they share, what to restore]


def _point(tracking_uri: str) -> tuple[Any, ...]:
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    before = tracking_state._tracking_uri, registry_state._registry_uri
    environment = {name: os.environ.get(name) for name in (TRACKING_URI_ENV, _REGISTRY_URI_ENV)}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return before, environment


def _restore(saved: tuple[Any, ...]) -> None:
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_state

    before, environment = saved
    mlflow.set_tracking_uri(before[0])  # None: back to unset
    registry_state._registry_uri = before[1]
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def progress_bars_in_terminals_only() -> Iterator[None]:
    """MLflow's artifact progress bars off for a block when stderr is not a terminal (a log, a
    CI job), where every update of a bar becomes a line; a value the user set is kept."""
    if _PROGRESS_BAR_ENV in os.environ or sys.stderr.isatty():
        yield
        return
    os.environ[_PROGRESS_BAR_ENV] = "false"
    try:
        yield
    finally:
        os.environ.pop(_PROGRESS_BAR_ENV, None)


def _export_credentials(username: str, password: str) -> None:
    for name, value in ((_USERNAME_ENV, username), (_PASSWORD_ENV, password)):
        if os.environ.get(name) != value:
            os.environ[name] = value
