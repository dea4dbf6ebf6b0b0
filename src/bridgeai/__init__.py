"""BridgeAI: the library behind the flows, one subpackage per pipeline stage.

``data`` (ingestion and versions), ``model`` (the model and where it comes from), ``training``,
``serving`` (the OIP v2 model server), ``deploy`` (image, KServe, local target), ``service``
(the prediction service), ``drift``; ``ops`` (local stack, demo, saved blocks) and ``cli`` are
the only modules that import Prefect, ``blocks`` or ``flows`` (checked by ``make lint``).

``load_split`` and ``list_data_versions`` are imported lazily (from :mod:`bridgeai.ops.data`,
which resolves the saved blocks) so ``import bridgeai`` stays cheap: the model server and the
CLI import this package on every start.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_split": "bridgeai.ops.data",
    "list_data_versions": "bridgeai.ops.data",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bridgeai' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["__version__", "list_data_versions", "load_split"]
