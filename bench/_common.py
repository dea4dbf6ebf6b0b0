"""What every benchmark shares: where things are, and how a result file is written.

Each ``bench_<name>.py`` writes ``bench/results/<name>.json``: ``{"name", "results", "notes"}``,
each result ``{"metric", "value", "unit", "target", "ok"}`` (``ok`` None when there is no
target). ``run_all.py`` runs them one after another and summarises the files. The project is
installed in the environment (``uv sync``), so the benchmarks import it like any user would.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
#: The original's datasets, beside the checkout (not committed; synthetic rows replace them).
SHARED = ROOT.parent / "shared" / "data"


def write_results(name: str, results: list[dict[str, Any]], notes: list[str], **extra: Any) -> int:
    """Write ``results/<name>.json`` and return the exit code: 1 when a target was missed."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    doc = {"name": name, "results": results, "notes": notes, **extra}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwritten {out}")
    return 0 if all(r.get("ok") is not False for r in results) else 1


def load_parser(description: str) -> argparse.ArgumentParser:
    """The options every load benchmark takes (wrk's duration, warm-up and connections)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--duration", type=float, default=20.0, help="Measured seconds per side.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Warm-up seconds per side.")
    parser.add_argument("--connections", type=int, default=32, help="Concurrent connections.")
    return parser


def wrk_missing() -> bool:
    """True (with a message) when the load generator is not installed."""
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return True
    return False
