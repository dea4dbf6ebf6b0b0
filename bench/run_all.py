"""Run every benchmark in bench/ one after another and write bench/results/summary.md.

Each ``bench/bench_<name>.py`` is a standalone script that runs its anchors side by side and
writes ``bench/results/<name>.json``; this runner only sequences them (never in parallel: they
measure the machine) and tabulates what they wrote.

    uv run python bench/run_all.py [name ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
#: Options a benchmark gets here: the full scaling run (10M-row training: ~16 min, 7.5 GB) is
#: for docs/scaling.md, run by hand.
ARGS = {"scaling": ["--quick"]}


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def main(selected: list[str]) -> int:
    RESULTS.mkdir(exist_ok=True)
    scripts = sorted(BENCH.glob("bench_*.py"))
    if selected:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in selected]
    lines = ["# Benchmark summary", "", f"Run at {time.strftime('%Y-%m-%d %H:%M:%S')}.", ""]
    failed = []
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        print(f"== {name}", flush=True)
        started = time.monotonic()
        command = [sys.executable, str(script), *ARGS.get(name, [])]
        proc = subprocess.run(command, cwd=BENCH.parent)
        elapsed = time.monotonic() - started
        result_file = RESULTS / f"{name}.json"
        lines += [f"## {name} ({elapsed:.0f} s)", ""]
        if proc.returncode != 0 or not result_file.is_file():
            failed.append(name)
            lines += [f"FAILED (exit code {proc.returncode}); see its output.", ""]
            continue
        doc = json.loads(result_file.read_text())
        lines += ["| metric | value | unit | target | ok |", "|---|---|---|---|---|"]
        for row in doc.get("results", []):
            ok = {True: "yes", False: "NO", None: ""}[row.get("ok")]
            lines.append(
                f"| {row['metric']} | {_fmt(row['value'])} | {row.get('unit', '')} "
                f"| {row.get('target') or ''} | {ok} |"
            )
        lines += [""] + [f"- {note}" for note in doc.get("notes", [])] + [""]
    summary = RESULTS / "summary.md"
    summary.write_text("\n".join(lines))
    print(f"\nsummary written to {summary}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
