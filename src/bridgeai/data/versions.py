"""Data versions: what the data-ingestion flow publishes and what training and drift read.

A data version is a commit of the data repository (:mod:`bridgeai.data.repository`) tagged
``data-vX.Y.Z``, whose ``train``/``val``/``test`` Parquet splits are in the DVC remote of the
object storage. ``data-latest`` and ``data-previous`` name the two newest versions.

Reading::

    from bridgeai import load_split, list_data_versions
    list_data_versions()                        # ["data-v1.0.0", "data-v1.1.0"]
    train = load_split("data-latest", "train")  # a polars DataFrame
    describe("data-previous").tag               # "data-v1.0.0"

The functions here take plain values: ``storage`` is anything with the :class:`DvcStorage`
methods (the ``ObjectStorage`` block has them), and ``repository`` a :class:`DataRepo`, anything
with a ``repository()`` method returning one (the ``DataRepository`` block), a folder holding
the repository, or a git URL; None is the embedded repository ``$BRIDGEAI_HOME/data-repo``.
``bridgeai.load_split`` and ``bridgeai.list_data_versions`` (:mod:`bridgeai.ops.data`) resolve
the saved blocks first, for notebooks.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

from bridgeai.data.repository import (
    LATEST,
    METADATA_FILE,
    PREVIOUS,
    DataRepo,
    DataRepoError,
    parse_version,
    split_path,
)
from bridgeai.data.split import SPLITS

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "LATEST",
    "PREVIOUS",
    "SPLITS",
    "Bump",
    "DataRepoError",
    "DataVersion",
    "SplitParams",
    "describe",
    "find_version",
    "list_data_versions",
    "load_split",
    "load_splits",
    "next_tag",
    "open_repository",
    "remote_config",
]

Bump = Literal["major", "minor", "patch"]


class DvcStorage(Protocol):
    """Where a data version's bytes live: a DVC remote (``ObjectStorage`` implements it)."""

    def dvc_remote(self) -> dict[str, str]:
        """The remote's non-secret settings (safe to commit in ``.dvc/config``)."""
        ...

    def dvc_credentials(self) -> dict[str, str]:
        """Its secret settings (kept in memory only)."""
        ...


class SplitParams(BaseModel):
    """How the cleaned rows were split (the original's: test 0.2, then val 0.2 of the rest)."""

    test_size: float = Field(default=0.2, gt=0, lt=1, description="Fraction held out for test.")
    val_size: float = Field(
        default=0.2, gt=0, lt=1, description="Fraction of the remaining rows held out for val."
    )
    seed: int = Field(default=42, description="random_state of both train_test_split calls.")


class DataVersion(BaseModel):
    """One data version: its tag, commit, DVC md5 and rows per split, source and checksum."""

    tag: str = Field(description="The concrete version tag, data-vX.Y.Z.")
    commit: str = Field(description="The data repository commit the tag points at.")
    md5: dict[str, str] = Field(description="DVC md5 of each split's Parquet file.")
    rows: dict[str, int] = Field(description="Rows in each split.")
    source: str = Field(description="Where the data came from (credentials and query removed).")
    checksum: str = Field(
        description="sha256 of the cleaned data and split parameters; equal content, equal sum."
    )
    split: SplitParams = Field(default_factory=SplitParams)
    created_at: datetime | None = Field(default=None, description="When it was ingested (UTC).")
    created: bool = Field(
        default=False,
        description="True when this ingestion created the version; False when it existed.",
    )


# -- where ------------------------------------------------------------------------------------
def open_repository(repository: Any = None) -> DataRepo:
    """A :class:`DataRepo` for ``repository`` (not yet opened: call ``.open()``).

    Args:
        repository: None (the embedded repository ``$BRIDGEAI_HOME/data-repo``), a
            ``DataRepo``, an object whose ``repository()`` returns one (the ``DataRepository``
            block), a local folder holding the repository, or a git URL.
    """
    if repository is None:
        return DataRepo()
    if isinstance(repository, DataRepo):
        return repository
    if hasattr(repository, "repository"):
        repo = repository.repository()
        if not isinstance(repo, DataRepo):
            raise TypeError(f"{type(repository).__name__}.repository() did not return a DataRepo")
        return repo
    if isinstance(repository, str | Path):
        text = str(repository)
        if "://" not in text and not text.startswith("git@") and not text.endswith(".git"):
            return DataRepo(workdir=Path(text))
        return DataRepo(remote_url=text)
    raise TypeError(f"cannot use {type(repository).__name__} as a data repository")


def remote_config(storage: DvcStorage) -> dict[str, str]:
    """The DVC remote settings for ``storage``, credentials included (keep in memory only)."""
    return {**storage.dvc_remote(), **storage.dvc_credentials()}


# -- reading ------------------------------------------------------------------------------------
def list_data_versions(*, repository: Any = None) -> list[str]:
    """Every ``data-vX.Y.Z`` tag, oldest first (empty before the first ingestion)."""
    repo = open_repository(repository)
    with repo.lock():
        if not repo.exists() and not repo.remote_url:
            return []
        repo.open(sync=False)
        repo.fetch(reset=False)
        return repo.version_tags()


def describe(tag: str = LATEST, *, repository: Any = None) -> DataVersion:
    """The :class:`DataVersion` behind ``tag``; moving tags resolve to the concrete version.

    Raises:
        DataRepoError: no such tag (the message lists the versions that exist).
    """
    repo = open_repository(repository)
    with repo.lock():
        _require_repo(repo)
        repo.open(sync=False)
        return version_at(repo, tag)


def load_split(
    tag: str, split: str, *, storage: DvcStorage, repository: Any = None
) -> pl.DataFrame:
    """One split (``"train"``, ``"val"`` or ``"test"``) of a data version as a polars DataFrame.

    Works from a fresh machine: the repository is cloned (or fetched) and the Parquet file is
    read from the local DVC cache or, when absent, from the DVC remote in ``storage``. The bytes
    are checked against the md5 recorded in the version.

    Args:
        tag: ``data-vX.Y.Z``, ``data-latest`` or ``data-previous``.
        split: ``train``, ``val`` or ``test``.
        storage: the DVC remote's settings (an ``ObjectStorage`` block).
        repository: see :func:`open_repository`.

    Raises:
        ValueError: ``split`` is not a split name.
        DataRepoError: no such tag, or the storage does not answer or lacks the data.
    """
    return load_splits(tag, (split,), storage=storage, repository=repository)[split]


def load_splits(
    tag: str,
    splits: Iterable[str] = SPLITS,
    *,
    storage: DvcStorage,
    repository: Any = None,
) -> dict[str, pl.DataFrame]:
    """Several splits of one data version (one repository sync for all); see :func:`load_split`."""
    import polars as pl

    wanted = list(splits)
    unknown = [s for s in wanted if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {', '.join(unknown)}: use {', '.join(SPLITS)}")
    repo = open_repository(repository)
    config = remote_config(storage)
    with repo.lock():
        _require_repo(repo)
        repo.open(sync=False)
        version = version_at(repo, tag)
        frames = {}
        for split in wanted:
            data = repo.read_data(version.commit, split_path(split), config)
            digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if digest != version.md5[split]:
                raise DataRepoError(
                    f"{split} of {version.tag} read from {config.get('url')} has md5 {digest}, "
                    f"expected {version.md5[split]}: the remote's copy is corrupt; re-push it "
                    f"from a clone that has the data (`dvc push`)"
                )
            frames[split] = pl.read_parquet(io.BytesIO(data))
    return frames


def _require_repo(repo: DataRepo) -> None:
    if not repo.exists() and not repo.remote_url:
        raise DataRepoError(
            f"no data repository at {repo.workdir}: run the data-ingestion flow first "
            f"(`from flows.ingest import data_ingestion; data_ingestion(source=...)`)"
        )


def version_at(repo: DataRepo, tag: str) -> DataVersion:
    """The :class:`DataVersion` of ``tag`` in an opened repository (no locking)."""
    import yaml

    concrete, commit = repo.resolve(tag)
    pointers = {s: f"{split_path(s)}.dvc" for s in SPLITS}
    files = repo.read_files(commit, [METADATA_FILE, *pointers.values()])
    raw_meta = files[METADATA_FILE]
    if raw_meta is None or any(files[p] is None for p in pointers.values()):
        raise DataRepoError(f"{concrete} ({commit[:12]}) is not a complete data version")
    meta = json.loads(raw_meta)
    md5 = {s: str(yaml.safe_load(files[p] or b"")["outs"][0]["md5"]) for s, p in pointers.items()}
    return DataVersion(
        tag=concrete,
        commit=commit,
        md5=md5,
        rows={s: int(meta["rows"][s]) for s in SPLITS},
        source=meta["source"],
        checksum=meta["checksum"],
        split=SplitParams(**meta.get("split", {})),
        created_at=meta.get("created_at"),
    )


def find_version(
    repo: DataRepo, checksum: str, *, remote_url: str | None = None
) -> DataVersion | None:
    """The existing version with content checksum ``checksum``, if any (no locking).

    Args:
        repo: an opened repository.
        checksum: see :func:`bridgeai.data.cleaning.checksum`.
        remote_url: when given, only a version pushed to this DVC remote counts: identical
            content that lives in another storage (say, ingested in embedded mode) is not there
            for readers of this one.
    """
    tags = repo.version_tags()
    records = repo.read_objects([f"refs/tags/{tag}:{METADATA_FILE}" for tag in tags])
    for tag, raw in zip(tags, records, strict=True):
        if not raw:
            continue
        record = json.loads(raw)
        same_remote = remote_url is None or record.get("remote", {}).get("url") == remote_url
        if record.get("checksum") == checksum and same_remote:
            return version_at(repo, tag)
    return None


# -- writing ------------------------------------------------------------------------------------
def next_tag(existing: Iterable[str], bump: Bump = "minor") -> str:
    """The tag after the highest of ``existing``: ``data-v1.0.0`` first, then bump.

    Raises:
        ValueError: ``bump`` is not major, minor or patch.
    """
    versions = [v for v in (parse_version(t) for t in existing) if v is not None]
    if not versions:
        return "data-v1.0.0"
    major, minor, patch = max(versions)
    if bump == "major":
        return f"data-v{major + 1}.0.0"
    if bump == "minor":
        return f"data-v{major}.{minor + 1}.0"
    if bump == "patch":
        return f"data-v{major}.{minor}.{patch + 1}"
    raise ValueError(f"bump must be major, minor or patch, got {bump!r}")


def metadata(
    *,
    tag: str,
    source: str,
    checksum: str,
    rows: Mapping[str, int],
    split: SplitParams,
    created_at: datetime,
    remote: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``dataset.json`` for a new version.

    Args:
        remote: the DVC remote's non-secret settings (``ObjectStorage.dvc_remote()``); never
            pass credentials here, the file is committed.
    """
    return {
        "tag": tag,
        "source": source,
        "checksum": checksum,
        "rows": dict(rows),
        "split": split.model_dump(),
        "created_at": created_at.isoformat(),
        "remote": dict(remote or {}),
        **(extra or {}),
    }
