"""The `kind` work pool's base job template: derived from prefect-kubernetes' default, rendered by
the Kubernetes worker's own code, and the resulting Job validated strictly at the pinned
Kubernetes version. No secret value may appear anywhere in it."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.support.env import REPO_ROOT
from tests.support.schemas import KUBERNETES_VERSION, validate_k8s

# Rendering resolves block/variable references through the API: use the session's one.
pytestmark = pytest.mark.usefixtures("prefect_harness")

TEMPLATE = REPO_ROOT / "deployments" / "work-pools" / "kubernetes.json"


def template() -> dict:
    return dict(json.loads(TEMPLATE.read_text()))


def defaults(doc: dict) -> dict:
    return {k: v["default"] for k, v in doc["variables"]["properties"].items() if "default" in v}


async def rendered_job(values: dict) -> dict:
    """The Job manifest exactly as the Kubernetes worker would submit it for a flow run."""
    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    configuration = await KubernetesWorkerJobConfiguration.from_template_and_values(
        template(), values
    )
    flow_run = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name="brave-otter")
    configuration.prepare_for_flow_run(flow_run)
    return dict(configuration.job_manifest)


def test_variables_keep_every_default_variable_of_prefect_kubernetes() -> None:
    from prefect_kubernetes.worker import KubernetesWorker

    default = KubernetesWorker.get_default_base_job_template()
    assert set(default["variables"]["properties"]) <= set(template()["variables"]["properties"])
    assert set(default["job_configuration"]) == set(template()["job_configuration"])


@pytest.mark.asyncio
async def test_rendered_job_validates_strictly_with_resources_and_secret_refs() -> None:
    job = await rendered_job({**defaults(template()), "env": {"EXTRA": "1"}})
    assert validate_k8s(job) == KUBERNETES_VERSION.rsplit(".", 1)[0]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert container["image"] == "localhost:5000/bridgeai/flow-runner:latest"
    assert pod["serviceAccountName"] == "bridgeai-flows"
    assert job["metadata"]["namespace"] == "bridgeai"
    env = {e["name"]: e for e in container["env"]}
    refs = {n: e["valueFrom"]["secretKeyRef"] for n, e in env.items() if "valueFrom" in e}
    assert refs["AWS_ACCESS_KEY_ID"] == {"name": "bridgeai-s3", "key": "access-key-id"}
    assert refs["AWS_SECRET_ACCESS_KEY"]["name"] == "bridgeai-s3"
    assert refs["MLFLOW_TRACKING_PASSWORD"]["optional"] is True
    assert refs["PGPASSWORD"] == {"name": "bridgeai-postgres", "key": "password"}
    assert job["spec"]["activeDeadlineSeconds"] == 7200
    assert pod["volumes"] == [] and container["volumeMounts"] == []
    # The worker's own variables are still added (it prepends them to our list).
    assert "PREFECT__FLOW_RUN_ID" in env and env["EXTRA"]["value"] == "1"


@pytest.mark.asyncio
async def test_job_with_overridden_resources_still_validates() -> None:
    values = {**defaults(template()), "cpu_limit": "4", "memory_limit": "6Gi"}
    job = await rendered_job(values)
    validate_k8s(job)
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "4", "memory": "6Gi"}


@pytest.mark.asyncio
async def test_the_docker_socket_job_variables_render_a_valid_job() -> None:
    """build-model-image/kind's job variables (prefect.yaml) give the pod the node's socket."""
    import yaml

    deployment = next(
        d
        for d in yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]
        if d["entrypoint"] == "flows/build_image.py:build_model_image" and d["name"] == "kind"
    )
    variables = {k: v for k, v in deployment["work_pool"]["job_variables"].items() if k != "image"}
    job = await rendered_job({**defaults(template()), **variables})
    validate_k8s(job)
    pod = job["spec"]["template"]["spec"]
    (volume,) = pod["volumes"]
    assert volume["hostPath"] == {"path": "/var/run/docker.sock", "type": "Socket"}
    (mount,) = pod["containers"][0]["volumeMounts"]
    assert mount["mountPath"] == "/var/run/docker.sock" and mount["name"] == volume["name"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    assert pod["securityContext"] == {"runAsUser": 0}


@pytest.mark.asyncio
async def test_the_unmodified_default_would_fail_strict_validation() -> None:
    """Why the template moved completions/parallelism: the default puts them in the pod spec."""
    import kubernetes_validate
    from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

    default = KubernetesWorker.get_default_base_job_template()
    configuration = await KubernetesWorkerJobConfiguration.from_template_and_values(
        default, {"image": "x", "namespace": "bridgeai"}
    )
    with pytest.raises(kubernetes_validate.ValidationError, match=r"completions|parallelism"):
        validate_k8s(dict(configuration.job_manifest))


def test_no_secret_values_in_the_template() -> None:
    text = TEMPLATE.read_text()
    doc = template()
    container = doc["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][
        0
    ]
    for entry in container["env"]:
        if re.search(r"KEY|SECRET|PASSWORD|TOKEN|USERNAME|DATABASE_URL", entry["name"]):
            assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], entry
    assert not re.search(r"(?i)(password|secret)[\"']?\s*:\s*[\"'][^{\"']", text)
    assert "AKIA" not in text and "minioadmin" not in text
