"""The simulated cluster, one per session (it builds the flow-runner image once), and its data.

Under ``BRIDGEAI_CI=1`` a missing Docker engine, registry or base image fails these tests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster.cluster import ClusterImages, SimulatedCluster
from tests.support.env import require

#: Made by .ci/docker.sh from the offline Python base (flow-runner-base.Dockerfile).
FLOW_RUNNER_BASE = "bridgeai/flow-runner-base:bookworm"


@pytest.fixture(scope="session")
def sim_cluster(docker_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedCluster]:
    """The simulated Kind cluster, up as up.sh brings up the real one."""
    from docker.errors import ImageNotFound

    try:
        docker_env.client.images.get(FLOW_RUNNER_BASE)
        has_base = True
    except ImageNotFound:
        has_base = False
    require(has_base, f"the flow-runner base image {FLOW_RUNNER_BASE} (`bash .ci/docker.sh up`)")
    logging.getLogger("sim").setLevel(logging.INFO)
    cluster = SimulatedCluster(
        root=tmp_path_factory.mktemp("sim-cluster"),
        docker=docker_env.client,
        registry=docker_env.registry,
        registry_user=docker_env.username,
        registry_password=docker_env.password,
        images=ClusterImages(
            sandbox=docker_env.base_image,
            flow_runner_base=FLOW_RUNNER_BASE,
            model_base=docker_env.base_image,
        ),
        docker_socket=docker_env.docker_host.removeprefix("unix://"),
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        print(f"\nsimulated cluster timings (s): {cluster.timings}")


@pytest.fixture(scope="session")
def housing_sources(sim_cluster: SimulatedCluster, shared_data: Path) -> dict[str, str]:
    """The original's CSVs in the cluster's MinIO (pods reach nothing outside the cluster)."""
    from pydantic import SecretStr

    from blocks import ObjectStorage

    credentials = sim_cluster.secrets["bridgeai-s3"]
    storage = ObjectStorage(
        endpoint_url=f"http://{sim_cluster.address('minio')}:9000",
        access_key_id=credentials["access-key-id"],
        secret_access_key=SecretStr(credentials["secret-access-key"]),
    )
    fs = storage.filesystem()
    sources = {}
    for name in ("HousingData.csv", "HousingData-old.csv", "HousingData-new.csv"):
        fs.put(str(shared_data / name), f"s3://artifacts/sources/{name}")
        sources[name] = f"s3://artifacts/sources/{name}"
    return sources


#: The modules run in this order, whatever order they are collected in: the simulation's own
#: checks first, then the pipeline (which makes data-v1.0.0 and model version 1), the stages
#: (which build on them), and the failures (which need a trained model to cancel).
ORDER = ("test_simulation", "test_pipeline", "test_stages", "test_failures")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        return ORDER.index(name) if name in ORDER else len(ORDER)

    items.sort(key=rank)
