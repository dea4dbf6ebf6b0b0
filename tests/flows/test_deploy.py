"""Flow ``deploy-model``: kserve against the in-memory Kubernetes API (kmock + simulated KServe),
with a real MLflow registry (SQLite) and a real registry for the tag -> digest lookup; local with
the real model server when it is present.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bridgeai.deploy import kserve
from tests.support.cluster import ISVC, FakeKServe, declare_resources
from tests.support.oci_registry import Registry

pytestmark = pytest.mark.usefixtures("prefect_harness")

NS = "models"
V1_IMAGE = "localhost:5000/bridgeai/bridgeai-mlops@sha256:" + "1" * 64
V2_IMAGE = "localhost:5000/bridgeai/bridgeai-mlops@sha256:" + "2" * 64
BAD_IMAGE = "localhost:5000/bridgeai/bridgeai-mlops@sha256:" + "9" * 64
MLFLOW_BLOCK = "deploy-tests"


@pytest.fixture(scope="module")
def registered_models(tmp_path_factory: pytest.TempPathFactory, prefect_harness) -> Iterator[str]:
    """Two real versions of the model in an MLflow SQLite registry; the champion is version 2."""
    from tests.support.mlflow_registry import register_versions

    register_versions(tmp_path_factory.mktemp("mlflow")).save(MLFLOW_BLOCK, overwrite=True)
    yield MLFLOW_BLOCK


def kubeconfig_for(kmock, path: Path) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url).rstrip("/")}}],
        "users": [{"name": "tester", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def run_deploy(**kwargs):
    from flows.deploy import deploy_model

    return deploy_model(**kwargs)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_kserve_champion_then_rollback(kmock, registered_models, tmp_path) -> None:
    declare_resources(kmock)
    config = kubeconfig_for(kmock, tmp_path / "kubeconfig")
    common = dict(
        target="kserve", namespace=NS, kube_config=config, kube_context="kmock",
        mlflow_block=registered_models, timeout_seconds=30,
    )  # fmt: skip
    async with FakeKServe(kmock, NS, delay=0.2).running():
        champion = await asyncio.to_thread(run_deploy, image=V2_IMAGE, **common)
        stored = dict(kmock.objects[ISVC, NS, "house-price"].raw)
        assert stored["metadata"]["labels"][kserve.MODEL_VERSION_LABEL] == "2"
        rollback = await asyncio.to_thread(run_deploy, model_version="1", image=V1_IMAGE, **common)
    assert champion.model_version == "2" and champion.action == "created"
    assert champion.url == kserve.service_url(NS)
    assert champion.model_uri == "models:/house_price_prediction_prod/2"
    assert rollback.model_version == "1" and rollback.action == "updated"
    stored = dict(kmock.objects[ISVC, NS, "house-price"].raw)
    assert stored["spec"]["predictor"]["containers"][0]["image"] == V1_IMAGE
    assert stored["metadata"]["labels"][kserve.MODEL_VERSION_LABEL] == "1"


@pytest.mark.integration
@pytest.mark.asyncio
async def test_kserve_rollback_by_version_finds_the_image_digest_in_the_registry(
    kmock,
    registered_models,
    oci_registry: Registry,
    tmp_path,
) -> None:
    from pydantic import SecretStr

    from blocks import ContainerRegistry

    digest = oci_registry.push("bridgeai/bridgeai-mlops", "1", b'{"model": 1}')
    await ContainerRegistry(
        server=oci_registry.host,
        namespace="bridgeai",
        username=oci_registry.username,
        password=SecretStr(oci_registry.password),
    ).asave("deploy-tests-registry", overwrite=True)
    declare_resources(kmock)
    async with FakeKServe(kmock, NS, delay=0.1).running():
        result = await asyncio.to_thread(
            run_deploy,
            target="kserve",
            model_version="1",
            namespace=NS,
            kube_config=kubeconfig_for(kmock, tmp_path / "kubeconfig"),
            mlflow_block=registered_models,
            registry_block="deploy-tests-registry",
            timeout_seconds=30,
        )
    assert result.image == f"{oci_registry.host}/bridgeai/bridgeai-mlops@{digest}"
    # The registry's credentials became the pull secret of the predictor's service account.
    assert ("v1/secrets", NS, kserve.PULL_SECRET) in {
        (f"{k[0].version}/{k[0].plural}", k[1], k[2]) for k in kmock.objects
    }


@pytest.mark.integration
@pytest.mark.asyncio
async def test_kserve_timeout_fails_the_run_and_keeps_the_diagnosis(
    kmock, registered_models, tmp_path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from bridgeai.deploy.kserve import DeploymentFailed

    declare_resources(kmock)
    common = dict(
        target="kserve", namespace=NS, kube_config=kubeconfig_for(kmock, tmp_path / "kc"),
        mlflow_block=registered_models,
    )  # fmt: skip
    async with FakeKServe(kmock, NS, delay=0.1, bad_images={BAD_IMAGE}).running():
        await asyncio.to_thread(run_deploy, image=V2_IMAGE, timeout_seconds=30, **common)
        with pytest.raises(DeploymentFailed, match="ImagePullBackOff"):
            await asyncio.to_thread(run_deploy, image=BAD_IMAGE, timeout_seconds=1.5, **common)
    stored = dict(kmock.objects[ISVC, NS, "house-price"].raw)
    assert stored["spec"]["predictor"]["containers"][0]["image"] == V2_IMAGE
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["deployment-failure"]))
        )
    assert any("Failed to pull image" in (a.data or "") for a in artifacts)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_kserve_autoscaling_parameters_reach_the_inference_service(
    kmock, registered_models, tmp_path
) -> None:
    declare_resources(kmock)
    common = dict(
        target="kserve", namespace=NS, kube_config=kubeconfig_for(kmock, tmp_path / "kc"),
        mlflow_block=registered_models, image=V2_IMAGE, timeout_seconds=30,
    )  # fmt: skip
    async with FakeKServe(kmock, NS, delay=0.1).running():
        await asyncio.to_thread(
            run_deploy, min_replicas=2, max_replicas=6, scale_metric="cpu", scale_target=70,
            **common,
        )  # fmt: skip
        scaled = dict(kmock.objects[ISVC, NS, "house-price"].raw)
        await asyncio.to_thread(run_deploy, **common)  # the defaults: one replica again
        fixed = dict(kmock.objects[ISVC, NS, "house-price"].raw)
    predictor = scaled["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 6)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("cpu", 70)
    assert scaled["metadata"]["annotations"][kserve.AUTOSCALER_ANNOTATION] == "hpa"
    predictor = fixed["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 1)
    assert "scaleMetric" not in predictor and "scaleTarget" not in predictor
    # The rollout keeps annotations it did not render (others' are never removed), so the
    # autoscaler class stays "hpa": an HPA bounded to 1..1, i.e. one replica, as asked.
    assert fixed["metadata"]["annotations"].get(kserve.AUTOSCALER_ANNOTATION) in (None, "hpa")


def test_kserve_refuses_inverted_replica_bounds_before_touching_the_cluster(
    registered_models,
) -> None:
    with pytest.raises(kserve.DeploymentError, match=r"max_replicas \(2\) must be at least"):
        run_deploy(
            target="kserve", image=V2_IMAGE, min_replicas=3, max_replicas=2,
            mlflow_block=registered_models, kube_config="/nonexistent",
        )  # fmt: skip


def test_kserve_refuses_a_tag_without_registry_and_unknown_versions(registered_models) -> None:
    from bridgeai.deploy.digests import DigestLookupError
    from bridgeai.model.source import ModelNotFound

    with pytest.raises(ModelNotFound, match="has no version 42"):
        run_deploy(target="kserve", model_version="42", mlflow_block=registered_models)
    with pytest.raises(DigestLookupError, match="no registry host"):
        run_deploy(target="kserve", image="bridgeai-mlops:2", mlflow_block=registered_models)


@pytest.mark.integration
@pytest.mark.slow
def test_local_serves_the_champion_then_rolls_back(registered_models) -> None:
    from bridgeai import procs
    from bridgeai.deploy import local as local_serving

    try:
        champion = run_deploy(target="local", mlflow_block=registered_models, timeout_seconds=180)
        first = local_serving.current()
        assert first is not None and first.model_version == "2"
        assert procs.http_ok(first.ready_url)
        rollback = run_deploy(
            target="local", model_version="1", mlflow_block=registered_models, timeout_seconds=180
        )
        second = local_serving.current()
        assert second is not None and second.model_version == "1"
        assert not first.alive()
        assert champion.url != rollback.url == second.infer_url
    finally:
        local_serving.stop()
