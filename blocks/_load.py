"""Loading blocks by name, with documented embedded defaults."""

from __future__ import annotations

from typing import TypeVar

from prefect.blocks.core import Block

DEFAULT_BLOCK_NAME = "bridgeai"

B = TypeVar("B", bound=Block)


class BlockNotFoundError(LookupError):
    """A block name the caller chose is not saved in the Prefect API it talks to."""


def load_block(cls: type[B], name: str = DEFAULT_BLOCK_NAME) -> B:
    """Load the ``cls`` block saved as ``name``.

    When ``name`` is the default (``"bridgeai"``) and nothing is saved under it, return the
    block's embedded defaults (local folder storage, SQLite MLflow, ``localhost:5000``
    registry), so flows run with nothing configured. A name the caller chose must exist.

    Raises:
        BlockNotFoundError: ``name`` is not the default and no such block is saved.
    """
    try:
        # _sync: a notebook has a running event loop, where Prefect would return a coroutine.
        return cls.load(name, _sync=True)  # type: ignore[return-value,call-arg]
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise
        if name == DEFAULT_BLOCK_NAME:
            return cls()
        slug = cls.get_block_type_slug()
        raise BlockNotFoundError(
            f"no {cls.__name__} block named {name!r} is saved in this Prefect API; "
            f"create it (e.g. `bridgeai up`, or {cls.__name__}(...).save({name!r})) "
            f"or list saved ones with `prefect block ls` (type {slug})"
        ) from exc
