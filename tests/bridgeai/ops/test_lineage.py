"""`bridgeai lineage` on a request the demo logged: every link, and JSON that points at real things.

One `bridgeai demo` (embedded mode, the original's CSV, no Docker engine) makes the chain: a data
version in the local data repository, a registered model in the embedded MLflow store, the
smoke requests in the prediction log, and the flow runs in the embedded Prefect database. Each
test then runs `bridgeai lineage` as a user would and checks what it printed against those
stores directly (git, MLflow, SQLite), not against the command's own code.

The same command against the local stack, with Prefect and MLflow UI links and an image digest
checked in a registry, is tested in tests/flows/test_loop.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.env import REPO_ROOT
from tests.support.stack import BIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "house_price_prediction_prod"


@dataclass
class Demo:
    home: Path
    env: dict[str, str]
    source: Path
    request_ids: list[str]


def _cli(demo: Demo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "bridgeai"), *args],
        env=demo.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Demo:
    from bridgeai.service.prediction_log import read_window

    root = tmp_path_factory.mktemp("lineage")
    home = root / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "BRIDGEAI_", "MLFLOW_", "DOCKER_"))
    }
    source = shared_data / "HousingData.csv"
    env.update(
        BRIDGEAI_HOME=str(home),
        BRIDGEAI_DATA_SOURCE=str(source),
        PREFECT_HOME=str(root / "prefect-home"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DOCKER_HOST="unix:///nonexistent/docker.sock",  # "no Docker engine: skipped"
    )
    ran = subprocess.run(
        [str(BIN / "bridgeai"), "demo"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-6000:]
    log = read_window(
        f"sqlite:///{home / 'service' / 'predictions.db'}",
        datetime.now(UTC) - timedelta(days=1),
        datetime.now(UTC) + timedelta(days=1),
    )
    assert log.height > 0, "the demo logged no prediction"
    return Demo(home, env, source, log["request_id"].to_list())


def _git(demo: Demo, *args: str) -> str:
    repo = demo.home / "data-repo"
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_the_chain_of_a_demo_request_prints_every_link(demo: Demo) -> None:
    request_id = demo.request_ids[-1]
    result = _cli(demo, "lineage", request_id)
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    for line in (
        f"request      {request_id}",
        "  logged     ",
        "  inputs     area=",
        "  prediction ",
        f"model        {NAME} v1 (champion since ",
        "  mlflow run ",
        "  metrics    ",
        "  gate       no champion yet",
        "image        none built",
        "deployment   local, a local model-server process",
        "data         data-v1.0.0 at commit ",
        "  dvc md5    train ",
        f"source       {demo.source}",
        "  checksum   ",
        "flow runs",
        "  data-ingestion",
        "  model-training",
        "  deploy-model",
    ):
        assert line in text, f"{line!r} missing from:\n{text}"
    assert "GBP" in text


def test_the_json_points_at_things_that_exist(demo: Demo) -> None:
    from mlflow import MlflowClient

    from bridgeai.service.prediction_log import read_window

    request_id = demo.request_ids[0]
    result = _cli(demo, "lineage", request_id, "--json")
    assert result.returncode == 0, result.stderr
    chain = json.loads(result.stdout)

    # The request is the logged one.
    logged = read_window(
        f"sqlite:///{demo.home / 'service' / 'predictions.db'}",
        datetime.now(UTC) - timedelta(days=1),
        datetime.now(UTC) + timedelta(days=1),
    ).filter(request_id=request_id)
    row = logged.row(0, named=True)
    assert chain["request"]["request_id"] == request_id
    assert chain["request"]["rows"][0]["prediction"] == pytest.approx(row["prediction"])
    assert chain["request"]["rows"][0]["inputs"]["area"] == pytest.approx(row["area"])
    assert chain["request"]["model_version"] == row["model_version"] == chain["model"]["version"]

    # The model version and its run are in the MLflow store the demo used.
    client = MlflowClient(f"sqlite:///{demo.home / 'mlflow' / 'mlflow.db'}")
    version = client.get_model_version(NAME, chain["model"]["version"])
    assert version.run_id == chain["model"]["run_id"]
    assert "champion" in chain["model"]["aliases"]
    assert chain["model"]["metrics"]["test_r2"] == pytest.approx(
        client.get_run(version.run_id).data.metrics["test_r2"]
    )

    # The data version is a tag of the data repository, at that commit, with those md5s.
    data = chain["data"]
    assert _git(demo, "rev-parse", f"{data['tag']}^{{commit}}") == data["commit"]
    pointer = _git(demo, "show", f"{data['tag']}:data/train.parquet.dvc")
    assert data["md5"]["train"] in pointer
    assert data["source"] == str(demo.source)
    assert data["tag_exists"] and data["mismatch"] == []
    assert version.tags["data_version"] == data["tag"]

    # Every flow run is in the embedded Prefect database (no server: no UI links).
    runs = {r["step"]: r for r in chain["flow_runs"]}
    assert {"data-ingestion", "model-training", "deploy-model"} <= set(runs)
    assert runs["model-training"]["flow_run_id"] == version.tags["prefect_flow_run_id"]
    database = Path(demo.env["PREFECT_HOME"]) / "prefect.db"
    with sqlite3.connect(database) as connection:
        stored = {
            r[0].replace("-", "") for r in connection.execute("SELECT id FROM flow_run").fetchall()
        }
    for run in runs.values():
        assert run["flow_run_id"].replace("-", "") in stored, run
        assert run["url"] is None
    assert chain["image"] is None


def test_a_model_version_has_the_chain_without_a_request(demo: Demo) -> None:
    result = _cli(demo, "lineage", "--model-version", "1", "--json")
    assert result.returncode == 0, result.stderr
    chain = json.loads(result.stdout)
    assert chain["request"] is None
    assert chain["model"]["version"] == "1" and chain["data"]["tag"] == "data-v1.0.0"


def test_a_request_that_does_not_exist_is_a_clear_error(demo: Demo) -> None:
    result = _cli(demo, "lineage", "no-such-request")
    assert result.returncode == 1
    assert "no request 'no-such-request' in the prediction log at sqlite:///" in result.stderr
    assert result.stdout == ""
    missing_version = _cli(demo, "lineage", "--model-version", "99")
    assert missing_version.returncode == 1
    assert f"{NAME} v99 is not in the registry" in missing_version.stderr


def test_one_of_request_id_and_model_version_is_required(demo: Demo) -> None:
    for args in ((), ("abc", "--model-version", "1")):
        result = _cli(demo, "lineage", *args)
        assert result.returncode == 1
        assert "give a REQUEST_ID or --model-version N" in result.stderr
