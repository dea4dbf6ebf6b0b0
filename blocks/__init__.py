"""Typed Prefect Blocks: the shared infrastructure and secrets the flows use.

Register the types with ``prefect block register -m blocks``. Each block owns the one factory
that builds its client; flows load them by name with :func:`load_block`: saved blocks against a
Prefect server (a missing one is an error saying how to create it), the embedded defaults for
the default name ``"bridgeai"`` when no server is configured.
"""

from blocks._load import (
    DEFAULT_BLOCK_NAME,
    BlockNotFoundError,
    load_block,
    prefect_server_configured,
)
from blocks.data_repository import DataRepository
from blocks.mlflow_server import MLflowServer
from blocks.prediction_database import PredictionDatabase
from blocks.registry import ContainerRegistry
from blocks.storage import ObjectStorage, StorageError

__all__ = [
    "DEFAULT_BLOCK_NAME",
    "BlockNotFoundError",
    "ContainerRegistry",
    "DataRepository",
    "MLflowServer",
    "ObjectStorage",
    "PredictionDatabase",
    "StorageError",
    "load_block",
    "prefect_server_configured",
]
