"""Each kind deployment run alone, in the order docs/kind.md gives (ingestion, training, image,
deploy, drift), each in its own pod; then a rollback on the cluster to an older model version.

Runs after test_pipeline.py (data-v1.0.0 and model version 1 exist): new data makes data-v1.1.0,
training makes version 2, which the image and deploy stages put on the InferenceService; drift
compares the two data versions; the rollback puts version 1's digest back.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.cluster import runs
from tests.support.cluster.cluster import SimulatedCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]

ISVC = "serving.kserve.io/v1beta1/inferenceservices"
EXAMPLE = {
    "mainroad": "yes", "guestroom": "no", "basement": "yes", "hotwaterheating": "no",
    "airconditioning": "yes", "prefarea": "no", "furnishingstatus": "furnished",
    "area": 1200, "bedrooms": 3, "bathrooms": 2, "stories": 2, "parking": 1,
}  # fmt: skip


def _run(cluster: SimulatedCluster, name: str, parameters: dict, timeout: float = 900):
    started = time.monotonic()
    run_id = runs.deployment_run(cluster, name, parameters)
    run = runs.wait_final(cluster, run_id, timeout)
    cluster.timings[f"{name} run"] = round(time.monotonic() - started, 1)
    assert run.state.is_completed(), runs.describe(cluster, run_id)
    runs.wait_job_finished(cluster, run_id)
    (pod,) = runs.pods_of(cluster, run_id)  # its own pod, from its own Job
    (job,) = runs.jobs_of(cluster, run_id)
    assert pod["metadata"]["labels"]["job-name"] == job["metadata"]["name"]
    return run_id


def _predict(cluster: SimulatedCluster) -> dict:
    answer = httpx.post(
        f"http://{cluster.address('prediction-service')}/predict", json=EXAMPLE, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.fixture(scope="module")
def stages(sim_cluster: SimulatedCluster, housing_sources: dict[str, str]) -> dict:
    out: dict = {}
    out["ingest"] = _run(
        sim_cluster, "data-ingestion/kind", {"source": housing_sources["HousingData-new.csv"]}
    )
    out["train"] = _run(sim_cluster, "model-training/kind", {"data_version": "data-latest"})
    out["image"] = _run(
        sim_cluster,
        "build-model-image/kind",
        {"model_uri": "models:/house_price_prediction_prod/2"},
    )
    out["deploy"] = _run(sim_cluster, "deploy-model/kind", {"model_version": "2"})
    out["drift"] = _run(
        sim_cluster,
        "drift-monitoring/kind",
        {"reference": "data-previous", "current": "data-latest"},
    )
    return out


def test_each_stage_alone_in_the_documented_order(sim_cluster: SimulatedCluster, stages) -> None:
    found = runs.artifacts(sim_cluster, list(stages.values()))
    assert "data-v1.1.0" in found["data-version"].description or "data-v1.1.0" in str(
        found["data-version"].data
    )
    assert runs.table(found["model-deployment"])["model_version"] == "2"
    isvc = sim_cluster.get(ISVC, "house-price")
    image = runs.table(found["model-image"])["image"]
    assert isvc["spec"]["predictor"]["containers"][0]["image"] == image
    assert _predict(sim_cluster)["model_version"] == "2"
    assert "data-previous" not in found["drift-summary"].data  # resolved to concrete versions
    assert (
        "data-v1.0.0" in found["drift-summary"].data
        and "data-v1.1.0" in found["drift-summary"].data
    )


def test_rollback_on_the_cluster_puts_the_older_digest_back(
    sim_cluster: SimulatedCluster, stages
) -> None:
    from bridgeai.deploy.digests import resolve_digest

    repository = f"{sim_cluster.registry}/{sim_cluster.registry_namespace}/bridgeai-mlops"
    v1 = resolve_digest(
        f"{repository}:1",
        username=sim_cluster.registry_user,
        password=sim_cluster.registry_password,
    )
    # No image given: the flow resolves version 1's tag to its digest from inside its pod, through
    # the registry's in-cluster address (the ContainerRegistry block's api_server).
    run_id = _run(sim_cluster, "deploy-model/kind", {"model_version": "1"})
    isvc = sim_cluster.get(ISVC, "house-price")
    assert isvc["spec"]["predictor"]["containers"][0]["image"] == v1
    assert runs.table(runs.artifacts(sim_cluster, [run_id])["model-deployment"])["image"] == v1
    body = _predict(sim_cluster)
    assert body["model_version"] == "1"
    assert body["response"]["prediction"] > 0
