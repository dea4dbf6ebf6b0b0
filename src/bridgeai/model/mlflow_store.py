"""Fresh SQLite MLflow stores without waiting for MLflow's migrations every time.

A new SQLite tracking store runs every one of MLflow's schema migrations before its first answer
(5-25 s on a loaded 2-core machine), and embedded mode makes a new store for every
``$BRIDGEAI_HOME``. The migrated, empty database is the same for a given MLflow version, so it is
built once into a per-user cache and copied for each new store; the copy's ``Default``
experiment is then pointed at the new store's own artifact folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bridgeai`` (default ``~/.cache/bridgeai``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bridgeai"


def _template() -> Path:
    from importlib.metadata import version

    return cache_dir() / f"mlflow-{version('mlflow')}-empty.db"


def _build_template(template: Path) -> None:
    from mlflow import MlflowClient

    template.parent.mkdir(parents=True, exist_ok=True)
    building = template.with_name(f"{template.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        building.unlink()
    client = MlflowClient(tracking_uri=SQLITE_PREFIX + str(building))
    client.search_experiments()
    client.search_registered_models()
    building.replace(template)  # atomic: concurrent builders each publish a complete file


def prepare_sqlite_store(tracking_uri: str, artifact_root: str | None = None) -> None:
    """Create the SQLite store behind ``tracking_uri`` from the cached template, if it is new.

    Does nothing for other URIs or an existing database file. ``artifact_root`` (a URI) is where
    the ``Default`` experiment keeps artifacts; without it, ``artifacts`` beside the file.
    """
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return
    database = Path(tracking_uri.removeprefix(SQLITE_PREFIX))
    if database.exists():
        return
    template = _template()
    if not template.exists():
        _build_template(template)
    database.parent.mkdir(parents=True, exist_ok=True)
    partial = database.with_name(f"{database.name}.{os.getpid()}.tmp")
    shutil.copyfile(template, partial)
    root = artifact_root or (database.parent / "artifacts").resolve().as_uri()
    with contextlib.closing(sqlite3.connect(partial)) as connection, connection:
        connection.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (root.rstrip("/") + "/0",),
        )
    try:
        # link, not replace: when two processes race, the first store wins and stays intact.
        os.link(partial, database)
    except FileExistsError:
        pass
    finally:
        partial.unlink()
