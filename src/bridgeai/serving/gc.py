"""Process-wide settings shared by the two long-running servers (model server, prediction service).

Python's cyclic garbage collector runs a young-generation pass every 700 net container
allocations and, now and then, a full pass over every object in the process. A busy server
allocates a few hundred containers per request, and its heap holds every imported module,
model and pool: the full passes then stop the event loop for tens of milliseconds and become the
latency tail (p99 ~100 ms at ~2,300 req/s in bench/bench_prediction_service.py, against ~27 ms
with the settings below). So, once start-up is done, what exists is frozen out of the
collector's sight (it lives as long as the process anyway) and passes run less often.
Reference cycles are still collected.
"""

from __future__ import annotations

import gc

#: Young-generation threshold (allocations) and how many passes of each generation trigger the
#: next one: far fewer, cheaper passes than the interpreter's default (700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 1_000)


def tune_gc() -> None:
    """Freeze the objects that exist now and space out collections; call after start-up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
