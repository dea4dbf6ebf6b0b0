"""Save the blocks the flows load, pointing at the Kind cluster's in-cluster services.

Run by up.sh with PREFECT_API_URL set to the cluster's Prefect API. Two kinds of credentials:

* those a library reads from the environment stay out of the blocks: flow-run pods get the S3,
  MLflow and PostgreSQL credentials from Kubernetes Secrets by ``secretKeyRef``
  (deployments/work-pools/kubernetes.json) as ``AWS_*``, ``MLFLOW_TRACKING_*`` and ``PGPASSWORD``,
  which boto3/s3fs/DVC, MLflow and libpq read when a block leaves them empty;
* those only our code uses are saved in the blocks as secret fields, from this process's
  environment (up.sh passes what it put in the Secrets): the data repository's token
  (``BRIDGEAI_GIT_TOKEN``, the git server's Secret ``bridgeai-git``) and the registry's
  credentials (``BRIDGEAI_REGISTRY_USERNAME`` / ``BRIDGEAI_REGISTRY_PASSWORD``, optional).
"""

from __future__ import annotations

import os
import sys

NAMESPACE = "bridgeai"
#: Where the host's Docker engine and the Kind nodes push and pull (the kind-registry container).
REGISTRY = "localhost:5000"
#: The same registry as pods reach it: the kind-registry container on the `kind` Docker network.
REGISTRY_API = "kind-registry:5000"


def main(argv: list[str] | None = None) -> int:
    import argparse

    from pydantic import SecretStr

    from blocks import (
        DEFAULT_BLOCK_NAME,
        ContainerRegistry,
        DataRepository,
        MLflowServer,
        ObjectStorage,
        PredictionDatabase,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--name", default=DEFAULT_BLOCK_NAME, help="block name to save under")
    parser.add_argument("--registry", default=REGISTRY, help="registry host[:port] images use")
    parser.add_argument(
        "--registry-api", default=REGISTRY_API, help="the same registry as pods reach it"
    )
    parser.add_argument("--registry-namespace", default="bridgeai")
    args = parser.parse_args(argv)
    token = os.environ.get("BRIDGEAI_GIT_TOKEN")
    if not token:
        print(
            "error: BRIDGEAI_GIT_TOKEN is not set: it is the token of the cluster's git server "
            "(Secret bridgeai-git), which the data repository block needs to push data versions",
            file=sys.stderr,
        )
        return 2

    svc = f"{NAMESPACE}.svc.cluster.local"
    blocks = (ObjectStorage, MLflowServer, ContainerRegistry, DataRepository, PredictionDatabase)
    for cls in blocks:
        cls.register_type_and_schema()
    ObjectStorage(endpoint_url=f"http://minio.{svc}:9000").save(args.name, overwrite=True)
    MLflowServer(tracking_uri=f"http://mlflow.{svc}:5000/mlflow").save(args.name, overwrite=True)
    username = os.environ.get("BRIDGEAI_REGISTRY_USERNAME") or None
    password = os.environ.get("BRIDGEAI_REGISTRY_PASSWORD")
    ContainerRegistry(
        server=args.registry,
        namespace=args.registry_namespace,
        insecure=True,
        api_server=args.registry_api,
        username=username,
        password=SecretStr(password) if username and password else None,
    ).save(args.name, overwrite=True)
    DataRepository(
        url=f"http://git.{svc}/data.git",
        username=os.environ.get("BRIDGEAI_GIT_USERNAME") or "bridgeai",
        token=SecretStr(token),
    ).save(args.name, overwrite=True)
    PredictionDatabase(url=f"postgresql://bridgeai@postgres.{svc}:5432/predictions").save(
        args.name, overwrite=True
    )
    print(f"saved blocks {args.name!r}: {', '.join(cls.__name__ for cls in blocks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
