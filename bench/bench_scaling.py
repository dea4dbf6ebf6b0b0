"""How the pieces scale, for ``docs/scaling.md``: log inserts into one PostgreSQL, training at 1M
and 10M rows. (Drift at 1M/10M rows: ``bench_drift.py --rows N [--sides bridgeai]``.)

* ``insert``: ``prediction_logs`` rows/s into one PostgreSQL (``bridgeai.testing.postgres``'s
  cluster, here with PostgreSQL's durable defaults: fsync and synchronous commit on) through
  ``bridgeai.service.prediction_log.insert_rows``, one transaction per batch as the service's
  log writer does: batches of 1 (a plain INSERT), 20 (the smallest that goes through COPY) and
  500 (the writer's batch size); one writer, and two writers in parallel. Also the PostgreSQL
  server's CPU per 1,000 rows.
* ``training``: ``bridgeai.training.fit.train_model`` (project defaults: ridge baseline, early
  stopping on val, one deterministic LightGBM thread) on 1M and 10M synthetic rows split
  64/16/20, each in a fresh process: wall time, trees, peak RSS.

    uv run python bench/bench_scaling.py [insert] [training] [--rows 1000000,10000000]
        [--insert-rows 200000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import ROOT, write_results

from bridgeai.testing.postgres import PostgresCluster


class DurablePostgres(PostgresCluster):
    """The test cluster helper with PostgreSQL's durable defaults (fsync, synchronous commit)."""

    def __init__(self) -> None:
        super().__init__(durability="durable")

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])


def _log_rows(count: int, prefix: str) -> list[dict[str, Any]]:
    from bridgeai import schema

    now = datetime.now(UTC)
    base = {k: (v.lower() if isinstance(v, str) else v) for k, v in schema.EXAMPLE_HOUSE.items()}
    base["area"] = float(base["area"])
    return [
        {
            **base,
            "prediction": 4_200_000.0 + i,
            "model_name": "house_price_prediction_prod",
            "model_version": "3",
            "request_id": f"{prefix}-{i}",
            "batch_index": 0,
            "latency_ms": 2.5,
            "status": 200,
            "created_at": now,
        }
        for i in range(count)
    ]


def _postgres_cpu(pg: DurablePostgres) -> float:
    """CPU seconds of the postmaster and its live children (each backend calls setsid(), so a
    process group does not hold them; the benchmark keeps its connections open, so no backend
    exits while measured)."""
    parent = pg.postmaster_pid()
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        if pid == parent or int(fields[1]) == parent:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def insert_capacity(rows: int) -> tuple[list[dict[str, Any]], list[str]]:
    from sqlalchemy import text

    from bridgeai.service import prediction_log

    pg = DurablePostgres()
    pg.start()
    results: list[dict[str, Any]] = []
    try:
        engine = prediction_log.create_log_engine(pg.url)
        prediction_log.migrate(engine)
        for batch, writers in ((1, 1), (20, 1), (20, 2), (500, 1), (500, 2), (5000, 1)):
            # Fewer rows for one-row batches: each is a commit (an fsync) of its own.
            total = min(rows, 5_000) if batch == 1 else rows
            per_writer = total // writers
            prefix = f"b{batch}w{writers}"
            data = [_log_rows(per_writer, f"{prefix}-{w}") for w in range(writers)]

            def write(chunk: list[dict[str, Any]], batch: int = batch) -> None:
                with engine.connect() as connection:
                    for start in range(0, len(chunk), batch):
                        with connection.begin():
                            prediction_log.insert_rows(connection, chunk[start : start + batch])

            cpu_before = _postgres_cpu(pg)
            started = time.perf_counter()
            threads = [threading.Thread(target=write, args=(d,)) for d in data]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
            pg_cpu = _postgres_cpu(pg) - cpu_before
            with engine.connect() as connection:
                stored = connection.execute(
                    text("SELECT count(*) FROM prediction_logs WHERE request_id LIKE :p"),
                    {"p": f"{prefix}-%"},
                ).scalar_one()
            assert stored == per_writer * writers, (stored, per_writer * writers)
            rate = stored / elapsed
            label = f"batches of {batch}, {writers} writer(s)"
            print(f"  insert {label}: {stored:,} rows in {elapsed:.2f} s = {rate:,.0f} rows/s; "
                  f"PostgreSQL CPU {pg_cpu * 1e6 / stored:,.0f} us/row", flush=True)  # fmt: skip
            results += [
                _metric(f"prediction_logs insert, {label}", rate, "rows/s"),
                _metric(f"PostgreSQL CPU per 1k rows, {label}", pg_cpu * 1e6 / stored, "ms"),
            ]
        with engine.connect() as connection:
            size = connection.execute(
                text(
                    "SELECT pg_total_relation_size('prediction_logs'), count(*) "
                    "FROM prediction_logs"
                )
            ).one()
        per_row = size[0] / size[1]
        print(f"  table + indexes: {size[0] / 1e6:,.0f} MB for {size[1]:,} rows = "
              f"{per_row:,.0f} bytes/row", flush=True)  # fmt: skip
        results.append(_metric("prediction_logs bytes per row (table + indexes)", per_row, "B"))
        engine.dispose()
        # What drift's production window costs to read back: every row inserted above.
        started = time.perf_counter()
        window = prediction_log.read_window(
            pg.url, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        )
        elapsed = time.perf_counter() - started
        print(f"  read_window: {window.height:,} rows in {elapsed:.2f} s", flush=True)
        results.append(
            _metric(f"read_window (drift's production window), {window.height:,} rows",
                    window.height / elapsed, "rows/s")
        )  # fmt: skip
    finally:
        pg.stop()
        pg.destroy()
    notes = [
        "insert: one PostgreSQL 15 on this machine, fsync=on, synchronous_commit=on (durable "
        "defaults), a unique (request_id, batch_index) and an index on created_at as migrated; "
        "one transaction per batch; client and server share the 2 cores"
    ]
    return results, notes


# -- training -----------------------------------------------------------------------------------
def training_worker(rows: int, out: str) -> None:
    started = time.perf_counter()
    from bridgeai.data.split import split_frame
    from bridgeai.testing.synthetic import housing_frame
    from bridgeai.training.fit import train_model

    frame = housing_frame(rows, seed=3)
    made = time.perf_counter()
    frames = split_frame(frame)
    split = time.perf_counter()
    trained = train_model(frames)
    done = time.perf_counter()
    figures = {
        "generate_s": made - started,
        "split_s": split - made,
        "train_s": done - split,
        "trees": trained.best_iteration,
        "val_r2": trained.val_metrics.r2,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(out).write_text(json.dumps(figures))


def training_cost(sizes: list[int], tmp: Path) -> tuple[list[dict[str, Any]], list[str]]:
    results = []
    for rows in sizes:
        out = tmp / f"training-{rows}.json"
        print(f"  training on {rows:,} rows...", flush=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--training-worker", str(rows), str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SystemExit(f"training worker failed:\n{proc.stderr[-3000:]}")
        f = json.loads(out.read_text())
        print(f"    train_model {f['train_s']:.1f} s, {f['trees']} trees, "
              f"peak RSS {f['peak_rss_mb']:,.0f} MB", flush=True)  # fmt: skip
        results += [
            _metric(f"training {rows:,} rows: train_model (fit + encode + val)", f["train_s"], "s"),
            _metric(f"training {rows:,} rows: split 64/16/20", f["split_s"], "s"),
            _metric(f"training {rows:,} rows: trees (early-stopped)", f["trees"], "trees"),
            _metric(f"training {rows:,} rows: peak RSS", f["peak_rss_mb"], "MB"),
        ]
    notes = [
        "training: project defaults (ridge baseline, 8 leaves, learning rate 0.1, early stopping "
        "50 rounds on val, one deterministic LightGBM thread), synthetic rows (their noise "
        "decides when early stopping ends); MLflow logging and registration excluded (they "
        "do not grow with rows: see bench_training.py)"
    ]
    return results, notes


def _metric(metric: str, value: float, unit: str) -> dict[str, Any]:
    return {"metric": metric, "value": float(value), "unit": unit, "target": None, "ok": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["insert", "training"])
    parser.add_argument("--rows", default="1000000,10000000", help="training sizes")
    parser.add_argument("--insert-rows", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="50k insert rows, 1M training")
    parser.add_argument("--training-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.training_worker:
        training_worker(int(args.training_worker[0]), args.training_worker[1])
        return 0
    if args.quick:
        args.insert_rows, args.rows = 50_000, "1000000"
    results: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        if "insert" in args.parts:
            print(f"== prediction_logs inserts ({args.insert_rows:,} rows per case)", flush=True)
            r, n = insert_capacity(args.insert_rows)
            results, notes = results + r, notes + n
        if "training" in args.parts:
            print("== training cost", flush=True)
            sizes = [int(s) for s in args.rows.split(",") if s]
            r, n = training_cost(sizes, Path(tmp))
            results, notes = results + r, notes + n
    notes.append(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end "
        "(shared with other work while measured)"
    )
    return write_results("scaling", results, notes)


if __name__ == "__main__":
    raise SystemExit(main())
