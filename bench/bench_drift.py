"""Drift monitoring on a 1,000,000-row current window x 13 columns: BridgeAI vs plain Evidently.

Target (issue 8): the drift step finishes in <= 60 s with <= 1.5 GB peak memory, and its
per-column verdicts equal Evidently's on the full data. The anchor is Evidently 0.7's
``DataDriftPreset`` run on the same full data (about 170 s and 1.5 GB).

Two scenarios, because Evidently picks its tests by the reference's size:

* ``small-ref``: a 350-row reference (the size of the housing data's train split) -> K-S,
  chi-square and Z tests.
* ``large-ref``: a 100,000-row reference -> Wasserstein and Jensen-Shannon distances.

The current window is synthetic (``bridgeai.testing.synthetic``) with a 5 % area shift. Each
side runs in its own fresh Python process, which reads the same Parquet files, so start-up, ``import
evidently`` and loading count on both sides, and peak memory is that process's ``ru_maxrss``.
"BridgeAI" is what the flow does between loading and uploading: every-row statistics
(:func:`bridgeai.drift.analysis.analyse`) plus the Evidently HTML from a 20,000-row sample
(:func:`bridgeai.drift.report.render_report`). "Evidently" is ``Report.run`` + the HTML on
all rows.

    uv run python bench/bench_drift.py [--rows 1000000] [--scenarios small-ref,large-ref]
    uv run python bench/bench_drift.py --rows 10000000 --sides bridgeai   # ours alone

``--sides bridgeai`` skips Evidently (at 10M rows it needs several GB and many minutes); the
verdict comparison then has nothing to compare with and is left out.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, write_results

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 1536.0
SCENARIOS = {"small-ref": 350, "large-ref": 100_000}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- workers: one fresh process per measurement --------------------------------------------
def worker(side: str, reference_path: str, current_path: str, out: str) -> None:
    """Run one side and write its timings, peak RSS and per-column verdicts to ``out``."""
    started = time.perf_counter()
    import polars as pl

    from bridgeai.drift import analysis, report, result

    reference = pl.read_parquet(reference_path)
    current = pl.read_parquet(current_path)
    loaded = time.perf_counter()
    specs = result.column_specs(target=True)
    figures: dict[str, float] = {"load_s": loaded - started}
    if side == "bridgeai":
        outcome = analysis.analyse(
            reference, current, specs, reference_name="reference", current_name="current"
        )
        stats_done = time.perf_counter()
        rendered = report.render_report(reference, current, outcome, specs)
        figures["stats_s"] = stats_done - loaded
        figures["report_s"] = time.perf_counter() - stats_done
        figures["html_mb"] = len(rendered.html) / 1e6
        verdicts = {
            c.column: {"method": c.method_label, "score": c.score, "drifted": c.drifted}
            for c in outcome.columns
        }
    else:
        run = report.evidently_run(reference, current, specs)
        ran = time.perf_counter()
        html = run.get_html_str(as_iframe=False)
        figures["run_s"] = ran - loaded
        figures["report_s"] = time.perf_counter() - ran
        figures["html_mb"] = len(html) / 1e6
        verdicts = report.evidently_verdicts(run)
    figures["total_s"] = time.perf_counter() - started
    figures["peak_rss_mb"] = _peak_rss_mb()
    Path(out).write_text(json.dumps({"figures": figures, "verdicts": verdicts}))


def _run_worker(side: str, reference: Path, current: Path, tmp: Path) -> dict:
    out = tmp / f"{side}.json"
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", side, str(reference), str(current), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{side} worker failed:\n{proc.stderr[-4000:]}")
    doc = json.loads(out.read_text())
    doc["figures"]["wall_s"] = time.perf_counter() - started
    return doc


# -- the comparison ---------------------------------------------------------------------------
def _write_current(path: Path, rows: int) -> None:
    """The shifted current window, made in chunks so 10M rows fit beside the workers."""
    import polars as pl

    from bridgeai.testing.synthetic import housing_frame

    chunk = 1_000_000
    parts = [
        housing_frame(min(chunk, rows - start), seed=2 + start // chunk, area_shift=1.05)
        for start in range(0, rows, chunk)
    ]
    pl.concat(parts).write_parquet(path)


def scenario(
    name: str, reference_rows: int, rows: int, tmp: Path, sides: tuple[str, ...]
) -> tuple[list, list]:
    from bridgeai.testing.synthetic import housing_frame

    reference, current = tmp / f"{name}-reference.parquet", tmp / f"{name}-current.parquet"
    housing_frame(reference_rows, seed=1).write_parquet(reference)
    if rows <= 1_000_000:
        housing_frame(rows, seed=2, area_shift=1.05).write_parquet(current)
    else:
        _write_current(current, rows)

    print(f"\n== {name}: reference {reference_rows:,} rows, current {rows:,} rows x 13 columns")
    ours = _run_worker("bridgeai", reference, current, tmp)
    print(f"   bridgeai:  {ours['figures']['total_s']:.1f} s", flush=True)
    if "evidently" not in sides:
        o = ours["figures"]
        print(f"   peak RSS {o['peak_rss_mb']:.0f} MB; load {o['load_s']:.1f} s, stats "
              f"{o['stats_s']:.1f} s, report {o['report_s']:.1f} s")  # fmt: skip
        results = [
            _metric(f"{name} bridgeai total ({rows:,} rows)", o["total_s"], "s"),
            _metric(f"{name} bridgeai statistics (all rows)", o["stats_s"], "s"),
            _metric(f"{name} bridgeai report (20k-row sample)", o["report_s"], "s"),
            _metric(f"{name} bridgeai peak RSS", o["peak_rss_mb"], "MB"),
        ]
        drifted = ", ".join(c for c, v in ours["verdicts"].items() if v["drifted"]) or "none"
        return results, [f"{name}: {rows:,} rows, Evidently not run; drifted: {drifted}"]
    theirs = _run_worker("evidently", reference, current, tmp)
    print(f"   evidently: {theirs['figures']['total_s']:.1f} s", flush=True)

    ours_v, theirs_v = ours["verdicts"], theirs["verdicts"]
    print(f"\n   {'column':18} {'test':32} {'bridgeai score':>15} {'evidently':>15}  verdicts")
    agree = 0
    max_rel = 0.0
    for column, mine in ours_v.items():
        other = theirs_v[column]
        same = mine["drifted"] == other["drifted"] and mine["method"] == other["method"]
        agree += same
        denominator = max(abs(other["score"]), 1e-300)
        if other["score"] != mine["score"]:
            max_rel = max(max_rel, abs(mine["score"] - other["score"]) / denominator)
        verdict = (
            ("drift" if mine["drifted"] else "-") + " / " + ("drift" if other["drifted"] else "-")
        )
        print(
            f"   {column:18} {mine['method']:32} {mine['score']:15.6g} {other['score']:15.6g}"
            f"  {verdict:15} {'equal' if same else 'DIFFERENT'}"
        )
    total = len(ours_v)
    o, t = ours["figures"], theirs["figures"]
    print(
        f"\n   verdicts equal on {agree}/{total} columns; max relative score difference "
        f"{max_rel:.2e}"
    )
    print(f"\n   {'':12} {'total s':>9} {'peak RSS MB':>12}  breakdown")
    print(
        f"   {'bridgeai':12} {o['total_s']:9.1f} {o['peak_rss_mb']:12.0f}  "
        f"load {o['load_s']:.1f} s, stats {o['stats_s']:.1f} s, "
        f"report (incl. import evidently) {o['report_s']:.1f} s"
    )
    print(
        f"   {'evidently':12} {t['total_s']:9.1f} {t['peak_rss_mb']:12.0f}  "
        f"load {t['load_s']:.1f} s, run (incl. import) {t['run_s']:.1f} s, "
        f"html {t['report_s']:.1f} s"
    )
    speed, memory = t["total_s"] / o["total_s"], t["peak_rss_mb"] / o["peak_rss_mb"]
    print(f"   ratio        {speed:8.1f}x {memory:11.1f}x")

    results = [
        _metric(
            f"{name} bridgeai total",
            o["total_s"],
            "s",
            f"<= {TARGET_SECONDS:.0f}",
            o["total_s"] <= TARGET_SECONDS,
        ),
        _metric(f"{name} bridgeai statistics (all rows)", o["stats_s"], "s"),
        _metric(
            f"{name} bridgeai peak RSS",
            o["peak_rss_mb"],
            "MB",
            f"<= {TARGET_RSS_MB:.0f}",
            o["peak_rss_mb"] <= TARGET_RSS_MB,
        ),
        _metric(f"{name} evidently total (anchor)", t["total_s"], "s"),
        _metric(f"{name} evidently peak RSS (anchor)", t["peak_rss_mb"], "MB"),
        _metric(f"{name} speed-up vs evidently", t["total_s"] / o["total_s"], "x"),
        _metric(
            f"{name} verdicts equal to evidently",
            agree,
            f"of {total}",
            f"== {total}",
            agree == total,
        ),
    ]
    notes = [
        f"{name}: reference {reference_rows:,} rows, current {rows:,} rows; max relative score "
        f"difference {max_rel:.2e}; drifted (bridgeai): "
        + (", ".join(c for c, v in ours_v.items() if v["drifted"]) or "none")
    ]
    return results, notes


def _metric(metric, value, unit, target=None, ok=None) -> dict:
    return {"metric": metric, "value": float(value), "unit": unit, "target": target, "ok": ok}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="current window rows")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument(
        "--sides", default="bridgeai,evidently", help="bridgeai,evidently or bridgeai alone"
    )
    parser.add_argument(
        "--worker", nargs=4, metavar=("SIDE", "REF", "CUR", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    results, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        for name in args.scenarios.split(","):
            sides = tuple(args.sides.split(","))
            r, n = scenario(name, SCENARIOS[name], args.rows, Path(tmp), sides)
            results += r
            notes += n
    notes.append(
        "Each side runs in a fresh process reading the same Parquet files; times include "
        "Python start-up, imports (evidently: 10-20 s) and loading; peak RSS is ru_maxrss."
    )
    name = "drift" if args.rows == 1_000_000 and "evidently" in args.sides else f"drift_{args.rows}"
    return write_results(name, results, notes)


if __name__ == "__main__":
    sys.exit(main())
