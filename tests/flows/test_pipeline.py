"""The pipeline in local-stack mode: `bridgeai up`, `prefect deploy --all`, a run through the API.

This is the user's path with the stack: every deployment of prefect.yaml registered on both pools
of a real Prefect server, then an ``mlops-pipeline/local`` run triggered through the API and
executed by the stack's process worker against SeaweedFS and the MLflow server, its subflows
forming the tree the UI shows.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.support.env import REPO_ROOT
from tests.support.stack import BIN, cli, exported, stack_env
from tests.support.stack import up as stack_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEMPLATE = REPO_ROOT / "deployments" / "work-pools" / "kubernetes.json"
STAGES = {"data-ingestion", "model-training", "deploy-model", "drift-monitoring"}


def _run(argv: list[str], env: dict[str, str], timeout: float = 600) -> None:
    result = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{' '.join(argv)}:\n{(result.stdout + result.stderr)[-4000:]}"


def test_every_deployment_registers_and_the_pipeline_runs_on_the_local_worker(
    tmp_path: Path, shared_data: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path / "home"
    # The worker inherits this environment from `bridgeai up`: the data source is the user's.
    env = stack_env(home, BRIDGEAI_DATA_SOURCE=str(shared_data / "HousingData.csv"))
    try:
        up = stack_up(env)  # retried on new ports if another process takes one meanwhile
        assert up.returncode == 0, up.stdout + up.stderr
        user = exported(env)
        _run(["bash", str(REPO_ROOT / "deployments/work-pools/create-pools.sh")],
             {**user, "PREFECT": str(BIN / "prefect")})  # fmt: skip
        _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], user)

        expected = {
            (d["entrypoint"], d["name"])
            for d in yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]
        }
        api = temporary_settings({PREFECT_API_URL: user["PREFECT_API_URL"]})
        with api, get_client(sync_client=True) as client:
            assert client.read_work_pool("local").type == "process"
            kind = client.read_work_pool("kind")
            assert kind.type == "kubernetes"
            assert kind.base_job_template == json.loads(TEMPLATE.read_text())
            deployments = client.read_deployments()
            assert {(d.entrypoint, d.name) for d in deployments} == expected
            for deployment in deployments:
                assert deployment.work_pool_name == deployment.name  # local/local, kind/kind
                assert not any(s.active for s in deployment.schedules), deployment.name
                properties = deployment.parameter_openapi_schema["properties"]
                undescribed = [k for k, v in properties.items() if not v.get("description")]
                assert not undescribed, f"{deployment.name}: {undescribed}"
            # The loop's six automations exist, each for one pool, and none is on.
            automations = {a.name: a for a in client.read_automations()}
            loop = {n for n in automations if n.startswith("bridgeai-")}
            assert loop == {
                f"bridgeai-{what}-{pool}"
                for what in (
                    "train-on-new-data",
                    "deploy-on-promotion",
                    "alert-on-production-drift",
                )
                for pool in ("local", "kind")
            }
            assert not any(automations[n].enabled for n in loop)

            pipeline = next(
                d
                for d in deployments
                if d.entrypoint == "flows/pipeline.py:mlops_pipeline" and d.name == "local"
            )
            run = client.create_flow_run_from_deployment(
                pipeline.id, parameters={"build_image": "never"}
            )
            deadline = time.monotonic() + 900
            state = client.read_flow_run(run.id).state
            while time.monotonic() < deadline and not (state and state.is_final()):
                time.sleep(3)
                state = client.read_flow_run(run.id).state
            worker_log = (home / "stack" / "logs" / "prefect-worker.log").read_text()[-6000:]
            assert state is not None and state.is_completed(), f"{state}\n{worker_log}"

            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])
                )
            )
            flows = {f.id: f.name for f in client.read_flows()}
            stages = {flows[child.flow_id] for child in children}
            assert stages >= STAGES, stages
            assert all(child.state and child.state.is_completed() for child in children)

        # The run used the stack: its model is in the MLflow server, its report in SeaweedFS.
        from mlflow import MlflowClient

        champion = MlflowClient(user["MLFLOW_TRACKING_URI"]).get_model_version_by_alias(
            "house_price_prediction_prod", "champion"
        )
        assert str(champion.version) == "1"
        assert champion.tags["data_version"] == "data-v1.0.0"
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=user["AWS_ENDPOINT_URL"],
            aws_access_key_id=user["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=user["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        reports = s3.list_objects_v2(Bucket="evidently-reports").get("Contents", [])
        assert any(o["Key"].startswith("report_") and o["Key"].endswith(".html") for o in reports)
    finally:
        down = cli(env, "down")
    assert down.returncode == 0, down.stderr
    assert "model-server: stopped" in down.stdout
    assert "prediction-service: stopped" in down.stdout
