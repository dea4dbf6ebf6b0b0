"""BridgeAI: the Prefect-free library behind the flows.

``load_split`` and ``list_data_versions`` are imported lazily so ``import bridgeai`` stays cheap
(the model server and CLI import this package on every start).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_split": "bridgeai.data.versions",
    "list_data_versions": "bridgeai.data.versions",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bridgeai' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["__version__", "list_data_versions", "load_split"]
