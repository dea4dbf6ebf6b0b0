"""Prefect global concurrency limits of one slot: locks that hold across processes and pools.

Two promotions must not race on the champion alias (each reads the champion, compares, and
moves the alias), and two deployments must not roll out on the same target at once. Both run as
deployment runs on any worker or as subflows in any process, so the lock lives in the Prefect
API: a global concurrency limit of 1, created on first use.

    with exclusive(CHAMPION_LOCK):
        decision = register_and_gate(...)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect import get_run_logger

#: Held around the champion gate's read-compare-set of the alias.
CHAMPION_LOCK = "bridgeai-champion"


def deploy_lock(target: str, namespace: str | None = None) -> str:
    """The lock that serialises rollouts on one target (a KServe namespace, or this machine)."""
    return f"bridgeai-deploy-{target}" + (
        f"-{namespace}" if target == "kserve" and namespace else ""
    )


def ensure_limit(name: str) -> None:
    """Create the one-slot global concurrency limit ``name`` unless it exists.

    An existing limit is left as its owner set it (for example deactivated on purpose).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:  # read first: a refused create is logged by the server as an error with a traceback
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        with contextlib.suppress(ObjectAlreadyExists):  # another run created it meanwhile
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


@contextlib.contextmanager
def exclusive(name: str, *, timeout_seconds: float | None = None) -> Iterator[None]:
    """Hold the one slot of ``name`` for the block (waiting for it, up to ``timeout_seconds``).

    Raises:
        TimeoutError: the slot was not free within ``timeout_seconds``.
    """
    from prefect.concurrency.sync import concurrency

    ensure_limit(name)
    logger = get_run_logger()
    logger.info("Acquiring the %s lock (a Prefect global concurrency limit)", name)
    with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, strict=True):
        logger.info("Holding the %s lock", name)
        yield
    logger.info("Released the %s lock", name)
