"""``--workers N``: one port, N worker processes that each load the model once, replaced when
they die, serving REST and gRPC alike."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from bridgeai import procs, schema
from bridgeai.model.house_price import HousePriceModel
from bridgeai.serving import codec
from tests.support.model_server import (
    MODEL_NAME,
    bridgeai_serve_model,
    model_server,
    reference_prices,
    save_with_info,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOUSE = dict(schema.EXAMPLE_HOUSE)


def _workers(server: Any) -> list[psutil.Process]:
    """The supervisor's worker processes (its children that serve, not multiprocessing's
    resource tracker)."""
    workers = []
    for child in psutil.Process(server.pid).children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue  # killed, not yet reaped by the supervisor
            if "resource_tracker" not in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.Error:  # gone while we looked
            continue
    return workers


def test_two_workers_share_one_port_each_with_the_model(
    model: HousePriceModel, tmp_path: Path
) -> None:
    model_dir = save_with_info(model, tmp_path / "model", version="3")
    grpc_port = procs.free_port()
    log = tmp_path / "server.log"
    command = [*bridgeai_serve_model()]
    env = {"BRIDGEAI_MODEL_SERVER_ACCESS_LOG": "false"}
    with model_server(str(model_dir), log, env=env, command=command) as server:
        server.stop()  # restart it with the options under test
        server.command = [*command, "--workers", "2", "--grpc-port", str(grpc_port)]
        server.start()
        workers = _workers(server)
        assert len(workers) == 2
        # The supervisor checks the model once, then each worker loads it once and serves
        # gRPC (ready as soon as the first worker is; the second may still be starting).
        procs.wait_until(
            lambda: log.read_text().count('"message":"serving gRPC"') == 2,
            timeout=120,
            service="the second worker",
        )
        assert log.read_text().count('"message":"model loaded"') == 4  # 1 before the restart
        assert '"logger":"uvicorn.access"' not in log.read_text()
        houses = [HOUSE, {**HOUSE, "area": 5000, "airconditioning": "no"}]
        expected = reference_prices(model, houses).tolist()
        body = codec.build_request(houses)
        for _ in range(10):
            with httpx.Client(base_url=server.url, timeout=30) as http:
                answer = http.post(f"/v2/models/{MODEL_NAME}/infer", json=body)
            assert answer.json()["outputs"][0]["data"] == pytest.approx(expected, rel=1e-12)

        import numpy as np
        import tritonclient.grpc as triton

        with triton.InferenceServerClient(f"127.0.0.1:{grpc_port}") as client:
            inputs = []
            for name in schema.FEATURES:
                datatype = schema.V2_DATATYPE[name]
                kind = {"BYTES": np.object_, "FP32": np.float32, "INT64": np.int64}[datatype]
                tensor = triton.InferInput(name, [2], datatype)
                tensor.set_data_from_numpy(np.array([h[name] for h in houses], dtype=kind))
                inputs.append(tensor)
            prices = client.infer(MODEL_NAME, inputs).as_numpy("price")
        assert prices.tolist() == pytest.approx(expected, rel=1e-12)

        # A worker killed outright is replaced; the server keeps answering meanwhile.
        victim = workers[0].pid
        os.kill(victim, signal.SIGKILL)
        procs.wait_until(
            lambda: len(_workers(server)) == 2 and victim not in [w.pid for w in _workers(server)],
            timeout=120,
            service="the replacement worker",
        )
        procs.wait_until(
            lambda: procs.http_ok(f"{server.url}/v2/health/ready"), timeout=120, service="ready"
        )
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answer = http.post(f"/v2/models/{MODEL_NAME}/infer", json=body)
            assert answer.status_code == 200


def test_a_model_that_cannot_load_exits_once_with_a_message(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [
            *bridgeai_serve_model(),
            "--model-uri",
            str(tmp_path / "missing"),
            "--port",
            str(procs.free_port()),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
