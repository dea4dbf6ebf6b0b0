"""The image library: build context, engine errors, and the Docker SDK's in-stream errors."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bridgeai import procs
from bridgeai.deploy import image
from bridgeai.model.errors import BridgeAIError
from bridgeai.model.source import ModelInfo
from bridgeai.testing.models import tiny_model
from tests.support.docker import DockerEnv


@pytest.mark.parametrize(
    "docker_host", ["unix:///nonexistent/bridgeai/docker.sock", "tcp://127.0.0.1:{port}"]
)
def test_no_engine_is_one_sentence_saying_how_to_point_at_one(
    monkeypatch: pytest.MonkeyPatch, docker_host: str
) -> None:
    docker_host = docker_host.format(port=procs.free_port())
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    with pytest.raises(image.DockerUnavailableError) as caught:
        image.connect(timeout=5)
    message = str(caught.value)
    assert f"no Docker engine is reachable at {docker_host}" in message
    assert "set DOCKER_HOST" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert isinstance(caught.value, BridgeAIError) and not caught.value.transient


def test_image_ref_prefers_the_digest() -> None:
    fields = dict(
        repository="127.0.0.1:5000/team/bridgeai-mlops",
        tags=["3", "latest"],
        image_id="sha256:abc",
        size_bytes=1,
        model_name="house_price_prediction_prod",
    )
    assert image.ImageRef(**fields).reference == "127.0.0.1:5000/team/bridgeai-mlops:3"
    pushed = image.ImageRef(**fields, digest="sha256:" + "0" * 64)
    assert pushed.reference == "127.0.0.1:5000/team/bridgeai-mlops@sha256:" + "0" * 64
    assert pushed.model_dump()["reference"] == pushed.reference


def test_context_holds_dockerfile_model_identity_and_wheels(tmp_path: Path) -> None:
    model_dir = tiny_model().save(tmp_path / "model")
    info = ModelInfo(version="5", run_id="run-5", source="models:/house_price_prediction_prod/5")
    context = image.write_context(tmp_path / "context", model_dir, info, wheels="environment")
    dockerfile = (context / "Dockerfile").read_text()
    assert dockerfile == (image.TEMPLATE_DIR / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile
    entrypoint = '"-m", "bridgeai.serving", "--model-uri", "/models/house_price_prediction_prod"'
    assert entrypoint in dockerfile
    assert (
        ModelInfo.model_validate_json((context / "model" / "model-info.json").read_text()) == info
    )
    assert (context / "model" / "model.txt").is_file()
    wheels = sorted(p.name.split("-")[0] for p in (context / "wheels").glob("*.whl"))
    assert {"bridgeai", "lightgbm", "numpy", "uvicorn", "starlette", "orjson"} <= set(wheels)
    assert {"mlflow", "prefect", "typer", "fastapi"}.isdisjoint(wheels)
    args = image.build_args(info, "python:3.11-slim")
    assert (args["MODEL_VERSION"], args["MLFLOW_RUN_ID"]) == ("5", "run-5")


def test_missing_template_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(image.ImageError, match=r"Dockerfile template .* is missing"):
        image.write_context(tmp_path / "c", tmp_path, ModelInfo(), template_dir=tmp_path / "no")


@pytest.mark.docker
@pytest.mark.integration
def test_failed_build_step_carries_the_builders_message(
    docker_env: DockerEnv,
    tmp_path: Path,
) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {docker_env.base_image}\nRUN echo about-to-fail && exit 3\n"
    )
    repository = f"bridgeai-test/broken-{uuid.uuid4().hex[:8]}"
    with pytest.raises(image.ImageBuildError) as caught:
        image.build(docker_env.client, tmp_path, repository, ["1"], {})
    message = str(caught.value)
    assert "returned a non-zero code: 3" in message
    assert "about-to-fail" in message  # the builder's own output, for context


@pytest.mark.docker
@pytest.mark.integration
def test_push_to_an_unreachable_registry_carries_its_error(docker_env: DockerEnv) -> None:
    repository = f"127.0.0.1:{procs.free_port()}/bridgeai-test/unreachable"
    docker_env.client.images.get(docker_env.base_image).tag(repository, tag="t")
    try:
        with pytest.raises(image.ImagePushError) as caught:
            image.push(docker_env.client, repository, "t", None)
    finally:
        image.remove(docker_env.client, [f"{repository}:t"])
    assert f"push of {repository}:t failed: the registry said:" in str(caught.value)
    assert "connection refused" in str(caught.value)


@pytest.mark.docker
@pytest.mark.integration
def test_missing_base_image_is_a_clear_error(docker_env: DockerEnv) -> None:
    with pytest.raises(image.ImageBuildError, match="cannot use base image 'bridgeai-test/absent"):
        image.probe_base_image(docker_env.client, "bridgeai-test/absent:1")
    assert image.probe_base_image(docker_env.client, docker_env.base_image)[0] == "3.11"
