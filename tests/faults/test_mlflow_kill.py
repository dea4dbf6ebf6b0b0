"""The MLflow server SIGKILLed during training, the moment the new model version is registered.

What must hold: the flow run fails with a message that names MLflow; no half-registered version
holds an alias; ``champion`` is unchanged; the next run, once MLflow is back, succeeds.
"""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

import flows.train as train_flow
from blocks import DataRepository, MLflowServer, ObjectStorage
from bridgeai import procs
from bridgeai.testing.synthetic import housing_frame
from bridgeai.training.fit import TrainingParams
from flows.ingest import data_ingestion
from flows.train import model_training

pytestmark = [
    pytest.mark.usefixtures("prefect_harness"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dvc.*"),
    pytest.mark.slow,
]


class MLflowServerProcess:
    """``mlflow server`` (SQLite backend, served local artifacts) that can be killed and restarted
    on the same port and store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = root / "mlflow.db"
        self.process = None

    def start(self) -> None:
        command = [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{self.database}",
            "--artifacts-destination", (self.root / "artifacts").as_uri(),
            "--serve-artifacts", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1",
        ]  # fmt: skip
        self.process = procs.start_server(
            command,
            log_file=self.root / "mlflow.log",
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            cwd=self.root,
            service="mlflow server",
            ready=f"{self.url}/health",
            timeout=240,
        )

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)  # the server and its workers
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None:
            procs.stop_process(self.process.pid)

    def count(self, sql: str, name: str) -> int:
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute(sql, (name,)).fetchone()[0])


@pytest.fixture
def mlflow_process(tmp_path: Path):
    server = MLflowServerProcess(tmp_path / "mlflow")
    server.root.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's client gives up at once and the flow's retries keep their count, not their
    seconds of back-off: the test waits for the failure, not for the retry schedule."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    for name in ("load_data_version", "log_mlflow_run", "register_and_gate"):
        task = getattr(train_flow, name)
        monkeypatch.setattr(train_flow, name, task.with_options(retry_delay_seconds=0.1))


#: When to kill: the new version was created (before any alias or tag can point at it), or the
#: gate's first tag was written on it (mid-way through recording the decision).
KILL_POINTS = {
    "version created": "SELECT count(*) FROM model_versions WHERE name = ? AND version > 1",
    "gate tags being written": "SELECT count(*) FROM model_version_tags "
    "WHERE name = ? AND version > 1 AND key LIKE 'gate_%'",
}


def _kill_when(server: MLflowServerProcess, sql: str, name: str):
    def watch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if server.count(sql, name) > 0:
                    server.kill()
                    return
            except sqlite3.Error:
                pass
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_mlflow_killed_while_registering_fails_the_run_and_keeps_the_champion(
    tmp_path: Path, mlflow_process: MLflowServerProcess, fail_fast: None, kill_point: str
) -> None:
    suffix = secrets.token_hex(4)
    names = {
        "storage_block": f"fault-storage-{suffix}",
        "repository_block": f"fault-repo-{suffix}",
        "mlflow_block": f"fault-mlflow-{suffix}",
    }
    ObjectStorage(local_root=str(tmp_path / "storage")).save(names["storage_block"])
    DataRepository(workdir=str(tmp_path / "data-repo")).save(names["repository_block"])
    MLflowServer(tracking_uri=mlflow_process.url).save(names["mlflow_block"])
    model = f"house_price_fault_{suffix}"
    csv = tmp_path / "houses.csv"
    housing_frame(300, seed=23).write_csv(csv)
    data = data_ingestion(
        source=str(csv),
        storage_block=names["storage_block"],
        repository_block=names["repository_block"],
    )
    weak = model_training(
        data_version=data.tag,
        params=TrainingParams(linear_baseline=False, num_boost_round=2),
        registered_model=model,
        **names,
    )
    assert weak.promoted and weak.model_version == "1"

    watcher = _kill_when(mlflow_process, KILL_POINTS[kill_point], model)
    state = model_training(
        data_version=data.tag, registered_model=model, return_state=True, **names
    )
    watcher.join(60)
    assert mlflow_process.process.poll() is not None, "MLflow was not killed during the run"
    assert state.is_failed()
    with pytest.raises(Exception) as caught:
        state.result()
    assert "mlflow" in str(caught.value).lower() and mlflow_process.url.split("//")[1] in str(
        caught.value
    )

    mlflow_process.start()  # same port, same store
    client = MLflowServer(tracking_uri=mlflow_process.url).client()
    versions = client.search_model_versions(f"name = '{model}'")
    assert sorted(v.version for v in versions) == ["1", "2"]  # v2 half-registered...
    half = next(v for v in versions if v.version == "2")
    complete = {"gate_decision", "gate_alias", "gate_reason", "gate_score"} <= set(half.tags)
    assert not complete
    assert not half.aliases, f"half-registered v2 holds {half.aliases}"  # ...and holds no alias
    assert str(client.get_model_version_by_alias(model, "champion").version) == "1"

    better = model_training(data_version=data.tag, registered_model=model, **names)
    assert better.promoted and better.model_version == "3"
    assert str(client.get_model_version_by_alias(model, "champion").version) == "3"
