"""Prediction service under load: the durable and async log side by side, and the original.

Targets (issue 15): with the durable log (``BRIDGEAI_LOG_DURABILITY=durable``, the default:
answered only after the rows are fsync'd, group commit) throughput is >= 0.75x the async log's
and >= 25x the original design's, with 0 answered requests missing from ``prediction_logs`` in
both modes. (Issue 7's: >= 1,000 requests/s at concurrency 32, every request logged.) The
anchor is ``bench/original_prediction_service.py``: the
original's design (sync endpoint, two commits per request, ``requests.post`` per call) on the
same model server and the same PostgreSQL, measured in the same run.

Load generator: ``wrk`` (Debian's wrk 4.1, C, HdrHistogram latencies) with one thread and 32
keep-alive connections, and a Lua script that records every response's status and request id
(so "every request logged" is checked id by id, not only by count). PostgreSQL runs with its
durable defaults (``fsync=on``, ``synchronous_commit=on``), as in production; pass ``--fast-pg``
for the test clusters' ``fsync=off``. Each service is stopped with SIGTERM before its rows are
counted, so the check includes the clean-shutdown flush.

    uv run python bench/bench_prediction_service.py [--duration 20] [--connections 32] [--rounds 2]

Needs ``wrk`` (``apt-get install wrk``) and the PostgreSQL server binaries.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from _common import BENCH, load_parser, write_results, wrk_missing

from bridgeai import procs, schema
from bridgeai.testing.postgres import PostgresCluster

TARGET_RPS = 1000.0
MODEL_NAME = "house_price_prediction_prod"

LUA = r"""
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  out = io.open(args[1] .. "/responses-" .. tid .. ".txt", "w")
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = BODY
function response(status, headers, body)
  local id = string.match(body, '"request_id":"(%x+)"')
  out:write(status, " ", id or "-", "\n")
end
function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "p999_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


class DurablePostgres(PostgresCluster):
    """The test cluster helper, here with PostgreSQL's durable defaults (fsync, sync commit)."""

    def database(self, name: str) -> str:
        self.psql(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int
    statuses: dict[int, int]
    ids: set[str]
    cpu_s: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, seconds: float, connections: int, workdir: Path, pids: dict[str, int]):
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "post.lua"
    body = json.dumps(schema.EXAMPLE_HOUSE, separators=(",", ":"))
    script.write_text(LUA.replace("BODY", json.dumps(body)))
    before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "10s",
        "-s", str(script), f"{url}/predict", "--", str(workdir),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = {name: _cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    match = re.search(r"^WRKJSON (.*)$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    doc = json.loads(match.group(1))
    statuses: dict[int, int] = {}
    ids: set[str] = set()
    for path in workdir.glob("responses-*.txt"):
        for line in path.read_text().splitlines():
            status, request_id = line.split(" ", 1)
            statuses[int(status)] = statuses.get(int(status), 0) + 1
            if request_id != "-":
                ids.add(request_id)
    errors = sum(doc[k] for k in doc if k.endswith("_errors") or k == "timeouts")
    return LoadResult(
        requests=doc["requests"],
        seconds=doc["duration_us"] / 1e6,
        p50_ms=doc["p50_us"] / 1000,
        p99_ms=doc["p99_us"] / 1000,
        p999_ms=doc["p999_us"] / 1000,
        errors=errors,
        statuses=statuses,
        ids=ids,
        cpu_s=cpu,
    )


def _start(command: list[str], log_file: Path, ready_url: str, name: str, env=None):
    return procs.start_server(
        command, log_file=log_file, env=env, service=name, ready=ready_url, timeout=180
    )


def _stop_gracefully(process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        procs.stop_process(process.pid)


def _rows(cluster: PostgresCluster, database: str, column: str | None = None) -> list[str]:
    env = {**os.environ, "PGPASSWORD": "bridgeai-test"}
    sql = f"SELECT {column or 'count(*)'} FROM prediction_logs"
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "-d", database,
         "-At", "-c", sql],
        capture_output=True, text=True, check=True, env=env,
    ).stdout  # fmt: skip
    return out.split()


def _run_side(
    name: str,
    command: list[str],
    url: str,
    env: dict[str, str] | None,
    args: argparse.Namespace,
    work: Path,
    model_pid: int,
) -> tuple[LoadResult, LoadResult]:
    process = _start(command, work / f"{name}.log", f"{url}/health", name, env)
    try:
        pids = {name: process.pid, "model-server": model_pid}
        print(f"  {name}: warm-up {args.warmup:.0f}s", flush=True)
        warm = _wrk(url, args.warmup, args.connections, work / f"{name}-warmup", pids)
        print(f"  {name}: measuring {args.duration:.0f}s at concurrency {args.connections}")
        measured = _wrk(url, args.duration, args.connections, work / f"{name}-run", pids)
        measured.metrics = _scrape(f"{url}/metrics")
    finally:
        _stop_gracefully(process)
    return warm, measured


def _scrape(url: str) -> dict[str, float]:
    """Unlabelled samples from a Prometheus endpoint (empty for the anchor, which has none)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            text = response.read().decode()
    except OSError:
        return {}
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _service_side(
    mode: str,
    round_no: int,
    cluster: DurablePostgres,
    model_url: str,
    model_pid: int,
    args: argparse.Namespace,
    work: Path,
) -> tuple[LoadResult, int, int]:
    """One measured run of the service in ``mode``; returns the load, ids answered, missing."""
    name = f"{mode}_{round_no}"
    database = cluster.database(f"bench_{name}")
    port = procs.free_port()
    env = {
        "BRIDGEAI_MODEL_URL": model_url,
        "BRIDGEAI_DATABASE_URL": database,
        "BRIDGEAI_SPOOL_DIR": str(work / f"spool-{name}"),
        "BRIDGEAI_LOG_LEVEL": "warning",
        "BRIDGEAI_LOG_DURABILITY": mode,
    }
    print(f"BridgeAI service, {mode} log (round {round_no + 1})", flush=True)
    warm, measured = _run_side(
        f"service-{name}",
        [sys.executable, "-m", "bridgeai.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port)],
        f"http://127.0.0.1:{port}", env, args, work, model_pid,
    )  # fmt: skip
    measured.cpu_s["service"] = measured.cpu_s.pop(f"service-{name}")
    logged_ids = set(_rows(cluster, f"bench_{name}", "request_id"))
    answered = warm.ids | measured.ids
    return measured, len(answered), len(answered - logged_ids)


def main() -> int:
    parser = load_parser(__doc__.splitlines()[0])
    parser.add_argument("--fast-pg", action="store_true", help="PostgreSQL with fsync=off.")
    parser.add_argument(
        "--rounds", type=int, default=2, help="Durable/async pairs, alternating which goes first."
    )
    args = parser.parse_args()
    if wrk_missing():
        return 2

    from bridgeai.testing.models import tiny_model
    from bridgeai.testing.synthetic import housing_frame

    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    cluster = DurablePostgres(durability="fast" if args.fast_pg else "durable")
    cluster.start()
    model_server = None
    runs: dict[str, list[tuple[LoadResult, int, int]]] = {"durable": [], "async": []}
    loads: list[float] = []
    try:
        model_dir = tiny_model(housing_frame(545, seed=11), rounds=100).save(work / "model")
        model_port = procs.free_port()
        model_url = f"http://127.0.0.1:{model_port}"
        model_server = _start(
            [sys.executable, "-m", "bridgeai.cli", "serve-model", "--model-uri", str(model_dir),
             "--host", "127.0.0.1", "--port", str(model_port)],
            work / "model-server.log", f"{model_url}/v2/models/{MODEL_NAME}/ready",
            "model server", {"BRIDGEAI_MODEL_SERVER_ACCESS_LOG": "false"},
        )  # fmt: skip
        for round_no in range(args.rounds):
            order = ("durable", "async") if round_no % 2 == 0 else ("async", "durable")
            for mode in order:
                loads.append(os.getloadavg()[0])
                runs[mode].append(
                    _service_side(mode, round_no, cluster, model_url, model_server.pid, args, work)
                )

        original_db = cluster.database("bench_original")
        port = procs.free_port()
        print("Original design (anchor)", flush=True)
        load_avg_original = os.getloadavg()[0]
        warm_o, original = _run_side(
            "original",
            [sys.executable, str(BENCH / "original_prediction_service.py"), "--port", str(port),
             "--model-url", model_url, "--database-url", original_db],
            f"http://127.0.0.1:{port}", None, args, work, model_server.pid,
        )  # fmt: skip
        original_rows = int(_rows(cluster, "bench_original")[0])
    finally:
        if model_server is not None:
            procs.stop_process(model_server.pid)
        cluster.destroy()

    pg_mode = "fsync=off" if args.fast_pg else "fsync=on, synchronous_commit=on"
    results: list[tuple[str, float, str, str | None, bool | None]] = []
    rps: dict[str, float] = {}
    for mode, sides in runs.items():
        loads_of = [side for side, _, _ in sides]
        rps[mode] = _median([r.rps for r in loads_of])
        missing = sum(m for _, _, m in sides)
        answered = sum(a for _, a, _ in sides)
        errors = sum(r.requests - r.statuses.get(200, 0) + r.errors for r in loads_of)
        requests_total = sum(r.requests for r in loads_of)
        results += [
            (f"{mode}: throughput (median of {len(sides)})", rps[mode], "req/s", None, None),
            (f"{mode}: p50 latency (median)", _median([r.p50_ms for r in loads_of]), "ms", None,
             None),
            (f"{mode}: p99 latency (median)", _median([r.p99_ms for r in loads_of]), "ms", None,
             None),
            (f"{mode}: non-200 responses + socket errors", float(errors), "count", "0",
             errors == 0),
            (f"{mode}: answered requests missing from prediction_logs", float(missing), "count",
             "0", missing == 0 and answered > 0),
            (f"{mode}: service CPU per 1k requests",
             1000 * sum(r.cpu_s["service"] for r in loads_of) / requests_total, "s", None, None),
            (f"{mode}: mean houses per model call",
             _median([r.metrics.get("bridgeai_model_rows_total", 0.0)
                      / max(r.metrics.get("bridgeai_model_calls_total", 0.0), 1.0)
                      for r in loads_of]), "rows", None, None),
        ]  # fmt: skip
    durable_vs_async = rps["durable"] / rps["async"]
    durable_vs_original = rps["durable"] / original.rps
    results += [
        ("original throughput (anchor)", original.rps, "req/s", None, None),
        ("original p50 latency (anchor)", original.p50_ms, "ms", None, None),
        ("original p99 latency (anchor)", original.p99_ms, "ms", None, None),
        ("original CPU per 1k requests (anchor)",
         1000 * original.cpu_s["original"] / max(original.requests, 1), "s", None, None),
        ("throughput ratio durable/async", durable_vs_async, "x", ">= 0.75",
         durable_vs_async >= 0.75),
        ("throughput ratio durable/original", durable_vs_original, "x", ">= 25",
         durable_vs_original >= 25),
        ("throughput ratio async/original", rps["async"] / original.rps, "x", None, None),
        ("service throughput, durable (issue 7's target)", rps["durable"], "req/s",
         f">= {TARGET_RPS:,.0f}", rps["durable"] >= TARGET_RPS),
    ]  # fmt: skip
    notes = [
        f"load generator: wrk (Debian 4.1), 1 thread, {args.connections} keep-alive connections, "
        f"{args.duration:.0f} s measured after a {args.warmup:.0f} s warm-up per run, one JSON "
        "body (the original's example house); a Lua hook records every response's status and id",
        f"{args.rounds} durable/async pairs, alternating which mode runs first; each run has its "
        "own database and spool; every id answered (warm-up included) is looked up in "
        "prediction_logs after the service's SIGTERM",
        f"PostgreSQL 15 with {pg_mode}, model server `bridgeai serve-model` (access log off), "
        f"all on this machine ({os.cpu_count()} CPUs); the spool on the same disk",
        "1-minute load average before each service run: "
        + ", ".join(f"{x:.2f}" for x in loads)
        + f"; before the original: {load_avg_original:.2f} (other work on the machine skews all)",
        "throughput per run: "
        + "; ".join(
            f"{mode} " + ", ".join(f"{side.rps:,.0f}" for side, _, _ in sides)
            for mode, sides in runs.items()
        )
        + " req/s",
        f"original: {warm_o.requests + original.requests} responses, {original_rows} rows; "
        f"statuses {original.statuses}",
        "the original's design re-created in bench/original_prediction_service.py (psycopg 3 "
        "instead of psycopg2, which is not installed here)",
    ]
    code = write_results(
        "prediction_service",
        [
            {"metric": m, "value": float(v), "unit": u, "target": t, "ok": ok}
            for m, v, u, t, ok in results
        ],
        notes,
    )
    width = max(len(r[0]) for r in results)
    print(f"\n{'metric':<{width}}  {'value':>12}  unit    target    ok")
    for metric, value, unit, target, ok in results:
        mark = {True: "yes", False: "NO", None: ""}[ok]
        print(f"{metric:<{width}}  {value:>12,.2f}  {unit:<6}  {target or '':<8}  {mark}")
    print()
    for note in notes:
        print(f"- {note}")
    shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
