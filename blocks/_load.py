"""Loading blocks by name: saved blocks against a Prefect server, embedded defaults without one."""

from __future__ import annotations

from typing import TypeVar

from prefect.blocks.core import Block

DEFAULT_BLOCK_NAME = "bridgeai"

B = TypeVar("B", bound=Block)


class BlockNotFoundError(LookupError):
    """A block the flows need is not saved in the Prefect API they talk to."""


def prefect_server_configured() -> bool:
    """True when a Prefect API is configured (``PREFECT_API_URL``, a profile, a test harness).

    Without one, Prefect runs flows on an ephemeral in-process API: that is embedded mode.
    """
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def load_block(cls: type[B], name: str = DEFAULT_BLOCK_NAME) -> B:
    """Load the ``cls`` block saved as ``name``.

    In embedded mode (no Prefect server configured) nothing is saved anywhere, so the default
    name gives the block's embedded defaults (local folder storage, SQLite MLflow, the local
    data repository) without asking Prefect anything; another name is an error. Against a
    server, the block must be saved: a missing one is an error naming the block, its type and
    how to create it (a misconfigured cluster fails instead of writing to pod-local folders).

    Raises:
        BlockNotFoundError: no such block is saved (or, embedded, a name other than the default).
    """
    if not prefect_server_configured():
        if name == DEFAULT_BLOCK_NAME:
            return cls()
        raise BlockNotFoundError(
            f"no {cls.__name__} block named {name!r}: no Prefect server is configured "
            f"(embedded mode), where only the default blocks ({DEFAULT_BLOCK_NAME!r}) exist. "
            "Set PREFECT_API_URL to the server the block is saved in"
        )
    try:
        # _sync: a notebook has a running event loop, where Prefect would return a coroutine.
        return cls.load(name, _sync=True)  # type: ignore[return-value,call-arg]
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise
        slug = cls.get_block_type_slug()
        raise BlockNotFoundError(
            f"no {cls.__name__} block (type {slug}) named {name!r} is saved in the Prefect API "
            f"at {_api_url()}. Create it: `bridgeai up` (local stack), "
            "`python deployments/kind/configure_blocks.py` (Kind), or "
            f"{cls.__name__}(...).save({name!r}); list saved ones with "
            f"`prefect block ls` (register the types with `prefect block register -m blocks`)"
        ) from exc


def _api_url() -> str:
    from prefect.settings import get_current_settings

    return str(get_current_settings().api.url)
