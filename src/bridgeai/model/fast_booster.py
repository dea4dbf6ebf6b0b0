"""LightGBM prediction for small batches straight through its C API.

``lightgbm.Booster.predict`` spends ~60-80 µs of Python bookkeeping per call (building a predictor
object and a parameter string, inspecting the input) before predicting one row in ~5 µs. At a few
thousand single-row requests per second that bookkeeping is the largest cost on the model server's
hot path, so :class:`FastBooster` wraps a booster and calls the C API directly for small float64
matrices with one thread: ``LGBM_BoosterPredictForMatSingleRowFast`` for one row (with a
per-thread ``FastConfig``, as LightGBM requires) and ``LGBM_BoosterPredictForMat`` for a few rows.
Everything else (more threads, other dtypes, large batches, any other attribute) goes to the
wrapped booster, so :class:`bridgeai.model.house_price.HousePriceModel` keeps its one code path.

It uses LightGBM's C library handle (``lightgbm.basic._LIB``, ``Booster._handle``); if those are
missing in some LightGBM version, :func:`wrap` returns the booster unchanged.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL
_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_ROW_MAJOR = 1
_DOUBLE_P = ctypes.POINTER(ctypes.c_double)


class FastBooster:
    """A ``lightgbm.Booster`` whose one-thread, small-batch predictions skip its Python layer."""

    def __init__(self, booster: Any, max_rows: int = 2048) -> None:
        from lightgbm.basic import _LIB

        self._booster = booster
        self._lib = _LIB
        self._handle = booster._handle
        self._ncol = int(booster.num_feature())
        self._params = b"num_threads=1"
        self._max_rows = max_rows
        self._local = threading.local()
        self._configs: list[ctypes.c_void_p] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._booster, name)

    def predict(self, data: Any, num_threads: int | None = None, **kwargs: Any) -> Any:
        """Like ``Booster.predict``; small float64 matrices with one thread take the fast path."""
        if (
            not kwargs
            and num_threads == 1
            and isinstance(data, np.ndarray)
            and data.dtype == np.float64
            and data.ndim == 2
            and data.shape[1] == self._ncol
            and 0 < data.shape[0] <= self._max_rows
        ):
            return self._predict_small(np.ascontiguousarray(data))
        if num_threads is not None:
            kwargs["num_threads"] = num_threads
        return self._booster.predict(data, **kwargs)

    def _predict_small(self, data: np.ndarray) -> np.ndarray:
        rows = data.shape[0]
        out = np.empty(rows, dtype=np.float64)
        out_len = ctypes.c_int64(0)
        if rows == 1:
            status = self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                self._fast_config(),
                data.ctypes.data_as(ctypes.c_void_p),
                ctypes.byref(out_len),
                out.ctypes.data_as(_DOUBLE_P),
            )
        else:
            status = self._lib.LGBM_BoosterPredictForMat(
                self._handle,
                data.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(rows),
                ctypes.c_int32(self._ncol),
                ctypes.c_int(_ROW_MAJOR),
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_char_p(self._params),
                ctypes.byref(out_len),
                out.ctypes.data_as(_DOUBLE_P),
            )
        if status != 0 or out_len.value != rows:
            # Let LightGBM's own path raise its usual error (or succeed) for this input.
            return self._booster.predict(data, num_threads=1)
        return out

    def _fast_config(self) -> ctypes.c_void_p:
        config = getattr(self._local, "config", None)
        if config is None:
            config = ctypes.c_void_p()
            status = self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                self._handle,
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(self._ncol),
                ctypes.c_char_p(self._params),
                ctypes.byref(config),
            )
            if status != 0:
                raise RuntimeError("LightGBM could not prepare single-row prediction")
            self._local.config = config
            with self._lock:
                self._configs.append(config)
        return config

    def close(self) -> None:
        """Free the per-thread single-row configurations."""
        with self._lock:
            for config in self._configs:
                self._lib.LGBM_FastConfigFree(config)
            self._configs.clear()
        self._local = threading.local()


def wrap(booster: Any, max_rows: int = 2048) -> Any:
    """``FastBooster(booster)``, or ``booster`` itself if this LightGBM lacks the C handles."""
    try:
        return FastBooster(booster, max_rows=max_rows)
    except (ImportError, AttributeError):
        return booster
