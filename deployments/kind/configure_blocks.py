"""Save the blocks the flows load, pointing at the Kind cluster's in-cluster services.

Run by up.sh with PREFECT_API_URL set to the cluster's Prefect API. No secret goes into these
blocks: flow-run pods get S3 and MLflow credentials from Kubernetes Secrets by ``secretKeyRef``
(deployments/work-pools/kubernetes.json), and boto3/s3fs/DVC/MLflow read them from the
environment when a block leaves them empty.
"""

from __future__ import annotations

import sys

NAMESPACE = "bridgeai"


def main(argv: list[str] | None = None) -> int:
    import argparse

    from blocks import DEFAULT_BLOCK_NAME, ContainerRegistry, MLflowServer, ObjectStorage

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=DEFAULT_BLOCK_NAME, help="block name to save under")
    name = parser.parse_args(argv).name

    svc = f"{NAMESPACE}.svc.cluster.local"
    for cls in (ObjectStorage, MLflowServer, ContainerRegistry):
        cls.register_type_and_schema()
    ObjectStorage(endpoint_url=f"http://minio.{svc}:9000").save(name, overwrite=True)
    MLflowServer(tracking_uri=f"http://mlflow.{svc}:5000/mlflow").save(name, overwrite=True)
    # Nodes pull localhost:5000/... through containerd's mirror to the kind-registry container.
    ContainerRegistry(server="localhost:5000", namespace="bridgeai", insecure=True).save(
        name, overwrite=True
    )
    print(f"saved blocks {name!r}: ObjectStorage, MLflowServer, ContainerRegistry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
