"""``prefect deployment run mlops-pipeline/kind`` on the simulated cluster, checked end to end.

The real worker makes the Job from the work-pool template; a container of the flow-runner image
runs the pipeline; every side effect is then looked for where it must be: the data versions in
the cluster's git remote (after the pod is gone), the model in the cluster's MLflow, the model
image in the registry by digest, the InferenceService ready on that digest with a container of
it running, the prediction service answering and logging to the cluster's Postgres, drift on
those rows, and the run COMPLETED. The Job's pod spec carries secrets only by reference.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time

import httpx
import pytest

from tests.support.cluster import runs
from tests.support.cluster.cluster import SimulatedCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]

EXAMPLE = {
    "mainroad": "yes", "guestroom": "no", "basement": "yes", "hotwaterheating": "no",
    "airconditioning": "yes", "prefarea": "no", "furnishingstatus": "furnished",
    "area": 1200, "bedrooms": 3, "bathrooms": 2, "stories": 2, "parking": 1,
}  # fmt: skip
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL")


@pytest.fixture(scope="module")
def pipeline_run(sim_cluster: SimulatedCluster, housing_sources: dict[str, str]):
    started = time.monotonic()
    run_id = runs.deployment_run(
        sim_cluster, "mlops-pipeline/kind", {"source": housing_sources["HousingData.csv"]}
    )
    run = runs.wait_final(sim_cluster, run_id, timeout=1500)
    sim_cluster.timings["mlops-pipeline/kind run"] = round(time.monotonic() - started, 1)
    runs.wait_job_finished(sim_cluster, run_id)
    return run_id, run


def test_the_pipeline_run_completes(sim_cluster: SimulatedCluster, pipeline_run) -> None:
    run_id, run = pipeline_run
    assert run.state.is_completed(), runs.describe(sim_cluster, run_id)
    stages = runs.subflow_runs(sim_cluster, run_id)
    assert {"data-ingestion", "model-training", "build-model-image", "deploy-model",
            "drift-monitoring"} <= set(stages)  # fmt: skip
    assert all(child.state.is_completed() for child in stages.values())


def test_the_worker_made_the_job_from_the_template_with_secrets_only_by_reference(
    sim_cluster: SimulatedCluster, pipeline_run
) -> None:
    run_id, _ = pipeline_run
    (job,) = runs.jobs_of(sim_cluster, run_id)
    assert job["metadata"]["name"].startswith(job["metadata"]["generateName"])
    assert job["spec"]["activeDeadlineSeconds"] == 7200
    assert job["spec"]["backoffLimit"] == 0
    conditions = {c["type"]: c["status"] for c in job["status"]["conditions"]}
    assert conditions["Complete"] == "True"
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == "bridgeai-flows"
    (container,) = pod_spec["containers"]
    # Pinned on the flow-runner image prefect.yaml's build step built from this checkout.
    assert container["image"] == sim_cluster.flow_runner_image
    assert "@sha256:" in container["image"]
    assert {v["hostPath"]["path"] for v in pod_spec["volumes"]} == {"/var/run/docker.sock"}
    for entry in container["env"]:
        if SECRET_NAME.search(entry["name"]):
            assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], entry
    text = json.dumps(job) + json.dumps(runs.pods_of(sim_cluster, run_id))
    for secret in sim_cluster.secrets.values():
        for key, value in secret.items():
            if key not in ("username", "rootUser"):  # names, not secrets ("bridgeai")
                assert value not in text, key
    assert sim_cluster.registry_password not in text


def test_a_container_of_the_flow_runner_image_ran_the_flow(
    sim_cluster: SimulatedCluster, pipeline_run
) -> None:
    run_id, _ = pipeline_run
    (pod,) = runs.pods_of(sim_cluster, run_id)
    (status,) = pod["status"]["containerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 0
    container = sim_cluster.docker.containers.get(status["containerID"].removeprefix("docker://"))
    assert container.image.id == sim_cluster.docker.images.get(sim_cluster.flow_runner_image).id
    assert container.attrs["HostConfig"]["NetworkMode"].startswith("container:")
    log = runs.logs(sim_cluster, run_id)
    assert "Kubernetes job" in sim_cluster.worker_log or "Creating Kubernetes job" in log


def _git(*args: str, cwd=None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_data_versions_live_in_the_clusters_git_remote_after_the_pod(
    sim_cluster: SimulatedCluster, pipeline_run, tmp_path
) -> None:
    run_id, _ = pipeline_run
    for pod in runs.pods_of(sim_cluster, run_id):  # the pod, and its scratch folder, are gone
        sim_cluster.call(sim_cluster.api.delete, "v1/pods", "bridgeai", pod["metadata"]["name"])
    deadline = time.monotonic() + 60
    while runs.pods_of(sim_cluster, run_id) and time.monotonic() < deadline:
        time.sleep(1)
    assert not runs.pods_of(sim_cluster, run_id)
    git = sim_cluster.secrets["bridgeai-git"]
    header = base64.b64encode(f"{git['username']}:{git['token']}".encode()).decode()
    url = f"http://{sim_cluster.address('git')}/data.git"
    tags = _git("-c", f"http.extraHeader=Authorization: Basic {header}", "ls-remote", "--tags", url)
    names = {line.split("refs/tags/")[1] for line in tags.splitlines()}
    assert {"data-v1.0.0", "data-latest"} <= {n.removesuffix("^{}") for n in names}


def test_the_model_is_registered_in_the_clusters_mlflow(
    sim_cluster: SimulatedCluster, pipeline_run
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(f"http://{sim_cluster.address('mlflow')}:5000/mlflow")
    champion = client.get_model_version_by_alias("house_price_prediction_prod", "champion")
    assert champion.version == "1"
    assert champion.tags["data_version"] == "data-v1.0.0"


def test_the_model_image_was_pushed_and_the_inference_service_serves_that_digest(
    sim_cluster: SimulatedCluster, pipeline_run
) -> None:
    from bridgeai.deploy.digests import resolve_digest

    run_id, _ = pipeline_run
    found = runs.artifacts(sim_cluster, [run_id, *[c.id for c in runs.subflow_runs(
        sim_cluster, run_id).values()]])  # fmt: skip
    image = runs.table(found["model-image"])["image"]
    repository = f"{sim_cluster.registry}/{sim_cluster.registry_namespace}/bridgeai-mlops"
    assert image == resolve_digest(
        f"{repository}:1",
        username=sim_cluster.registry_user,
        password=sim_cluster.registry_password,
    )
    isvc = sim_cluster.get("serving.kserve.io/v1beta1/inferenceservices", "house-price")
    assert isvc["spec"]["predictor"]["containers"][0]["image"] == image
    ready = {c["type"]: c["status"] for c in isvc["status"]["conditions"]}
    assert ready["Ready"] == "True"
    assert isvc["status"]["observedGeneration"] == isvc["metadata"]["generation"]
    (pod,) = sim_cluster.list("v1/pods", labels="serving.kserve.io/inferenceservice=house-price")
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
    running = sim_cluster.docker.containers.get(container_id)
    assert running.status == "running"
    assert running.image.id == sim_cluster.docker.images.get(image).id
    assert runs.table(found["model-deployment"])["image"] == image


def test_the_prediction_service_answers_and_logs_to_the_clusters_postgres(
    sim_cluster: SimulatedCluster, pipeline_run
) -> None:
    import sqlalchemy as sa

    service = f"http://{sim_cluster.address('prediction-service')}"
    answer = httpx.post(f"{service}/predict", json=EXAMPLE, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["message"] == "House price prediction successful"
    assert body["response"]["prediction"] > 0
    url = sim_cluster.secrets["bridgeai-predictions-db"]["database-url"]
    url = sim_cluster.names.resolve(url).replace("postgresql://", "postgresql+psycopg://")
    engine = sa.create_engine(url)
    deadline = time.monotonic() + 30
    try:
        while True:
            with engine.connect() as connection:
                rows = connection.execute(
                    sa.text(
                        "SELECT count(*), count(*) FILTER (WHERE area = 1200) FROM prediction_logs"
                    )
                ).one()
            if rows[1] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        engine.dispose()
    assert rows[0] > 1 and rows[1] >= 1  # the pipeline's smoke traffic, then this request


def test_drift_ran_on_the_production_traffic(sim_cluster: SimulatedCluster, pipeline_run) -> None:
    run_id, _ = pipeline_run
    drift = runs.subflow_runs(sim_cluster, run_id)["drift-monitoring"]
    found = runs.artifacts(sim_cluster, [drift.id])
    summary = found["drift-summary"].data
    assert "current | production" in summary, summary
    match = re.search(r"current \| production, [^,]+, ([\d,]+) rows", summary)
    assert match and int(match.group(1).replace(",", "")) >= 20, summary
