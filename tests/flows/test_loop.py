"""The closed loop on the local stack, event by event, as a user turns it on (issue 14's Show).

`bridgeai up`, `prefect deploy --all`, the three `-local` automations resumed with
`prefect automation resume`, a notification block pointing at a webhook receiver. Then only
`prefect deployment run data-ingestion/local` (three datasets: a first one, a better one, a
worse one) and one `drift-monitoring/local` run over shifted production traffic:

* each new data version starts exactly one `model-training/local` run, on that version;
* a promotion starts one `deploy-model/local` run that (with the CI's Docker engine) builds and
  pushes the image, swaps the local model server and smokes the prediction service, which then
  answers from the new `model_version`;
* a rejection stops the chain: no deployment, the old champion keeps serving;
* drift of production traffic sends one notification and starts no training;
* every run an automation made has the triggering event as its parent in the Prefect API, and
  only `local` deployments ran;
* `bridgeai lineage` on a logged request prints the chain, with links that resolve;
* an `mlops-pipeline/local` run (which versions, trains and deploys by itself) starts no
  automation's run: its events say they came from inside the pipeline.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest

from bridgeai import schema
from bridgeai.testing.synthetic import housing_frame
from tests.support import loop
from tests.support.docker import _VARIABLES, _from_env_file
from tests.support.env import IN_CI, REPO_ROOT
from tests.support.stack import BIN
from tests.support.webhook import webhook_receiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "house_price_prediction_prod"
LOCAL_AUTOMATIONS = (
    "bridgeai-train-on-new-data-local",
    "bridgeai-deploy-on-promotion-local",
    "bridgeai-alert-on-production-drift-local",
)


def _datasets(root: Path) -> dict[str, Path]:
    """A first dataset, a better one (more houses) and a worse one (noisy prices).

    Checked once by hand with the training code: on its own test split the model trained on
    "better" beats the first champion, and the model trained on "worse" loses to "better"'s.
    """
    rng = np.random.default_rng(64)
    noisy = housing_frame(150, seed=63)
    prices = noisy["price"].to_numpy() * rng.lognormal(0.0, 0.5, noisy.height)
    noisy = noisy.with_columns(
        pl.Series("price", (np.round(prices / 1000) * 1000).astype(np.int64))
    )
    frames = {
        "first": housing_frame(80, seed=61),
        "better": housing_frame(900, seed=62),
        "worse": noisy,
        "pipeline": housing_frame(400, seed=66),
    }
    paths = {}
    for name, frame in frames.items():
        paths[name] = root / f"{name}.csv"
        frame.write_csv(paths[name])
    return paths


def _docker() -> dict[str, str] | None:
    """The CI engine and registry, if present (the image step then runs)."""
    import os

    values = {k: os.environ[k] for k in _VARIABLES if os.environ.get(k)}
    if len(values) < len(_VARIABLES):
        values = {**_from_env_file(), **values}
    if any(not values.get(k) for k in _VARIABLES):
        assert not IN_CI, "CI provides a Docker engine and a registry (.ci/docker.sh)"
        return None
    return values


_SAVE_BLOCKS = """
import os
from prefect.blocks.notifications import CustomWebhookNotificationBlock
CustomWebhookNotificationBlock(
    name="BridgeAI alerts",
    url=os.environ["HOOK_URL"],
    json_data={"subject": "{{subject}}", "text": "{{body}}"},
).save("bridgeai-alerts", overwrite=True)
if os.environ.get("REGISTRY"):
    from pydantic import SecretStr
    from blocks import ContainerRegistry
    ContainerRegistry(
        server=os.environ["REGISTRY"],
        namespace=os.environ["REGISTRY_NAMESPACE"],
        username=os.environ["REGISTRY_USER"],
        password=SecretStr(os.environ["REGISTRY_PASSWORD"]),
    ).save("bridgeai", overwrite=True)
"""


def _save_blocks(
    user: dict[str, str], hook_url: str, docker: dict[str, str] | None, namespace: str
) -> None:
    """As a user would: the notification block, and the registry when there is one."""
    env = {**user, "HOOK_URL": hook_url}
    if docker:
        env.update(
            REGISTRY=docker["BRIDGEAI_TEST_REGISTRY"],
            REGISTRY_NAMESPACE=namespace,
            REGISTRY_USER=docker["BRIDGEAI_TEST_REGISTRY_USER"],
            REGISTRY_PASSWORD=docker["BRIDGEAI_TEST_REGISTRY_PASSWORD"],
        )
    subprocess.run([str(BIN / "python"), "-c", _SAVE_BLOCKS], env=env, cwd=REPO_ROOT, check=True)


def _service_url(home: Path) -> str:
    state = json.loads((home / "serving" / "prediction-service.json").read_text())
    return f"http://{state['host']}:{state['port']}"


def _log(home: Path) -> pl.DataFrame:
    from bridgeai.service.prediction_log import read_window

    now = datetime.now(UTC)
    return read_window(
        f"sqlite:///{home / 'service' / 'predictions.db'}",
        now - timedelta(days=1),
        now + timedelta(hours=1),
    )


def test_the_loop_closes_on_the_local_stack(tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path / "home"
    data = _datasets(tmp_path)
    docker = _docker()
    namespace = f"loop-{secrets.token_hex(4)}"  # this test's own images in the shared registry
    extra = (
        {
            "BRIDGEAI_BASE_IMAGE": docker["BRIDGEAI_TEST_BASE_IMAGE"],
            "DOCKER_HOST": docker["DOCKER_HOST"],
        }
        if docker
        else {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    )
    worker_log = home / "stack" / "logs" / "prefect-worker.log"

    with webhook_receiver() as hook, loop.deployed_stack(home, **extra) as user:
        _save_blocks(user, hook.url, docker, namespace)
        for name in LOCAL_AUTOMATIONS:  # Prefect's own control, as a user turns them on
            loop.prefect(user, "automation", "resume", name)
        mlflow = MlflowClient(user["MLFLOW_TRACKING_URI"])

        with (
            temporary_settings({PREFECT_API_URL: user["PREFECT_API_URL"]}),
            get_client(sync_client=True) as client,
        ):
            automations = {a.name: a for a in client.read_automations()}
            assert all(automations[n].enabled for n in LOCAL_AUTOMATIONS)
            assert not any(a.enabled for n, a in automations.items() if n not in LOCAL_AUTOMATIONS)
            deployments = {
                f"{client.read_flow(d.flow_id).name}/{d.name}": d for d in client.read_deployments()
            }
            training = deployments["model-training/local"].id
            deploying = deployments["deploy-model/local"].id

            # -- 1. the first dataset: trained, promoted (no champion yet), deployed ----------
            ingest_1 = loop.deployment_run(user, "data-ingestion/local", source=str(data["first"]))
            assert loop.wait_final(client, ingest_1).state.is_completed()
            (train_1,) = loop.wait_for_runs(client, training, 1, log=worker_log)
            assert train_1.parameters["data_version"] == "data-v1.0.0"
            (deploy_1,) = loop.wait_for_runs(client, deploying, 1, log=worker_log)
            assert train_1.state.is_completed() and deploy_1.state.is_completed(), (
                worker_log.read_text()[-5000:]
            )

            # -- 2. a better dataset: one command, and the chain runs to a smoke prediction ------
            ingest_2 = loop.deployment_run(user, "data-ingestion/local", source=str(data["better"]))
            assert loop.wait_final(client, ingest_2).state.is_completed()
            train_2 = loop.wait_for_runs(client, training, 2, log=worker_log)[-1]
            assert train_2.parameters["data_version"] == "data-v1.1.0"  # from the event
            assert train_2.state.is_completed()
            deploy_2 = loop.wait_for_runs(client, deploying, 2, log=worker_log)[-1]
            assert deploy_2.state.is_completed(), worker_log.read_text()[-5000:]
            assert deploy_2.parameters["model_version"] == "2"
            champion = mlflow.get_model_version_by_alias(NAME, "champion")
            assert str(champion.version) == "2"
            assert champion.tags["data_version"] == "data-v1.1.0"
            # The smoke prediction went through the service, which answers from v2.
            service = _service_url(home)
            answer = httpx.post(f"{service}/predict", json=schema.EXAMPLE_HOUSE, timeout=30).json()
            assert answer["model_version"] == "2", answer
            smoked = _log(home).filter(pl.col("model_version") == "2")
            assert smoked.height >= 1
            # The deployment's result artifact links to the model version and its MLflow run.
            deployed = loop.artifacts_of(client, deploy_2.id)["model-deployment"].data
            mlflow_ui = user["MLFLOW_TRACKING_URI"].rstrip("/")
            assert f"{mlflow_ui}/#/models/{NAME}/versions/2" in deployed, deployed
            assert f"/runs/{champion.run_id}" in deployed, deployed
            (promoted,) = loop.emitted(client, "bridgeai.model.promoted", train_2.id, wait=60)
            assert promoted.payload["model_version"] == "2"
            assert promoted.payload["previous_champion"] == "1"

            # -- 3. a worse dataset: trained, rejected; the chain stops there ----------------------
            ingest_3 = loop.deployment_run(user, "data-ingestion/local", source=str(data["worse"]))
            assert loop.wait_final(client, ingest_3).state.is_completed()
            train_3 = loop.wait_for_runs(client, training, 3, log=worker_log)[-1]
            assert train_3.parameters["data_version"] == "data-v1.2.0"
            assert train_3.state.is_completed()
            assert mlflow.get_model_version(NAME, "3").tags["gate_decision"] == "not_promoted"
            started_by = loop.triggering_event(client, train_3.id)  # (the ingestion's event)
            assert started_by.event == "bridgeai.data.versioned"
            (rejected,) = loop.emitted(client, "bridgeai.model.rejected", train_3.id, wait=60)
            assert rejected.payload["model_version"] == "3"
            assert rejected.payload["previous_champion"] == "2"
            assert isinstance(rejected.payload["score"], float)
            assert isinstance(rejected.payload["champion_score"], float)
            # (stored with the run's other events, which are there now)
            assert not loop.emitted(client, "bridgeai.model.promoted", train_3.id)
            assert len(loop.runs_of(client, deploying)) == 2  # no deployment for a rejection
            assert str(mlflow.get_model_version_by_alias(NAME, "champion").version) == "2"
            answer = httpx.post(f"{service}/predict", json=schema.EXAMPLE_HOUSE, timeout=30).json()
            assert answer["model_version"] == "2"  # the old champion keeps serving

            # -- every automation's run has the triggering event as its parent ---------------------
            ingests = {"data-v1.0.0": ingest_1, "data-v1.1.0": ingest_2, "data-v1.2.0": ingest_3}
            for run in loop.runs_of(client, training):
                assert run.created_by and run.created_by.type == "AUTOMATION"
                event = loop.triggering_event(client, run.id)
                assert event.event == "bridgeai.data.versioned"
                assert event.payload["tag"] == run.parameters["data_version"]
                assert f"prefect.flow-run.{ingests[event.payload['tag']]}" in loop.related_ids(
                    event, "flow-run"
                )
                assert "bridgeai.work-pool.local" in loop.related_ids(event, "work-pool")
            for run, trained in zip(
                loop.runs_of(client, deploying), (train_1, train_2), strict=True
            ):
                event = loop.triggering_event(client, run.id)
                assert event.event == "bridgeai.model.promoted"
                assert f"prefect.flow-run.{trained.id}" in loop.related_ids(event, "flow-run")
                assert event.payload["model_version"] == run.parameters["model_version"]

            # -- production drift: one notification, no training --------------------------------
            shifted = housing_frame(300, seed=65, area_shift=2.5).select(schema.FEATURES).to_dicts()
            with httpx.Client(base_url=service, timeout=30) as http:
                for house in shifted:
                    http.post("/predict", json=house).raise_for_status()
            drift = loop.deployment_run(
                user,
                "drift-monitoring/local",
                current="production",
                window_hours=1,
                drift_share_threshold=0.1,
            )
            drift_run = loop.wait_final(client, drift)
            assert drift_run.state.is_completed(), worker_log.read_text()[-5000:]
            alerting = deployments["drift-alert/local"].id
            (alert_run,) = loop.wait_for_runs(client, alerting, 1, log=worker_log)
            assert alert_run.state.is_completed(), worker_log.read_text()[-5000:]
            event = loop.triggering_event(client, alert_run.id)
            assert (
                event.event == "bridgeai.drift.detected"
                and event.resource["bridgeai.drift.mode"] == "production"
            )
            assert f"prefect.flow-run.{drift}" in loop.related_ids(event, "flow-run")
            assert "area" in alert_run.parameters["drifted_columns"]
            posts = hook.posts()
            assert len(posts) == 1, posts
            assert "area" in posts[0]["body"]["text"]
            assert len(loop.runs_of(client, training)) == 3  # no retraining on production drift

            # -- only local runs were created ----------------------------------------------------
            by_id = {d.id: name for name, d in deployments.items()}
            ran = [r for r in client.read_flow_runs() if r.deployment_id]
            assert ran and all(by_id[r.deployment_id].endswith("/local") for r in ran), [
                by_id[r.deployment_id] for r in ran
            ]

            # -- lineage of a request served by v2 ----------------------------------------------
            request_id = _log(home).filter(pl.col("model_version") == "2")["request_id"][0]
            shown = subprocess.run(
                [str(BIN / "bridgeai"), "lineage", request_id, "--json"],
                env=user,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert shown.returncode == 0, shown.stderr
            chain = json.loads(shown.stdout)
            text = subprocess.run(
                [str(BIN / "bridgeai"), "lineage", request_id],
                env=user,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            ).stdout
            print(text)  # shown with -s: what a user reads
            _check_lineage(
                chain, user, client, mlflow, docker, namespace, ingest_2, train_2, deploy_2
            )

            # -- an mlops-pipeline run versions, trains and deploys by itself: no automation --
            # follows its events (emitted minutes before it completes, labelled in-pipeline).
            alerts = len(loop.runs_of(client, alerting))
            piped = loop.deployment_run(
                user, "mlops-pipeline/local", source=str(data["pipeline"]), build_image="never"
            )
            piped_run = loop.wait_final(client, piped, timeout=1500)
            assert piped_run.state.is_completed(), worker_log.read_text()[-5000:]
            from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

            (versioned,) = client.read_events(
                EventFilter(
                    event=EventNameFilter(name=["bridgeai.data.versioned"]),
                    resource=EventResourceFilter(id=["bridgeai.data-version.data-v1.3.0"]),
                ),
                limit=10,
            ).events
            assert versioned.resource["bridgeai.in-pipeline"] == "true"
            assert len(loop.runs_of(client, training)) == 3
            assert len(loop.runs_of(client, deploying)) == 2
            assert len(loop.runs_of(client, alerting)) == alerts

    if docker:
        _remove_local_images(docker, namespace)


def _check_lineage(
    chain: dict[str, Any],
    user: dict[str, str],
    client: Any,
    mlflow: Any,
    docker: dict[str, str] | None,
    namespace: str,
    ingest: Any,
    train: Any,
    deploy: Any,
) -> None:
    model = chain["model"]
    assert model["version"] == "2" and "champion" in model["aliases"]
    page = httpx.get(
        f"{user['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/model-versions/get",
        params={"name": NAME, "version": "2"},
        timeout=30,
    )
    assert page.status_code == 200 and model["url"].startswith(user["MLFLOW_TRACKING_URI"])
    assert model["run_id"] == mlflow.get_model_version(NAME, "2").run_id
    assert chain["data"]["tag"] == "data-v1.1.0" and chain["data"]["tag_exists"]
    # The source it was ingested from and its checksum, as the ingestion announced them.
    versioned = loop.triggering_event(client, train.id)
    assert chain["data"]["checksum"] == versioned.payload["checksum"]
    assert chain["data"]["source"] == versioned.payload["source"]
    assert chain["data"]["source"].endswith("better.csv")
    assert set(chain["data"]["md5"]) >= {"train", "val", "test"}, chain["data"]["md5"]
    assert not chain["data"]["mismatch"]
    runs = {r["step"]: r for r in chain["flow_runs"]}
    assert runs["data-ingestion"]["flow_run_id"] == str(ingest)
    assert runs["model-training"]["flow_run_id"] == str(train.id)
    assert runs["deploy-model"]["flow_run_id"] == str(deploy.id)
    ui = user["PREFECT_API_URL"].removesuffix("/api")
    for run in runs.values():
        assert run["state"] == "COMPLETED" and run["url"].startswith(f"{ui}/runs/flow-run/"), run
        # The UI serves its pages to browsers (a navigation asks for text/html).
        page = httpx.get(run["url"], headers={"Accept": "text/html"}, timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower()
    if docker is None:
        assert chain["image"] is None
        return
    image = chain["image"]
    assert image["reference"].startswith(
        f"{docker['BRIDGEAI_TEST_REGISTRY']}/{namespace}/bridgeai-mlops@sha256:"
    )
    assert "build-model-image" in runs
    # The digest is in the registry.
    manifest = httpx.head(
        f"http://{docker['BRIDGEAI_TEST_REGISTRY']}/v2/{namespace}/bridgeai-mlops/manifests/{image['digest']}",
        auth=(docker["BRIDGEAI_TEST_REGISTRY_USER"], docker["BRIDGEAI_TEST_REGISTRY_PASSWORD"]),
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.oci.image.manifest.v1+json"
        },
        timeout=30,
    )
    assert manifest.status_code == 200, manifest
    assert manifest.headers.get("Docker-Content-Digest") == image["digest"]


def _remove_local_images(docker: dict[str, str], namespace: str) -> None:
    import os

    import docker as docker_sdk

    os.environ.setdefault("DOCKER_HOST", docker["DOCKER_HOST"])
    engine = docker_sdk.DockerClient(base_url=docker["DOCKER_HOST"])
    repository = f"{docker['BRIDGEAI_TEST_REGISTRY']}/{namespace}/bridgeai-mlops"
    for found in engine.images.list(name=repository):
        engine.images.remove(found.id, force=True)
