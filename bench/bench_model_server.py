"""Model server under load: BridgeAI's OIP v2 server vs ``mlflow models serve`` on one model.

Targets (issue 5), on this 2-core machine with one server worker:

* single-row ``POST /v2/models/.../infer`` at concurrency 32: >= 2,000 requests/s, p99 <= 25 ms;
* one 100,000-row request: within 1.25x of the in-process floor, i.e. LightGBM's ``predict`` on
  the same (already encoded) rows with the same number of threads as the server uses for that
  batch (``BRIDGEAI_MODEL_SERVER_BATCH_THREADS``, default 1), measured here in the same run.

The anchor is ``mlflow models serve`` (the pyfunc behind uvicorn, one worker, ``--env-manager
local``) on the same registered model, under the same load; the table prints both and the ratio.

The model is what training produces, in size: LightGBM defaults (100 trees, 31 leaves) trained
on 5,000 synthetic houses; both servers load it from the same MLflow registry (SQLite, in a
temporary folder). Load generator: ``wrk`` (Debian's wrk 4.1, C, HdrHistogram latencies), one
thread, 32 keep-alive connections, bodies from a Lua script; a Python client at 2,000 requests/s
on 2 cores would be the bottleneck itself. The 100k-row request is sent with ``http.client`` from
a body serialised beforehand, and its predictions are checked against the model.

    uv run python bench/bench_model_server.py [--duration 20] [--connections 32]

Needs ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from _common import load_parser, write_results, wrk_missing

from bridgeai import procs, schema
from bridgeai.serving import codec as v2

MODEL_NAME = "house_price_prediction_prod"
TARGET_RPS = 2000.0
TARGET_P99_MS = 25.0
TARGET_BATCH_RATIO = 1.25
BATCH_ROWS = 100_000

LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[BODY]==]
function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# -- the model ----------------------------------------------------------------------------------
def train_model() -> Any:
    """LightGBM's defaults (100 trees, 31 leaves) on 5,000 synthetic houses, one thread."""
    import lightgbm

    from bridgeai.model.house_price import HousePriceModel
    from bridgeai.testing.synthetic import housing_frame

    frame = housing_frame(5000, seed=1)
    medians = {c: float(frame[c].median()) for c in schema.NUMERIC}  # type: ignore[arg-type]
    untrained = HousePriceModel(booster=None, medians=medians)
    matrix = untrained.encode({c: frame[c].to_list() for c in schema.FEATURES})
    target = np.log1p(frame[schema.TARGET].to_numpy().astype(np.float64))
    params = {"objective": "regression", "num_threads": 1, "seed": 42, "verbose": -1}
    booster = lightgbm.train(params, lightgbm.Dataset(matrix, target), num_boost_round=100)
    return HousePriceModel(booster=booster, medians=medians)


def register(model: Any, root: Path) -> tuple[str, str]:
    """Log and register the model in a SQLite MLflow store; return (tracking URI, version)."""
    import mlflow
    from mlflow import MlflowClient

    from bridgeai.model.pyfunc import log_model

    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    experiment = client.create_experiment("bench", artifact_location=(root / "art").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = log_model(model, registered_model_name=MODEL_NAME)
    return uri, str(info.registered_model_version)


# -- servers ------------------------------------------------------------------------------------
def start(command: list[str], env: dict[str, str], ready: str, log: Path, name: str) -> Any:
    started = time.monotonic()
    process = procs.start_server(
        command, log_file=log, env=env, service=name, ready=ready, timeout=300
    )
    return process, time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    """CPU time of a process group (the server and any workers it forked)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid:  # process group id
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wrk(url: str, body: bytes, seconds: float, connections: int, work: Path) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    script = work / "post.lua"
    script.write_text(LUA.replace("BODY", body.decode()))
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"WRKJSON (\{.*\})", out)
    if not match:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    doc = json.loads(match.group(1))
    doc["rps"] = doc["requests"] / (doc["duration_us"] / 1e6)
    doc["errors"] = sum(
        doc[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return doc


def load(url: str, body: bytes, args: argparse.Namespace, pid: int, work: Path) -> dict[str, float]:
    wrk(url, body, args.warmup, args.connections, work / "warmup")
    cpu = cpu_seconds(pid)
    result = wrk(url, body, args.duration, args.connections, work / "run")
    result["cpu_ms_per_1k"] = (cpu_seconds(pid) - cpu) * 1000 / max(result["requests"], 1) * 1000
    return result


def post_timed(port: int, path: str, body: bytes) -> tuple[float, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"POST {path} -> {response.status}: {payload[:300]!r}")
    return elapsed, payload


# -- main ---------------------------------------------------------------------------------------
def main() -> int:
    parser = load_parser(__doc__.split("\n")[0])
    parser.add_argument("--batch-repeats", type=int, default=5)
    parser.add_argument("--skip-mlflow", action="store_true", help="only BridgeAI's server")
    args = parser.parse_args()
    if wrk_missing():
        return 2

    from bridgeai.testing.synthetic import housing_frame

    work = Path(tempfile.mkdtemp(prefix="bench-model-server-"))
    print("training the benchmark model (100 trees, 31 leaves)...", flush=True)
    model = train_model()
    tracking_uri, version = register(model, work)
    model_uri = f"models:/{MODEL_NAME}/{version}"
    env = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "BRIDGEAI_HOME": str(work / "home"),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        # mlflow models serve runs `uvicorn` through bash: this environment's bin must be on PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    batch_threads = int(os.environ.get("BRIDGEAI_MODEL_SERVER_BATCH_THREADS", "1"))

    house = {k: v.upper() if isinstance(v, str) else v for k, v in schema.EXAMPLE_HOUSE.items()}
    v2_single = orjson.dumps(v2.build_request([house]))
    frame = housing_frame(BATCH_ROWS, seed=2).select(schema.FEATURES)
    houses = frame.to_dicts()
    v2_batch = orjson.dumps(v2.build_request(houses))
    columns = {f: frame[f].to_list() for f in schema.FEATURES}

    # The in-process floor: LightGBM alone on the encoded rows, the server's thread count. It is
    # measured interleaved with the server's requests (below), so both see the same machine.
    matrix = model.encode(columns)
    expected = model.predict_matrix(matrix, num_threads=batch_threads)

    def floor_once() -> float:
        started = time.perf_counter()
        model.booster.predict(matrix, num_threads=batch_threads)
        return time.perf_counter() - started

    results: dict[str, dict[str, float]] = {}
    processes = []
    try:
        # -- BridgeAI's server
        port = procs.free_port()
        command = [
            str(Path(sys.executable).with_name("bridgeai")), "serve-model",
            "--model-uri", model_uri, "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        ready = f"http://127.0.0.1:{port}/v2/health/ready"
        process, startup = start(command, env, ready, work / "bridgeai.log", "bridgeai server")
        processes.append(process)
        url = f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer"
        print(f"bridgeai: ready in {startup:.1f} s; single-row load...", flush=True)
        ours = load(url, v2_single, args, process.pid, work / "wrk-bridgeai")
        ours["startup_s"] = startup
        times, floors = [], []
        for _ in range(args.batch_repeats):
            floors.append(floor_once())
            elapsed, payload = post_timed(port, f"/v2/models/{MODEL_NAME}/infer", v2_batch)
            times.append(elapsed)
        floor = statistics.median(floors)
        print(
            f"floor: LightGBM predicts {BATCH_ROWS:,} rows in {floor * 1000:.0f} ms "
            f"({BATCH_ROWS / floor:,.0f} rows/s, {batch_threads} thread)",
            flush=True,
        )
        prices = np.asarray(v2.prices_from(orjson.loads(payload)))
        np.testing.assert_allclose(prices, expected, rtol=1e-12)  # the answers, not just timing
        ours["batch_s"] = statistics.median(times)
        results["bridgeai"] = ours
        procs.stop_process(process.pid)

        # -- mlflow models serve (the anchor), same model from the same registry
        if not args.skip_mlflow:
            port = procs.free_port()
            mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
            command = [
                mlflow_bin, "models", "serve", "-m", model_uri, "-h", "127.0.0.1",
                "-p", str(port), "-w", "1", "--env-manager", "local",
            ]  # fmt: skip
            ready = f"http://127.0.0.1:{port}/ping"
            process, startup = start(command, env, ready, work / "mlflow.log", "mlflow serve")
            processes.append(process)
            print(f"mlflow: ready in {startup:.1f} s; single-row load...", flush=True)
            row = [house[f] for f in schema.FEATURES]
            split_single = orjson.dumps(
                {"dataframe_split": {"columns": list(schema.FEATURES), "data": [row]}}
            )
            url = f"http://127.0.0.1:{port}/invocations"
            theirs = load(url, split_single, args, process.pid, work / "wrk-mlflow")
            theirs["startup_s"] = startup
            batch_body = orjson.dumps(
                {"dataframe_split": {"columns": list(schema.FEATURES), "data": frame.rows()}}
            )
            elapsed, payload = post_timed(port, "/invocations", batch_body)
            mlflow_prices = np.asarray(orjson.loads(payload)["predictions"], dtype=np.float64)
            np.testing.assert_allclose(mlflow_prices.reshape(-1), expected, rtol=1e-9)
            theirs["batch_s"] = elapsed
            results["mlflow"] = theirs
            procs.stop_process(process.pid)
    finally:
        for process in processes:
            procs.stop_process(process.pid)

    return report(results, floor, batch_threads, args, work)


def report(
    results: dict[str, dict[str, float]],
    floor: float,
    threads: int,
    args: argparse.Namespace,
    work: Path,
) -> int:
    ours = results["bridgeai"]
    theirs = results.get("mlflow")
    ratio = ours["batch_s"] / floor
    rows: list[dict[str, Any]] = [
        dict(metric="single-row throughput (c=32)", value=ours["rps"], unit="req/s",
             target=">= 2,000", ok=ours["rps"] >= TARGET_RPS),
        dict(metric="single-row p50 latency", value=ours["p50_us"] / 1000, unit="ms",
             target=None, ok=None),
        dict(metric="single-row p99 latency", value=ours["p99_us"] / 1000, unit="ms",
             target="<= 25", ok=ours["p99_us"] / 1000 <= TARGET_P99_MS),
        dict(metric="single-row errors (non-2xx, socket, timeouts)", value=float(ours["errors"]),
             unit="count", target="0", ok=ours["errors"] == 0),
        dict(metric="server CPU per 1k single-row requests", value=ours["cpu_ms_per_1k"],
             unit="ms", target=None, ok=None),
        dict(metric=f"100k-row request ({threads} LightGBM thread)", value=ours["batch_s"] * 1000,
             unit="ms", target=None, ok=None),
        dict(metric="in-process floor: LightGBM predict, same rows and threads",
             value=floor * 1000, unit="ms", target=None, ok=None),
        dict(metric="100k-row request / floor", value=ratio, unit="x", target="<= 1.25",
             ok=ratio <= TARGET_BATCH_RATIO),
        dict(metric="server start-up to ready (models:/ URI, downloads the model)",
             value=ours["startup_s"], unit="s", target=None, ok=None),
    ]  # fmt: skip
    if theirs:
        rows += [
            dict(metric="mlflow models serve: single-row throughput (c=32)", value=theirs["rps"],
                 unit="req/s", target=None, ok=None),
            dict(metric="mlflow models serve: p50 latency", value=theirs["p50_us"] / 1000,
                 unit="ms", target=None, ok=None),
            dict(metric="mlflow models serve: p99 latency", value=theirs["p99_us"] / 1000,
                 unit="ms", target=None, ok=None),
            dict(metric="mlflow models serve: errors", value=float(theirs["errors"]),
                 unit="count", target=None, ok=None),
            dict(metric="mlflow models serve: CPU per 1k requests", value=theirs["cpu_ms_per_1k"],
                 unit="ms", target=None, ok=None),
            dict(metric="mlflow models serve: 100k-row request", value=theirs["batch_s"] * 1000,
                 unit="ms", target=None, ok=None),
            dict(metric="throughput ratio bridgeai / mlflow", value=ours["rps"] / theirs["rps"],
                 unit="x", target=None, ok=None),
            dict(metric="p50 ratio mlflow / bridgeai", value=theirs["p50_us"] / ours["p50_us"],
                 unit="x", target=None, ok=None),
            dict(metric="p99 ratio mlflow / bridgeai", value=theirs["p99_us"] / ours["p99_us"],
                 unit="x", target=None, ok=None),
            dict(metric="100k-row ratio mlflow / bridgeai",
                 value=theirs["batch_s"] / ours["batch_s"], unit="x", target=None, ok=None),
        ]  # fmt: skip
    load_avg = os.getloadavg()
    notes = [
        f"load generator: wrk (Debian 4.1), 1 thread, {args.connections} keep-alive connections, "
        f"{args.duration:.0f} s after a {args.warmup:.0f} s warm-up; 100k-row request: "
        f"http.client, median of {args.batch_repeats}, body serialised beforehand, each "
        "request right after one in-process floor measurement (median of those is the floor)",
        "model: LightGBM defaults (100 trees, 31 leaves) on 5,000 synthetic houses, served by "
        "both from the same MLflow registry version",
        "single-row request: the original client's encoding (upper-case BYTES, FP32, INT64)",
        "both servers: one worker; bridgeai with its defaults (JSON access log on)",
        f"machine: {os.cpu_count()} CPUs, load average {load_avg[0]:.1f} at the end of the run "
        "(other processes on the machine lower every figure)",
        f"logs and wrk scripts: {work}",
    ]
    print()
    print(f"{'metric':<66} {'value':>12}  {'unit':<6} {'target':<9} ok")
    for row in rows:
        ok = {True: "yes", False: "NO", None: ""}[row["ok"]]
        print(f"{row['metric']:<66} {row['value']:>12,.2f}  {row['unit']:<6} "
              f"{row['target'] or '':<9} {ok}")  # fmt: skip
    for note in notes:
        print(f"- {note}")
    write_results("model_server", rows, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
