"""Checks the deployment flows share: a Docker engine, a smoke prediction, rollout progress.

Tasks and helpers used by ``deploy-model`` (and usable by the pipeline); no flow lives here.
"""

from __future__ import annotations

import os

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from bridgeai.service.smoke import SmokeResult


@task(cache_policy=NO_CACHE)
def docker_unavailable() -> str | None:
    """None when a Docker engine answers, else why not."""
    from bridgeai.deploy.image import DockerUnavailableError, connect

    try:
        connect(timeout=10).close()
    except DockerUnavailableError as exc:
        return str(exc)
    return None


@task(cache_policy=NO_CACHE, persist_result=False)
def smoke_prediction(model_url: str, service_url: str | None, expected_version: str) -> SmokeResult:
    """Send the original's example house through the prediction service; check the version.

    Locally the service is (re)started in front of the new model server; with ``service_url``
    the running service there is asked.

    Raises:
        SmokeError: the service failed, or answered from another model version.
    """
    from bridgeai.deploy import local as local_serving
    from bridgeai.service.smoke import SmokeError, run_smoke

    if service_url is None:
        service_url = local_serving.start_service(model_url.split("/v2/", 1)[0]).base_url
    result = run_smoke(service_url, [], api_key=os.environ.get("BRIDGEAI_API_KEY"))
    if result.model_version != expected_version:
        raise SmokeError(
            f"the prediction service at {service_url} answered from model version "
            f"{result.model_version or '(none)'}, not the deployed {expected_version}"
        )
    get_run_logger().info(
        "Smoke prediction through %s: example house %.0f %s from %s v%s",
        service_url,
        result.example_prediction,
        result.unit,
        result.model_name,
        result.model_version,
    )
    return result


def smoke_after_deploy(
    target: str, model_url: str, model_version: str, wanted: bool, service_url: str | None
) -> tuple[SmokeResult | None, str]:
    """The smoke prediction after a deployment, when asked, and why not when not.

    Locally (no ``service_url``) a running prediction service is restarted in front of the new
    model server even without a smoke prediction: it pointed at the server just replaced.
    """
    from bridgeai.deploy import local as local_serving

    if target == "local" and service_url is None:
        if not wanted:
            if local_serving.current_service() is not None:
                local_serving.start_service(model_url.split("/v2/", 1)[0])
            return None, "smoke is off"
        return smoke_prediction(model_url, None, model_version), ""
    if not wanted:
        return None, "smoke is off"
    if service_url is None:
        return None, "no service_url for the cluster's prediction service: no smoke prediction"
    return smoke_prediction(model_url, service_url, model_version), ""


def rollout_percent(message: str) -> float:
    """20 % once applied, then the share of the InferenceService's conditions that are True."""
    if " created in " in message or " updated in " in message or " unchanged in " in message:
        return 20.0
    conditions = [part for part in message.split(": ", 1)[-1].split("; ") if "=" in part]
    if not conditions:
        return 20.0
    true = sum(1 for c in conditions if "=True" in c)
    return 20.0 + 75.0 * true / len(conditions)
