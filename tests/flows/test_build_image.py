"""Flow ``build-model-image`` against a real Docker engine and an htpasswd-protected registry.

The Docker test walks the issue's sequence: build -> push with a wrong password fails with the
registry's message -> push -> remove the local image -> pull by digest -> run it with host
networking -> v2 infer answers what the registered model predicts.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from bridgeai import procs, schema
from bridgeai.deploy import image
from bridgeai.serving import codec as v2
from bridgeai.testing.synthetic import housing_frame
from tests.support.docker import DockerEnv

pytestmark = pytest.mark.usefixtures("prefect_harness")

MODEL_NAME = "house_price_prediction_prod"


def test_without_a_docker_engine_the_flow_fails_saying_how_to_point_at_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.build_image import build_model_image

    socket = "unix:///nonexistent/bridgeai-test/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", socket)
    state = build_model_image(return_state=True)
    assert state.is_failed()
    with pytest.raises(image.DockerUnavailableError) as caught:
        state.result()
    assert f"no Docker engine is reachable at {socket}" in str(caught.value)
    assert "DOCKER_HOST" in str(caught.value)


@pytest.mark.docker
@pytest.mark.integration
@pytest.mark.slow
def test_build_push_pull_run(
    docker_env: DockerEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow

    from blocks import ContainerRegistry
    from bridgeai.model.mlflow_client import fluent
    from flows.build_image import build_model_image
    from tests.support.mlflow_registry import register_versions

    suffix = secrets.token_hex(4)
    mlflow_block = f"build-image-{suffix}"
    server = register_versions(tmp_path / "mlflow", count=1)
    server.save(mlflow_block, overwrite=True)
    client = server.client()
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    version = str(champion.version)
    with fluent(server.resolved_tracking_uri()):
        pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version}")

    registry = dict(
        server=docker_env.registry, namespace=f"test-{suffix}", username=docker_env.username
    )
    ContainerRegistry(**registry, password=SecretStr("wrong-password")).save(f"wrong-{suffix}")
    ContainerRegistry(**registry, password=SecretStr(docker_env.password)).save(f"right-{suffix}")
    repository = f"{docker_env.registry}/test-{suffix}/bridgeai-mlops"
    run = dict(base_image=docker_env.base_image, mlflow_block=mlflow_block, wheels="environment")

    # 1. Build, then push with a wrong password: the registry's refusal, in words.
    refused = build_model_image(**run, registry_block=f"wrong-{suffix}", return_state=True)
    assert refused.is_failed()
    with pytest.raises(image.ImagePushError) as caught:
        refused.result()
    message = str(caught.value)
    assert f"push of {repository}:{version} failed: the registry said:" in message
    assert "unauthorized" in message.lower()
    assert "check the username and password of the ContainerRegistry block" in message
    assert docker_env.password not in message and "wrong-password" not in message

    # 2. The right credentials: pushed, with a digest.
    ref = build_model_image(**run, registry_block=f"right-{suffix}")
    assert ref.repository == repository
    assert ref.tags == [version, "latest"]
    assert ref.digest and ref.digest.startswith("sha256:")
    assert ref.reference == f"{repository}@{ref.digest}"
    assert (ref.model_version, ref.run_id) == (version, champion.run_id)
    engine = docker_env.client
    config = engine.images.get(ref.image_id).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Labels"]["ai.bridgeai.model.name"] == MODEL_NAME
    assert config["Labels"]["ai.bridgeai.model.version"] == version
    assert config["Labels"]["ai.bridgeai.mlflow.run-id"] == champion.run_id
    print(f"model image size: {ref.size_bytes / 1e6:.0f} MB")  # shown with -s
    # The pushed image is stamped on the model version (the lineage of what it serves) ...
    stamped = client.get_model_version(MODEL_NAME, version).tags
    assert stamped["image"] == ref.reference and stamped["image_digest"] == ref.digest
    assert len(stamped["image_flow_run_id"]) == 36
    # ... and the build reported its progress as it went, to 100 % after the push.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as prefect_client:
        progress = prefect_client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["model-image-build"]))
        )
    assert any(float(a.data) == 100.0 and a.flow_run_id for a in progress), progress

    # 3. Remove it locally, pull it back by digest.
    image.remove(engine, [f"{repository}:{tag}" for tag in ref.tags] + [ref.image_id])
    with pytest.raises(Exception, match=r"No such image|not found"):
        engine.images.get(ref.image_id)
    auth = {"username": docker_env.username, "password": docker_env.password}
    pulled = image.pull(engine, ref.reference, {**auth, "serveraddress": docker_env.registry})
    assert pulled == ref.image_id

    # 4. Run it with host networking (the engine has no bridge) and ask it over v2.
    port = procs.free_port()
    container = engine.containers.run(
        ref.reference,
        ["--port", str(port), "--host", "127.0.0.1"],
        network_mode="host",
        detach=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        procs.wait_until(
            lambda: procs.http_ok(f"{url}/v2/health/ready"),
            timeout=120,
            service="model image",
            process=None,
        )
        houses = housing_frame(50, seed=17).select(schema.FEATURES).to_dicts()
        response = httpx.post(
            f"{url}/v2/models/{MODEL_NAME}/infer", json=v2.build_request(houses), timeout=30
        )
        meta = httpx.get(f"{url}/v2/models/{MODEL_NAME}", timeout=30).json()
    except Exception:
        print(container.logs().decode()[-3000:])  # the server's own account
        raise
    finally:
        container.remove(force=True)
        image.remove(engine, [ref.reference])
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == version
    assert meta["parameters"]["mlflow_run_id"] == champion.run_id
    frame = housing_frame(50, seed=17).select(schema.FEATURES).to_pandas()
    frame["area"] = frame["area"].astype(np.float64)
    expected = np.asarray(pyfunc.predict(frame), dtype=np.float64).reshape(-1)
    np.testing.assert_allclose(v2.prices_from(response.json()), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("registry_said", "retried"),
    [
        ("unauthorized: authentication required", False),
        ("EOF", True),
        ("received unexpected HTTP status: 503 Service Unavailable", True),
        ("manifest invalid", False),
    ],
)
def test_the_registry_s_words_decide_whether_a_push_is_retried(
    registry_said: str, retried: bool
) -> None:
    # The engine reports a failed push only as text in its stream: it is classified once, where
    # the error is raised, and the flow retries on the error's transient attribute.
    from flows._tasks import is_transient

    error = image._registry_error(image.ImagePushError, "push", "r:1", registry_said, None)
    assert isinstance(error, image.ImagePushError)
    assert error.transient is retried
    assert is_transient(error) is retried


def test_build_and_model_errors_carry_their_retry_hint() -> None:
    from bridgeai.model.source import ModelNotFound, ModelSourceError
    from flows._tasks import is_transient

    assert not is_transient(image.ImageBuildError("docker build failed: non-zero code: 1"))
    assert not is_transient(ModelNotFound("model 'x' has no version 9"))
    assert is_transient(ModelSourceError("downloading models:/x/1 failed", transient=True))
    assert is_transient(ConnectionResetError("reset by peer"))
