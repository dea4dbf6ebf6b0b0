"""``bridgeai demo``: the whole pipeline in embedded mode, with each stage's outcome printed.

Embedded mode needs nothing but this environment: Prefect runs an ephemeral API, MLflow and the
object storage live under ``$BRIDGEAI_HOME``, and the model server and prediction service run as
local processes. With ``PREFECT_API_URL`` pointing at a server (``eval "$(bridgeai env)"`` after
``bridgeai up``) the same command runs against the local stack instead.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from bridgeai.paths import bridgeai_home

DATA_SOURCE_ENV = "BRIDGEAI_DATA_SOURCE"


def main(serve: bool = False) -> None:
    """Run ``mlops_pipeline`` and print what each stage did.

    Args:
        serve: leave the champion served by the model server and the prediction service and
            print their URLs, whether or not this run promoted a new version; otherwise both
            are stopped at the end.
    """
    quiet_environment()
    mode = (
        f"Prefect server {os.environ['PREFECT_API_URL']}"
        if os.environ.get("PREFECT_API_URL")
        else "embedded"
    )
    source = os.environ.get(DATA_SOURCE_ENV) or "the original's public HousingData.csv"
    _say(f"BridgeAI demo ({mode}); state in {bridgeai_home()}; data from {source}")
    _say("stages: ingest -> train -> image -> deploy -> smoke predictions -> drift")

    from bridgeai.deploy import local as local_serving
    from flows.pipeline import mlops_pipeline

    began = time.monotonic()
    try:
        result = mlops_pipeline()
    except Exception as exc:  # the flow's own log already shows the traceback
        _say("")
        _say(f"pipeline failed: {type(exc).__name__}: {exc}", err=True)
        local_serving.stop_service()
        local_serving.stop()
        raise SystemExit(1) from None

    _say("")
    _say(f"BridgeAI pipeline finished in {time.monotonic() - began:.0f} s")
    for stage, outcome in result.outcomes():
        _say(f"  {stage:<11} {outcome}")

    if not serve:
        local_serving.stop_service()
        local_serving.stop()
        return
    try:
        server, service = serve_champion()
    except Exception as exc:
        _say(f"serving the champion failed: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(1) from None
    _say("")
    _say(f"model server        {server.infer_url}  (champion, version {server.model_version})")
    _say(f"prediction service  {service.base_url}/predict")
    _say(f"Swagger UI          {service.base_url}/swagger")
    _say("stop them with: bridgeai down")


def quiet_environment() -> None:
    """Settings that keep a healthy run's output free of false alarms and progress floods.

    Prefect's ephemeral server tries to send telemetry, which fails offline with an ERROR line;
    MLflow draws a progress bar per artifact download, which in a log (not a terminal) is one
    line per update. Values the user set are kept.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not sys.stdout.isatty():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def serve_champion() -> tuple[Any, Any]:
    """Make sure the champion is served locally, by the model server and the prediction service.

    When this run promoted and deployed a version, both already serve it and are kept. Otherwise
    (not promoted, or a run that stopped the servers) the champion is deployed with the
    ``deploy-model`` flow and the prediction service is (re)started in front of it.

    Returns:
        The running ``LocalServer`` and ``LocalService``.
    """
    from blocks import DEFAULT_BLOCK_NAME, MLflowServer, load_block
    from bridgeai import procs
    from bridgeai.deploy import local as local_serving
    from bridgeai.model import source as model_source
    from flows.deploy import deploy_model

    mlflow_server = load_block(MLflowServer, DEFAULT_BLOCK_NAME)
    champion = model_source.resolve_version(
        mlflow_server.client(), mlflow_server.registered_model, alias=mlflow_server.alias
    )
    server = local_serving.current()
    if (
        server is None
        or server.model_version != str(champion.version)
        or not procs.http_ok(server.ready_url)
    ):
        deploy_model(target="local", model_version=str(champion.version))
        server = local_serving.current()
        if server is None:
            raise RuntimeError("deploy-model finished but no local model server is recorded")
    service = local_serving.start_service(server.base_url)
    return server, service


def _say(line: str, err: bool = False) -> None:
    print(line, file=sys.stderr if err else sys.stdout, flush=True)
