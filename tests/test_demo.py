"""``bridgeai demo --serve``, three times in a row: the champion is served every time.

The first run promotes version 1; the next two register versions 2 and 3, which are not
promoted. Whatever the run decided, ``--serve`` leaves the champion served by the model server
and the prediction service, and prints URLs that answer. The other path, ``--serve`` after a run
that stopped every server (``make demo``), is the README's: ``tests/test_readme.py`` runs
``make demo`` on a fresh clone and then ``bridgeai demo --serve``.

Where there is a Docker engine and registry (CI always has them) they are passed through the
documented variables, DOCKER_HOST, BRIDGEAI_BASE_IMAGE and BRIDGEAI_REGISTRY_*, so the first run's
image stage really builds and pushes (the README's run, in a private network namespace, cannot
reach the registry).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import urllib.request
from pathlib import Path

import pytest

from bridgeai import procs
from tests.support.docker import docker_values
from tests.support.env import IN_CI, require
from tests.support.stack import BIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOUSE = {
    "mainroad": "yes", "guestroom": "no", "basement": "yes", "hotwaterheating": "no",
    "airconditioning": "yes", "prefarea": "no", "furnishingstatus": "furnished",
    "area": 1200, "bedrooms": 3, "bathrooms": 2, "stories": 2, "parking": 1,
}  # fmt: skip


def _demo(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(BIN / "bridgeai"), "demo", *args], env=env, capture_output=True, text=True,
        timeout=1500,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    errors = [line for line in output.splitlines() if re.search(r"\bERROR\b", line)]
    assert not errors, errors
    return result.stdout


def _line(stdout: str, label: str) -> str:
    found = re.search(rf"^{label}\s+(\S+)(.*)$", stdout, flags=re.MULTILINE)
    assert found, f"no '{label}' line in:\n{stdout[-3000:]}"
    return found.group(1) + found.group(2)


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return response.status, json.loads(response.read())


def _check_image(stdout: str, docker: dict[str, str] | None, namespace: str) -> None:
    """The promoting run's image line: skipped without an engine, else the pushed digest."""
    image = _line(stdout, "  image")
    if docker is None:
        assert image == "no Docker engine: skipped", image
        return
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


def _remove_images(docker: dict[str, str], namespace: str) -> None:
    """The engine is shared: the image the first run built goes (the registry keeps its copy
    under this run's own namespace)."""
    import docker as docker_sdk

    client = docker_sdk.DockerClient(base_url=docker["DOCKER_HOST"])
    try:
        repository = f"{docker['BRIDGEAI_TEST_REGISTRY']}/{namespace}/bridgeai-mlops"
        for image in client.images.list(name=repository):
            client.images.remove(image.id, force=True)
    finally:
        client.close()


def test_demo_serve_three_times_in_a_row_serves_the_champion(
    tmp_path: Path, shared_data: Path
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_API", "BRIDGEAI_", "MLFLOW_", "DOCKER_"))
    }
    env.update(
        BRIDGEAI_HOME=str(tmp_path / "home"),
        BRIDGEAI_DATA_SOURCE=str(shared_data / "HousingData.csv"),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
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
    ports: list[int] = []
    try:
        for version in ("1", "2", "3"):
            stdout = _demo(env, "--serve")
            assert re.search(rf"^  model\s+version {version}: ", stdout, re.MULTILINE), stdout
            decision = "promoted to champion" if version == "1" else "not promoted"
            assert re.search(rf"^  promotion\s+{decision}", stdout, re.MULTILINE), stdout
            if version == "1":
                _check_image(stdout, docker, namespace)
            server = _line(stdout, "model server")
            assert re.match(
                r"http://127\.0\.0\.1:\d+/v2/models/house_price_prediction_prod/infer\s+"
                r"\(champion, version 1\)$",
                server,
            ), server
            predict = _line(stdout, "prediction service")
            assert re.match(r"http://127\.0\.0\.1:\d+/predict$", predict), predict
            assert _line(stdout, "Swagger UI") == predict.replace("/predict", "/swagger")
            status, body = _post(predict, HOUSE)
            assert status == 200 and body["status"] == 200, body
            assert body["model_version"] == "1", f"run of version {version}: {body}"
            assert body["response"]["unit"] == "GBP(£)" and body["response"]["prediction"] > 0
            ports += [int(server.split(":")[2].split("/")[0]), int(predict.split(":")[2][:-8])]
    finally:
        down = subprocess.run(
            [str(BIN / "bridgeai"), "down"], env=env, capture_output=True, text=True, timeout=120
        )
        if docker is not None:
            _remove_images(docker, namespace)
    assert down.returncode == 0, down.stderr
    assert "prediction-service: stopped" in down.stdout and "model-server: stopped" in down.stdout
    assert not [p for p in set(ports) if not procs.port_is_free(p)], down.stdout
