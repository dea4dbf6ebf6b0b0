"""Data versions for notebooks: ``bridgeai.load_split`` and ``bridgeai.list_data_versions``.

The library (:mod:`bridgeai.data.versions`) takes the storage and the repository as plain
values; these two resolve the saved blocks first (``"bridgeai"`` by default), so a notebook needs
no configuration. In embedded mode (no Prefect server configured) that asks Prefect nothing: the
embedded defaults are used at once, and no server starts.

    from bridgeai import load_split, list_data_versions
    list_data_versions()                        # ["data-v1.0.0", "data-v1.1.0"]
    train = load_split("data-latest", "train")  # a polars DataFrame
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridgeai.data import versions

if TYPE_CHECKING:
    import polars as pl


def resolve_storage(name_or_block: Any = None) -> Any:
    """The ``ObjectStorage`` block: given, or loaded by name (default ``"bridgeai"``)."""
    from blocks import DEFAULT_BLOCK_NAME, ObjectStorage, load_block

    if name_or_block is None or isinstance(name_or_block, str):
        return load_block(ObjectStorage, name_or_block or DEFAULT_BLOCK_NAME)
    return name_or_block


def resolve_repository(name_or_value: Any = None) -> Any:
    """The ``DataRepository`` block by name (default ``"bridgeai"``), or what was given.

    A block name is loaded; a ``DataRepository`` block, a ``DataRepo``, a folder (``Path``) or
    a git URL is passed to the library as it is.
    """
    from blocks import DEFAULT_BLOCK_NAME, DataRepository, load_block

    if name_or_value is None:
        return load_block(DataRepository, DEFAULT_BLOCK_NAME)
    if isinstance(name_or_value, str) and "/" not in name_or_value and ":" not in name_or_value:
        return load_block(DataRepository, name_or_value)
    return name_or_value


def list_data_versions(*, repository: Any = None) -> list[str]:
    """Every ``data-vX.Y.Z`` tag, oldest first (empty before the first ingestion).

    Args:
        repository: a ``DataRepository`` block or its name (default ``"bridgeai"``), a
            ``DataRepo``, a folder holding the repository, or a git URL.
    """
    return versions.list_data_versions(repository=resolve_repository(repository))


def load_split(
    tag: str = versions.LATEST,
    split: str = "train",
    *,
    storage: Any = None,
    repository: Any = None,
) -> pl.DataFrame:
    """One split of a data version as a polars DataFrame (see :func:`versions.load_split`).

    Args:
        tag: ``data-vX.Y.Z``, ``data-latest`` or ``data-previous``.
        split: ``train``, ``val`` or ``test``.
        storage: an ``ObjectStorage`` block or its name (default ``"bridgeai"``).
        repository: as for :func:`list_data_versions`.
    """
    return versions.load_split(
        tag, split, storage=resolve_storage(storage), repository=resolve_repository(repository)
    )
