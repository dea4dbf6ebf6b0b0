"""The InferenceService: rendering (against the original's contract and KServe's schema) and the
create / patch / wait / timeout logic against an in-memory Kubernetes API (kmock).

kmock is the stand-in for a Kubernetes API server, which cannot run here; KServe's controller is
simulated by :class:`tests.support.cluster.FakeKServe` (see its docstring for what it models).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridgeai.deploy import kserve
from bridgeai.deploy.rollout import DeploymentError, DeploymentFailed, deploy
from tests.support.cluster import ISVC, FakeKServe, api_client_for, declare_resources
from tests.support.schemas import validate_inference_service

NS = "bridgeai"
GOOD = "localhost:5000/bridgeai/bridgeai-mlops@sha256:" + "a" * 64
GOOD2 = "localhost:5000/bridgeai/bridgeai-mlops@sha256:" + "b" * 64
BAD = "localhost:5000/bridgeai/bridgeai-mlops@sha256:" + "c" * 64


# -- rendering ------------------------------------------------------------------------------------
def test_render_keeps_the_originals_contract() -> None:
    obj = kserve.render_inference_service(GOOD, namespace=NS, model_version=3)
    assert obj["apiVersion"] == "serving.kserve.io/v1beta1"
    assert obj["kind"] == "InferenceService"
    assert obj["metadata"]["name"] == "house-price"
    assert obj["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": "RawDeployment",
        "serving.kserve.io/disableIngressCreation": "true",
        "serving.kserve.io/disableIstioVirtualHost": "true",
    }
    predictor = obj["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 1)
    assert predictor["serviceAccountName"] == kserve.SERVICE_ACCOUNT
    (container,) = predictor["containers"]
    assert container["name"] == "house-price"
    assert container["image"] == GOOD
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "4", "memory": "5Gi"},
    }
    assert obj["metadata"]["labels"][kserve.MODEL_VERSION_LABEL] == "3"


def test_render_validates_against_kserve_v1beta1_schema() -> None:
    obj = kserve.render_inference_service(GOOD, namespace=NS, model_version="7")
    validate_inference_service(obj)


def test_schema_rejects_what_kserve_would_reject() -> None:
    """The schema is strict enough to fail: unknown fields and wrong types are caught."""
    import jsonschema

    obj = kserve.render_inference_service(GOOD, namespace=NS)
    typo = copy.deepcopy(obj)
    typo["spec"]["predictor"]["minReplica"] = 1  # misspelt field
    with pytest.raises(jsonschema.ValidationError, match="minReplica"):
        validate_inference_service(typo)
    wrong_type = copy.deepcopy(obj)
    wrong_type["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    with pytest.raises(jsonschema.ValidationError):
        validate_inference_service(wrong_type)
    no_predictor = copy.deepcopy(obj)
    del no_predictor["spec"]["predictor"]
    with pytest.raises(jsonschema.ValidationError, match="predictor"):
        validate_inference_service(no_predictor)


@pytest.mark.parametrize(
    "image",
    [
        "localhost:5000/bridgeai/bridgeai-mlops:latest",
        "localhost:5000/bridgeai/bridgeai-mlops:3",
        "localhost:5000/bridgeai/bridgeai-mlops@sha256:abc",
        "localhost:5000/bridgeai/bridgeai-mlops@md5:" + "a" * 64,
    ],
)
def test_render_refuses_images_not_pinned_by_digest(image: str) -> None:
    with pytest.raises(kserve.DeploymentError, match="not pinned by digest"):
        kserve.render_inference_service(image, namespace=NS)


def test_service_url_is_the_raw_predictor_service_on_port_80() -> None:
    assert kserve.service_url("models") == (
        "http://house-price-predictor.models.svc.cluster.local"
        "/v2/models/house_price_prediction_prod/infer"
    )


def test_pull_secret_and_service_account() -> None:
    config = json.dumps({"auths": {"reg:5000": {"username": "u", "password": "p", "auth": "dTpw"}}})
    secret = kserve.render_pull_secret(config, namespace=NS)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert json.loads(base64.b64decode(secret["data"][".dockerconfigjson"])) == json.loads(config)
    account = kserve.render_service_account(namespace=NS)
    assert account["imagePullSecrets"] == [{"name": kserve.PULL_SECRET}]
    assert "imagePullSecrets" not in kserve.render_service_account(namespace=NS, pull_secret=None)


# -- pure status logic ----------------------------------------------------------------------------
def _apply_merge_patch(target: object, patch: object) -> object:
    """RFC 7386 MergePatch, verbatim from the RFC's pseudo-code."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _apply_merge_patch(result.get(key), value)
    return result


_json = st.recursive(
    st.one_of(st.integers(), st.text(max_size=3), st.booleans()),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(st.text(max_size=3), _json, max_size=4),
    st.dictionaries(st.text(max_size=3), _json, max_size=4),
)
def test_merge_patch_turns_old_into_new(old: dict, new: dict) -> None:
    assert _apply_merge_patch(old, kserve.merge_patch(old, new)) == new


def test_ready_needs_the_current_generation() -> None:
    ready = [{"type": "Ready", "status": "True"}]
    assert kserve.isvc_ready({"status": {"conditions": ready}})
    stale = {
        "metadata": {"generation": 3},
        "status": {"observedGeneration": 2, "conditions": ready},
    }
    assert not kserve.isvc_ready(stale)
    stale["status"]["observedGeneration"] = 3
    assert kserve.isvc_ready(stale)
    assert not kserve.isvc_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert not kserve.isvc_ready({})


def test_rollout_complete_needs_the_new_image_available() -> None:
    containers = [{"name": "house-price", "image": GOOD}]
    dep = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}},
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 1,
            "availableReplicas": 1,
        },
    }
    assert not kserve.rollout_complete(dep, GOOD, "house-price")  # old pod still around
    dep["status"]["replicas"] = 1
    assert kserve.rollout_complete(dep, GOOD, "house-price")
    assert not kserve.rollout_complete(dep, GOOD2, "house-price")  # another image
    dep["status"]["availableReplicas"] = 0
    assert not kserve.rollout_complete(dep, GOOD, "house-price")


# -- against the in-memory API --------------------------------------------------------------------
def _isvc(kmock) -> dict:
    return dict(kmock.objects[ISVC, NS, "house-price"].raw)


@pytest.mark.asyncio
async def test_create_then_ready_returns_the_in_cluster_url(kmock) -> None:
    declare_resources(kmock)
    api = api_client_for(kmock)
    desired = kserve.render_inference_service(GOOD, namespace=NS, model_version=1)
    async with FakeKServe(kmock, NS, delay=0.2).running():
        outcome = await asyncio.to_thread(deploy, api, desired, timeout=20, poll_interval=0.05)
    assert outcome.action == "created"
    assert outcome.url == kserve.service_url(NS)
    assert {"type": "Ready", "status": "True"} in outcome.conditions
    stored = _isvc(kmock)
    assert stored["spec"] == desired["spec"]
    assert len(kmock["post", kmock.resource(ISVC)]) == 1
    # The service account exists; without registry credentials it carries no pull secret.
    account = kmock.objects["v1/serviceaccounts", NS, kserve.SERVICE_ACCOUNT].raw
    assert "imagePullSecrets" not in account
    assert not [k for k in kmock.objects if k[0].plural == "secrets"]


@pytest.mark.asyncio
async def test_new_image_is_a_patch_and_waits_for_its_rollout(kmock) -> None:
    declare_resources(kmock)
    api = api_client_for(kmock)
    controller = FakeKServe(kmock, NS, delay=0.4)
    async with controller.running():
        first = kserve.render_inference_service(GOOD, namespace=NS, model_version=1)
        await asyncio.to_thread(deploy, api, first, timeout=20, poll_interval=0.05)
        second = kserve.render_inference_service(GOOD2, namespace=NS, model_version=2)
        outcome = await asyncio.to_thread(deploy, api, second, timeout=20, poll_interval=0.05)
    assert outcome.action == "updated"
    patches = kmock["patch", kmock.resource(ISVC)]
    assert len(patches) == 1
    sent = patches[0].data
    # Only what changed travels: the image and the model-version label.
    assert sent["spec"]["predictor"]["containers"][0]["image"] == GOOD2
    assert sent["metadata"]["labels"] == {kserve.MODEL_VERSION_LABEL: "2"}
    assert "annotations" not in sent["metadata"]
    stored = _isvc(kmock)
    assert stored["spec"]["predictor"]["containers"][0]["image"] == GOOD2
    # It waited for the new generation: the controller (which stops with the block above, after
    # a 0.4 s reconcile delay) had reconciled generation 2 when the deploy returned.
    assert stored["status"]["observedGeneration"] == 2


@pytest.mark.asyncio
async def test_unchanged_spec_sends_no_patch(kmock) -> None:
    declare_resources(kmock)
    api = api_client_for(kmock)
    desired = kserve.render_inference_service(GOOD, namespace=NS, model_version=1)
    async with FakeKServe(kmock, NS, delay=0.1).running():
        await asyncio.to_thread(deploy, api, desired, timeout=20, poll_interval=0.05)
        outcome = await asyncio.to_thread(deploy, api, desired, timeout=20, poll_interval=0.05)
    assert outcome.action == "unchanged"
    assert len(kmock["patch", kmock.resource(ISVC)]) == 0


@pytest.mark.asyncio
async def test_timeout_on_a_new_service_reports_conditions_events_and_pods(kmock) -> None:
    declare_resources(kmock)
    api = api_client_for(kmock)
    desired = kserve.render_inference_service(BAD, namespace=NS)
    async with FakeKServe(kmock, NS, delay=0.1, bad_images={BAD}).running():
        with pytest.raises(DeploymentFailed) as info:
            await asyncio.to_thread(deploy, api, desired, timeout=1.0, poll_interval=0.05)
    failure = info.value
    assert not failure.restored
    assert {"type": "Ready", "status": "False"}.items() <= failure.conditions[-1].items()
    message = str(failure)
    assert "Ready=False (ImagePullBackOff: predictor pods are not ready" in message
    assert "ImagePullBackOff" in "\n".join(failure.pods)
    assert any("Failed to pull image" in e for e in failure.events)
    assert not any("unrelated" in e for e in failure.events)
    assert "no previous revision to restore" in message


@pytest.mark.asyncio
async def test_failed_update_restores_the_previous_spec_which_keeps_serving(kmock) -> None:
    declare_resources(kmock)
    api = api_client_for(kmock)
    controller = FakeKServe(kmock, NS, delay=0.1, bad_images={BAD})
    async with controller.running():
        good = kserve.render_inference_service(GOOD, namespace=NS, model_version=1)
        await asyncio.to_thread(deploy, api, good, timeout=20, poll_interval=0.05)
        bad = kserve.render_inference_service(BAD, namespace=NS, model_version=2)
        with pytest.raises(DeploymentFailed) as info:
            await asyncio.to_thread(deploy, api, bad, timeout=1.0, poll_interval=0.05)
        # Ready stayed True (the old pod serves), so only the rollout check caught it.
        assert {"type": "Ready", "status": "True"}.items() <= info.value.conditions[-1].items()
        assert info.value.restored
        assert "previous revision keeps serving" in str(info.value)
        stored = _isvc(kmock)
        assert stored["spec"]["predictor"]["containers"][0]["image"] == GOOD
        assert kserve.MODEL_VERSION_LABEL in stored["metadata"]["labels"]
        assert stored["metadata"]["labels"][kserve.MODEL_VERSION_LABEL] == "1"
        # And the restored spec rolls back to ready.
        again = await asyncio.to_thread(deploy, api, good, timeout=20, poll_interval=0.05)
    assert again.action == "unchanged"


@pytest.mark.asyncio
async def test_registry_credentials_become_a_pull_secret_on_the_service_account(kmock) -> None:
    declare_resources(kmock)
    api = api_client_for(kmock)
    config = json.dumps({"auths": {"localhost:5000": {"username": "u", "password": "p"}}})
    desired = kserve.render_inference_service(GOOD, namespace=NS)
    async with FakeKServe(kmock, NS, delay=0.1).running():
        await asyncio.to_thread(
            deploy, api, desired, docker_config_json=config, timeout=20, poll_interval=0.05
        )
        # A second deploy finds both objects (409) and updates them instead of failing.
        await asyncio.to_thread(
            deploy, api, desired, docker_config_json=config, timeout=20, poll_interval=0.05
        )
    secret = kmock.objects["v1/secrets", NS, kserve.PULL_SECRET].raw
    assert json.loads(base64.b64decode(secret["data"][".dockerconfigjson"])) == json.loads(config)
    account = kmock.objects["v1/serviceaccounts", NS, kserve.SERVICE_ACCOUNT].raw
    assert account["imagePullSecrets"] == [{"name": kserve.PULL_SECRET}]
    assert len(kmock["patch", kmock.resource("v1/secrets")]) == 1


@pytest.mark.asyncio
async def test_forbidden_says_which_object_and_points_at_rbac(kmock) -> None:
    declare_resources(kmock)
    kmock["post", kmock.resource(ISVC)] << 403
    api = api_client_for(kmock)
    desired = kserve.render_inference_service(GOOD, namespace=NS)
    with pytest.raises(DeploymentError, match=r"inferenceservice/house-price.*403.*RBAC"):
        await asyncio.to_thread(deploy, api, desired, timeout=1, poll_interval=0.05)


# -- autoscaling (docs/scaling.md) ----------------------------------------------------------------
def test_default_scaling_renders_the_originals_one_replica_and_no_autoscaler() -> None:
    default = kserve.render_inference_service(GOOD, namespace=NS, model_version=3)
    explicit = kserve.render_inference_service(
        GOOD, namespace=NS, model_version=3, min_replicas=1, max_replicas=1
    )
    assert json.dumps(explicit, sort_keys=True) == json.dumps(default, sort_keys=True)
    predictor = default["spec"]["predictor"]
    assert "scaleMetric" not in predictor and "scaleTarget" not in predictor
    assert kserve.AUTOSCALER_ANNOTATION not in default["metadata"]["annotations"]


def test_fixed_replicas_above_one_render_without_an_autoscaler() -> None:
    obj = kserve.render_inference_service(GOOD, namespace=NS, min_replicas=3, max_replicas=3)
    predictor = obj["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (3, 3)
    assert "scaleMetric" not in predictor
    validate_inference_service(obj)


@pytest.mark.parametrize("metric,target", [("cpu", 80), ("memory", 60)])
def test_autoscaling_renders_kserves_hpa_fields_and_validates(metric: str, target: int) -> None:
    obj = kserve.render_inference_service(
        GOOD, namespace=NS, min_replicas=2, max_replicas=10, scale_metric=metric,
        scale_target=target,
    )  # fmt: skip
    predictor = obj["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 10)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == (metric, target)
    annotations = obj["metadata"]["annotations"]
    assert annotations[kserve.AUTOSCALER_ANNOTATION] == "hpa"
    assert annotations["serving.kserve.io/deploymentMode"] == "RawDeployment"
    validate_inference_service(obj)


def test_a_misspelt_scaling_field_fails_the_schema() -> None:
    import jsonschema

    obj = kserve.render_inference_service(GOOD, namespace=NS, max_replicas=4)
    obj["spec"]["predictor"]["scaleTargets"] = obj["spec"]["predictor"].pop("scaleTarget")
    with pytest.raises(jsonschema.ValidationError, match="scaleTargets"):
        validate_inference_service(obj)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"min_replicas": 0}, "min_replicas must be at least 1"),
        ({"min_replicas": 3, "max_replicas": 2}, r"max_replicas \(2\) must be at least"),
        ({"max_replicas": 4, "scale_metric": "rps"}, "scale_metric must be one of cpu, memory"),
        ({"max_replicas": 4, "scale_target": 0}, "percent"),
        ({"max_replicas": 4, "scale_target": 150}, "percent"),
    ],
)
def test_invalid_scaling_is_refused_with_what_to_fix(kwargs: dict, message: str) -> None:
    with pytest.raises(kserve.DeploymentError, match=message):
        kserve.render_inference_service(GOOD, namespace=NS, **kwargs)


def test_turning_autoscaling_off_patches_its_fields_away() -> None:
    scaled = kserve.render_inference_service(GOOD, namespace=NS, max_replicas=5)
    fixed = kserve.render_inference_service(GOOD, namespace=NS)
    patch = kserve.merge_patch(scaled, fixed)
    assert patch["spec"]["predictor"]["scaleMetric"] is None
    assert patch["spec"]["predictor"]["scaleTarget"] is None
    assert patch["spec"]["predictor"]["maxReplicas"] == 1
    assert patch["metadata"]["annotations"] == {kserve.AUTOSCALER_ANNOTATION: None}
