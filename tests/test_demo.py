"""`make demo` on a fresh clone: the whole pipeline in embedded mode, run twice.

This is the README's first command exactly as a new user runs it: a clean clone, `make demo`,
nothing configured but the data source (the original's CSV from ../shared/data instead of the
internet, which these machines cannot reach) and, where there is one (CI always has one), a Docker
engine and registry through the documented variables: DOCKER_HOST, BRIDGEAI_BASE_IMAGE and
BRIDGEAI_REGISTRY_*, so the image stage really builds and pushes.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.docker import docker_values
from tests.support.env import IN_CI, REPO_ROOT, require

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _make_demo(clone: Path, env: dict[str, str]) -> str:
    started = time.monotonic()
    result = subprocess.run(
        ["make", "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=1500
    )
    output = result.stdout + result.stderr
    print(f"make demo took {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, output[-6000:]
    return result.stdout


def _outcome(stdout: str, stage: str) -> str:
    found = re.search(rf"^  {stage}\s+(.+)$", stdout, flags=re.MULTILINE)
    assert found, f"no '{stage}' line in the demo's output:\n{stdout[-3000:]}"
    return found.group(1)


def test_make_demo_on_a_fresh_clone_then_again(tmp_path: Path, shared_data: Path) -> None:
    clone = tmp_path / "bridgeai"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "BRIDGEAI_", "MLFLOW_", "VIRTUAL_ENV", "DOCKER_"))
    }
    env.update(
        BRIDGEAI_DATA_SOURCE=str(shared_data / "HousingData.csv"),
        PREFECT_HOME=str(tmp_path / "prefect-home"),  # the user's own profile stays untouched
    )
    docker = docker_values()
    if IN_CI:
        require(docker is not None, "the CI Docker engine and registry (`.ci/docker.sh up`)")
    namespace = f"demo-{secrets.token_hex(4)}"
    if docker is not None:
        env.update(
            DOCKER_HOST=docker["DOCKER_HOST"],
            BRIDGEAI_BASE_IMAGE=docker["BRIDGEAI_TEST_BASE_IMAGE"],
            BRIDGEAI_REGISTRY_SERVER=docker["BRIDGEAI_TEST_REGISTRY"],
            BRIDGEAI_REGISTRY_NAMESPACE=namespace,
            BRIDGEAI_REGISTRY_USERNAME=docker["BRIDGEAI_TEST_REGISTRY_USER"],
            BRIDGEAI_REGISTRY_PASSWORD=docker["BRIDGEAI_TEST_REGISTRY_PASSWORD"],
        )

    first = _make_demo(clone, env)
    assert re.match(r"data-v1\.0\.0 \(new version, 348/88/109 rows\)", _outcome(first, "data"))
    model = _outcome(first, "model")
    assert model.startswith("version 1: test R2 0.6"), model
    r2, baseline = (float(x) for x in re.findall(r"R2 (-?[0-9.]+)", model))
    assert r2 > baseline + 0.3
    assert _outcome(first, "promotion").startswith("promoted to champion")
    image = _outcome(first, "image")
    if docker is None:
        assert image == "no Docker engine: skipped"
    else:
        repository = f"{docker['BRIDGEAI_TEST_REGISTRY']}/{namespace}/bridgeai-mlops"
        pushed = re.match(rf"{re.escape(repository)}@(sha256:[0-9a-f]{{64}})$", image)
        assert pushed, image
        # The digest is in the registry, under the model version's tag.
        from bridgeai.deploy.digests import resolve_digest

        found = resolve_digest(
            f"{repository}:1",
            username=docker["BRIDGEAI_TEST_REGISTRY_USER"],
            password=docker["BRIDGEAI_TEST_REGISTRY_PASSWORD"],
        )
        assert found == f"{repository}@{pushed.group(1)}"
    assert re.match(
        r"http://127\.0\.0\.1:\d+/v2/models/house_price_prediction_prod/infer$",
        _outcome(first, "endpoint"),
    )
    prediction = _outcome(first, "prediction")
    price = float(re.search(r"example house ([0-9,]+) GBP", prediction).group(1).replace(",", ""))
    assert 1_000_000 < price < 20_000_000, prediction
    assert "from v1" in prediction
    drift = _outcome(first, "drift")
    assert re.match(r"(no dataset drift|DRIFT DETECTED) \(data-v1\.0\.0 vs production", drift)
    report = _outcome(first, "report")
    assert report.startswith("file://")
    html = Path(report.removeprefix("file://"))
    assert html.is_file() and html.is_relative_to(clone / ".bridgeai"), report
    assert "<html" in html.read_text()[:2000].lower()

    second = _make_demo(clone, env)
    assert _outcome(second, "data").startswith("data-v1.0.0 (unchanged")
    assert _outcome(second, "model").startswith("version 2: ")
    assert _outcome(second, "promotion").startswith("not promoted")
    assert "was not promoted" in _outcome(second, "endpoint")
