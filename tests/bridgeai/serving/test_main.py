"""The model server's entrypoints, ``python -m bridgeai.serving`` (the image's) and
``bridgeai serve-model``: options, loading from a directory or the registry, start-up failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from bridgeai import procs, schema
from bridgeai.model.house_price import HousePriceModel
from bridgeai.serving import codec
from bridgeai.testing.models import tiny_model
from bridgeai.testing.synthetic import housing_frame
from tests.support.model_server import (
    MODEL_NAME,
    bridgeai_serve_model,
    model_server,
    python_m_serving,
    reference_prices,
    register,
    save_with_info,
)

pytestmark = pytest.mark.integration

ENTRYPOINTS = {
    "python -m bridgeai.serving": python_m_serving,
    "bridgeai serve-model": bridgeai_serve_model,
}


def _houses(rows: int, seed: int) -> list[dict[str, object]]:
    return housing_frame(rows, seed=seed).select(schema.FEATURES).to_dicts()


def _serve_and_fail(
    command: list[str], uri: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, "--model-uri", uri, "--port", "9"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def test_bridgeai_serve_model_serves_the_same_api(model: HousePriceModel, tmp_path: Path) -> None:
    model_dir = save_with_info(model, tmp_path / "model", version="3")
    houses = _houses(5, seed=2)
    with model_server(str(model_dir), tmp_path / "cli.log", command=bridgeai_serve_model()) as cli:
        meta = httpx.get(f"{cli.url}/v2/models/{MODEL_NAME}", timeout=30).json()
        response = httpx.post(cli.infer_url(), json=codec.build_request(houses), timeout=30)
    assert meta["versions"] == ["3"]
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        codec.prices_from(response.json()), reference_prices(model, houses), rtol=1e-12
    )


def test_a_repeated_option_takes_its_last_value_as_docker_run_image_port_does(
    model: HousePriceModel, tmp_path: Path
) -> None:
    # The image's entrypoint ends with --port 8080; `docker run IMAGE --port 9000` appends.
    model_dir = save_with_info(model, tmp_path / "model", version="1")
    command = [*python_m_serving(), "--port", "9", "--host", "0.0.0.0"]
    with model_server(str(model_dir), tmp_path / "server.log", command=command) as running:
        assert procs.http_ok(f"{running.url}/v2/health/ready")
        lines = [json.loads(line) for line in running.log_file.read_text().splitlines() if line]
    serving = next(line for line in lines if line["message"] == "serving")
    assert (serving["host"], serving["port"]) == ("127.0.0.1", running.port)


@pytest.mark.parametrize("entrypoint", list(ENTRYPOINTS))
def test_help_names_the_options(entrypoint: str) -> None:
    result = subprocess.run(
        [*ENTRYPOINTS[entrypoint](), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    for option in ("--model-uri", "--host", "--port", "--workers", "--grpc-port"):
        assert option in result.stdout


@pytest.mark.parametrize("entrypoint", list(ENTRYPOINTS))
def test_missing_model_directory_exits_with_a_message(entrypoint: str, tmp_path: Path) -> None:
    result = _serve_and_fail(ENTRYPOINTS[entrypoint](), str(tmp_path / "no-such-model"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_registered_model_serves_the_pyfunc_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from bridgeai.model.mlflow_client import fluent

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    model = tiny_model(housing_frame(400, seed=8), rounds=40)
    registered = register(model)
    houses = _houses(200, seed=13)
    with fluent(registered.tracking_uri):
        pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{registered.version}")
    frame = housing_frame(200, seed=13).select(schema.FEATURES).to_pandas()
    frame["area"] = frame["area"].astype(np.float64)  # the signature's type for area
    expected = np.asarray(pyfunc.predict(frame), dtype=np.float64).reshape(-1)
    np.testing.assert_allclose(expected, reference_prices(model, houses), rtol=1e-12)

    env = {"MLFLOW_TRACKING_URI": registered.tracking_uri}
    uri = f"models:/{MODEL_NAME}@champion"
    with model_server(uri, tmp_path / "server.log", env=env) as running:
        meta = httpx.get(f"{running.url}/v2/models/{MODEL_NAME}", timeout=30).json()
        response = httpx.post(running.infer_url(), json=codec.build_request(houses), timeout=60)
    assert meta["versions"] == [registered.version]
    assert meta["parameters"]["mlflow_run_id"] == registered.run_id
    assert response.json()["model_version"] == registered.version
    np.testing.assert_allclose(codec.prices_from(response.json()), expected, rtol=1e-12)

    # An alias nobody set: the server refuses to start, saying why (no traceback).
    failed = _serve_and_fail(python_m_serving(), f"models:/{MODEL_NAME}@no-such-alias", env)
    assert failed.returncode == 2
    assert "has no 'no-such-alias' alias yet" in failed.stderr
    assert "no-such-alias" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_serving_a_directory_imports_neither_prefect_nor_mlflow(
    model: HousePriceModel, tmp_path: Path
) -> None:
    model_dir = save_with_info(model, tmp_path / "model", version="1")
    script = (
        "import sys\n"
        "from bridgeai.serving.app import create_app, load_model\n"
        "from bridgeai.serving.settings import ModelServerSettings\n"
        f"s = ModelServerSettings(model_uri={str(model_dir)!r})\n"
        "app = create_app(s, load_model(s))\n"
        # (lightgbm itself imports pandas and sklearn when they are installed, as here.)
        "heavy = {'prefect', 'mlflow', 'blocks', 'flows', 'polars', 'fastapi', 'evidently', "
        "'typer'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"
