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

from bridgeai.paths import bridgeai_home

DATA_SOURCE_ENV = "BRIDGEAI_DATA_SOURCE"


def main(serve: bool = False) -> None:
    """Run ``mlops_pipeline`` and print what each stage did.

    Args:
        serve: leave the model server and prediction service running and print their URLs;
            otherwise both are stopped at the end.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # The stage outcomes are the demo's output; MLflow's per-file progress bars only bury them.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
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

    service, server = local_serving.current_service(), local_serving.current()
    if serve and server is not None:
        _say("")
        _say(f"model server        {server.infer_url}")
        if service is not None:
            _say(f"prediction service  {service.base_url}/predict")
            _say(f"Swagger UI          {service.base_url}/swagger")
        _say("stop them with: bridgeai down")
    else:
        local_serving.stop_service()
        local_serving.stop()


def _say(line: str, err: bool = False) -> None:
    print(line, file=sys.stderr if err else sys.stdout, flush=True)
