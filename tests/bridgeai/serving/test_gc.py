"""tune_gc: what the servers do to their garbage collector once start-up is done."""

from __future__ import annotations

import subprocess
import sys


def test_tune_gc_freezes_start_up_objects_and_spaces_out_collections() -> None:
    # In a child process: the test process's own collector must stay as it is.
    script = (
        "import gc, json\n"
        "from bridgeai.serving.gc import GC_THRESHOLDS, tune_gc\n"
        "before = gc.get_freeze_count()\n"
        "tune_gc()\n"
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold(), GC_THRESHOLDS]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    import json

    before, after, threshold, wanted = json.loads(out.stdout)
    assert before == 0 and after > 1000, "start-up objects are frozen out of the collector"
    assert threshold == wanted
    assert threshold[0] > 700, "young-generation passes are spaced out from the default"
