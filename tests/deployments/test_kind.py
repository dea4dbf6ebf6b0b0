"""The Kind bootstrap, validated offline (no cluster can run here).

* Every manifest we write, and every object the deploy flow renders, validates with
  kubernetes-validate --strict at the pinned Kubernetes version.
* Helm charts are NOT rendered (no helm binary, no chart sources offline): what we can check is
  that each values fragment that becomes a Kubernetes field validates against that field's
  schema, and that versions are pinned.
* The scripts pass ``bash -n`` and shellcheck, and their logic is exercised with stand-in
  ``kind``/``docker`` commands on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridgeai.deploy import kserve
from tests.support.env import REPO_ROOT, require
from tests.support.schemas import (
    KUBERNETES_VERSION,
    validate_definition,
    validate_inference_service,
    validate_k8s,
)

REPO = REPO_ROOT
KIND = REPO / "deployments" / "kind"
SCRIPTS = sorted((REPO / "deployments").rglob("*.sh"))
MANIFESTS = sorted((KIND / "manifests").glob("*.yaml"))


def versions() -> dict[str, str]:
    out = {}
    for line in (KIND / "versions.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value.strip('"')
    return out


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def values(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((KIND / "values" / f"{name}.yaml").read_text()))


# -- manifests and rendered objects ---------------------------------------------------------
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_strictly(path: Path) -> None:
    objects = docs(path)
    assert objects
    for obj in objects:
        assert validate_k8s(obj) == KUBERNETES_VERSION.rsplit(".", 1)[0]


def test_strict_validation_can_fail() -> None:
    import kubernetes_validate

    (deployment, _) = docs(KIND / "manifests" / "mlflow.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolicyy"):
        validate_k8s(deployment)


def test_objects_the_deploy_flow_renders_validate() -> None:
    image = "localhost:5000/bridgeai/bridgeai-mlops@sha256:" + "e" * 64
    validate_inference_service(kserve.render_inference_service(image, namespace="bridgeai"))
    validate_k8s(kserve.render_pull_secret('{"auths": {}}', namespace="bridgeai"))
    validate_k8s(kserve.render_service_account(namespace="bridgeai"))


def test_the_inference_service_container_validates_as_a_kubernetes_container() -> None:
    image = "localhost:5000/bridgeai/bridgeai-mlops@sha256:" + "e" * 64
    isvc = kserve.render_inference_service(image, namespace="bridgeai")
    (container,) = isvc["spec"]["predictor"]["containers"]
    validate_definition("io.k8s.api.core.v1.Container", container)


# -- Helm values (not rendered: fragments validated against the fields they become) ----------
FRAGMENTS = [
    ("ingress-nginx", ("controller", "resources"), "io.k8s.api.core.v1.ResourceRequirements"),
    ("ingress-nginx", ("controller", "tolerations"), "io.k8s.api.core.v1.Toleration[]"),
    ("ingress-nginx", ("controller", "updateStrategy"), "io.k8s.api.apps.v1.DeploymentStrategy"),
    ("cert-manager", ("resources",), "io.k8s.api.core.v1.ResourceRequirements"),
    ("kserve", ("kserve", "controller", "resources"), "io.k8s.api.core.v1.ResourceRequirements"),
    ("minio", ("resources",), "io.k8s.api.core.v1.ResourceRequirements"),
    ("prefect-server", ("server", "resources"), "io.k8s.api.core.v1.ResourceRequirements"),
    ("prefect-server", ("server", "env"), "io.k8s.api.core.v1.EnvVar[]"),
    ("prefect-worker", ("worker", "resources"), "io.k8s.api.core.v1.ResourceRequirements"),
    ("prefect-worker", ("worker", "extraEnvVars"), "io.k8s.api.core.v1.EnvVar[]"),
]  # fmt: skip


@pytest.mark.parametrize("name,path,definition", FRAGMENTS, ids=lambda x: str(x))
def test_values_fragment_validates_as_its_kubernetes_field(
    name: str, path: tuple[str, ...], definition: str
) -> None:
    node: Any = values(name)
    for key in path:
        node = node[key]
    if definition.endswith("[]"):
        assert isinstance(node, list) and node
        for item in node:
            validate_definition(definition[:-2], item)
    else:
        validate_definition(definition, node)


def test_values_say_what_the_issue_asks() -> None:
    assert {b["name"] for b in values("minio")["buckets"]} == {
        "artifacts",
        "evidently-reports",
        "mlflow",
    }
    assert values("kserve")["kserve"]["controller"]["deploymentMode"] == "RawDeployment"
    worker = values("prefect-worker")["worker"]
    assert worker["config"] == {"workPool": "kind", "type": "kubernetes"}
    assert worker["image"]["prefectTag"].startswith("3.9.1-")
    assert values("prefect-server")["server"]["image"]["prefectTag"].startswith("3.9.1-")


def test_versions_are_pinned_and_consistent() -> None:
    pinned = versions()
    for key, value in pinned.items():
        if key.startswith("CHART_"):
            repo, chart, version = value.split("|")
            assert repo and chart and re.fullmatch(r"v?\d+\.\d+\.\d+", version), key
    cluster = yaml.safe_load((KIND / "cluster.yaml").read_text())
    assert cluster["nodes"][0]["image"] == pinned["KIND_NODE_IMAGE"]
    assert pinned["KIND_NODE_IMAGE"].endswith("v" + pinned["KUBERNETES_VERSION"])
    # Manifests are validated against the cluster's Kubernetes minor version.
    assert pinned["KUBERNETES_VERSION"].rsplit(".", 1)[0] == KUBERNETES_VERSION.rsplit(".", 1)[0]
    (statefulset,) = [
        d for d in docs(KIND / "manifests" / "postgres.yaml") if d["kind"] == "StatefulSet"
    ]
    assert (
        statefulset["spec"]["template"]["spec"]["containers"][0]["image"]
        == pinned["POSTGRES_IMAGE"]
    )


def test_cluster_maps_the_originals_ports_and_registry() -> None:
    cluster = yaml.safe_load((KIND / "cluster.yaml").read_text())
    mappings = {
        (m["containerPort"], m["hostPort"]) for m in cluster["nodes"][0]["extraPortMappings"]
    }
    assert mappings == {(80, 3080), (443, 3443)}
    assert 'config_path = "/etc/containerd/certs.d"' in cluster["containerdConfigPatches"][0]
    registry = docs(KIND / "manifests" / "local-registry-hosting.yaml")[0]
    assert 'host: "localhost:5000"' in registry["data"]["localRegistryHosting.v1"]


# -- secrets: referenced, created from the environment, never written -------------------------
def _secret_refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("secretKeyRef")
        if isinstance(ref, dict) and not ref.get("optional"):
            found.add(ref["name"])
        for value in node.values():
            found |= _secret_refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _secret_refs(value)
    return found


def test_every_required_secret_is_created_by_up_sh() -> None:
    import json

    referenced: set[str] = set()
    for path in MANIFESTS:
        for obj in docs(path):
            referenced |= _secret_refs(obj)
    template = json.loads((REPO / "deployments/work-pools/kubernetes.json").read_text())
    referenced |= _secret_refs(template)
    referenced.add(values("minio")["existingSecret"])
    referenced.add(values("prefect-server")["secret"]["name"])
    created = set(re.findall(r"apply_secret (\S+)", (KIND / "up.sh").read_text()))
    assert referenced <= created, referenced - created


def test_no_secret_values_in_manifests_or_values() -> None:
    for path in [*MANIFESTS, *(KIND / "values").glob("*.yaml")]:
        for obj in docs(path):
            assert obj.get("kind") != "Secret", f"{path.name} writes a Secret"
            _no_literal_secrets(obj, path.name)


def _no_literal_secrets(node: Any, where: str) -> None:
    if isinstance(node, dict):
        name = str(node.get("name", ""))
        if re.search(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN", name) and "value" in node:
            raise AssertionError(f"{where}: {name} has a literal value")
        for key, value in node.items():
            if re.search(r"(?i)^(password|secretKey|rootPassword|accessKey|token)$", key):
                raise AssertionError(f"{where}: literal {key}")
            _no_literal_secrets(value, where)
    elif isinstance(node, list):
        for value in node:
            _no_literal_secrets(value, where)


def test_flow_runner_image_builds_offline_and_puts_the_flows_where_prefect_yaml_looks() -> None:
    from bridgeai.ops import flow_runner

    dockerfile = (REPO / "deployments/docker/flow-runner.Dockerfile").read_text()
    assert "WORKDIR /opt/bridgeai" in dockerfile
    assert "COPY app/ /opt/bridgeai/" in dockerfile
    # build-model-image finds its Dockerfile template and base image through these.
    assert "BRIDGEAI_MODEL_IMAGE_DIR=/opt/bridgeai/deployments/model-image" in dockerfile
    assert set(flow_runner._APP_FILES) == {
        "flows", "blocks", "prefect.yaml", "deployments/model-image"
    }  # fmt: skip
    # Nothing in it reaches a network: only wheels from the context, no index, no apt.
    steps = "\n".join(line for line in dockerfile.splitlines() if not line.startswith("#"))
    for forbidden in ("apt-get", "curl", "wget", "uv sync", "pip install uv"):
        assert forbidden not in steps
    installs = re.findall(r"pip install[^&]*", steps)
    assert installs and all("--no-index" in i for i in installs)
    assert re.search(r"^USER \d+", dockerfile, re.M)
    prefect_yaml = yaml.safe_load((REPO / "prefect.yaml").read_text())
    steps = prefect_yaml["definitions"]["pull"]["kind"]
    assert (
        steps[0]["prefect.deployments.steps.set_working_directory"]["directory"] == "/opt/bridgeai"
    )


def test_kind_deployments_build_and_pin_the_flow_runner_image_local_ones_do_not() -> None:
    prefect_yaml = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert prefect_yaml["build"] is None and prefect_yaml["push"] is None
    for deployment in prefect_yaml["deployments"]:
        if deployment["work_pool"]["name"] == "local":
            assert "build" not in deployment and "push" not in deployment
            continue
        (build,) = deployment["build"]
        (push,) = deployment["push"]
        assert build["bridgeai.ops.flow_runner.build_flow_runner_image"]["enabled"] == (
            "{{ $BRIDGEAI_FLOW_RUNNER_BUILD }}"
        )
        assert push["bridgeai.ops.flow_runner.push_flow_runner_image"]["id"] == "flow-runner-push"
        assert deployment["work_pool"]["job_variables"]["image"] == "{{ flow-runner-push.image }}"


def test_the_build_step_without_its_switch_builds_nothing_and_keeps_the_pools_image() -> None:
    import json

    from bridgeai.ops import flow_runner

    template = json.loads((REPO / "deployments/work-pools/kubernetes.json").read_text())
    assert template["variables"]["properties"]["image"]["default"] == flow_runner.DEFAULT_IMAGE
    out = flow_runner.build_flow_runner_image(enabled="")
    assert out == {"image": flow_runner.DEFAULT_IMAGE, "built": False}
    pushed = flow_runner.push_flow_runner_image(image=out["image"], built=out["built"])
    assert pushed == {"image": flow_runner.DEFAULT_IMAGE}


def test_the_flow_runner_carries_exactly_the_locked_runtime_dependencies() -> None:
    """The wheels repacked for the image are uv.lock's non-dev packages for Linux, no more."""
    import shutil

    from packaging.requirements import Requirement

    from bridgeai.ops import flow_runner

    uv = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    require(Path(uv).exists(), "uv (make sync installs it)")
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--no-header"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    locked = {}
    for line in exported.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line.strip())
            if requirement.marker is None or requirement.marker.evaluate():
                locked[re.sub(r"[-_.]+", "-", requirement.name).lower()] = str(
                    requirement.specifier
                ).removeprefix("==")
    image = {
        re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version
        for d in flow_runner.runtime_distributions()
    }
    assert image == locked
    assert not {"pytest", "kmock", "ruff", "mypy", "playwright"} & set(image)


def test_configure_blocks_saves_in_cluster_endpoints_and_only_our_codes_secrets(
    prefect_harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from blocks import (
        ContainerRegistry,
        DataRepository,
        MLflowServer,
        ObjectStorage,
        PredictionDatabase,
    )

    spec = importlib.util.spec_from_file_location("configure_blocks", KIND / "configure_blocks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.delenv("BRIDGEAI_GIT_TOKEN", raising=False)
    assert module.main(["--name", "kind-test"]) == 2  # no git token: refuses, saves nothing
    monkeypatch.setenv("BRIDGEAI_GIT_TOKEN", "git-token-1")
    monkeypatch.delenv("BRIDGEAI_REGISTRY_USERNAME", raising=False)
    # Not the default name: the session's API is shared, and "bridgeai" must stay unsaved there.
    assert module.main(["--name", "kind-test"]) == 0
    storage = ObjectStorage.load("kind-test")
    assert storage.endpoint_url == "http://minio.bridgeai.svc.cluster.local:9000"
    assert storage.secret_access_key is None and storage.access_key_id is None
    assert MLflowServer.load("kind-test").tracking_uri.endswith(".svc.cluster.local:5000/mlflow")
    registry = ContainerRegistry.load("kind-test")
    assert registry.password is None and registry.server == "localhost:5000"
    assert registry.api_server == "kind-registry:5000"
    repository = DataRepository.load("kind-test")
    assert repository.url == "http://git.bridgeai.svc.cluster.local/data.git"
    assert repository.token.get_secret_value() == "git-token-1"
    database = PredictionDatabase.load("kind-test")
    assert (
        database.url == "postgresql://bridgeai@postgres.bridgeai.svc.cluster.local:5432/predictions"
    )
    assert database.password is None  # PGPASSWORD, from the Secret bridgeai-postgres


# -- scripts --------------------------------------------------------------------------------
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_syntax_and_shellcheck(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
    shellcheck = shutil.which("shellcheck")
    require(shellcheck is not None, "shellcheck")
    result = subprocess.run(
        [str(shellcheck), "-x", str(script)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "$STUB_LOG"\n{body}\n')
    path.chmod(0o755)


def _run_with_stubs(script: Path, tmp_path: Path, stubs: dict[str, str], *args: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in stubs.items():
        _stub(bin_dir, name, body)
    log = tmp_path / "calls.log"
    log.touch()
    # Only the stubs and the basic utilities: the real kind/docker/helm must not be found.
    path = f"{bin_dir}:/usr/bin:/bin"
    env = {
        "PATH": path,
        "STUB_LOG": str(log),
        "HOME": str(tmp_path),
        "BRIDGEAI_HOME": str(tmp_path),
    }
    result = subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=60
    )
    return result, log.read_text().splitlines()


def test_down_deletes_only_an_existing_cluster(tmp_path: Path) -> None:
    script = KIND / "down.sh"
    result, calls = _run_with_stubs(
        script, tmp_path / "a", {"kind": '[ "$1" = get ] && echo bridgeai; exit 0'}
    )
    assert result.returncode == 0, result.stderr
    assert "kind delete cluster --name bridgeai" in calls
    result, calls = _run_with_stubs(script, tmp_path / "b", {"kind": "exit 0"})
    assert result.returncode == 0 and "no kind cluster named 'bridgeai'" in result.stdout
    assert not any("delete" in c for c in calls)
    result, _ = _run_with_stubs(script, tmp_path / "c", {"kind": "exit 0"}, "--bogus")
    assert result.returncode == 2 and "unknown option" in result.stderr


def test_up_stops_early_with_a_clear_message_when_a_tool_is_missing(tmp_path: Path) -> None:
    if any(Path(d, "kind").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("a real kind is installed system-wide")
    result, calls = _run_with_stubs(KIND / "up.sh", tmp_path, {"docker": "exit 0"})
    assert result.returncode == 1
    assert "kind is not installed" in result.stderr
    assert calls == []  # nothing was started


def test_up_refuses_without_a_docker_daemon(tmp_path: Path) -> None:
    stubs = {"docker": "exit 1", "kind": "exit 0", "kubectl": "exit 0", "helm": "exit 0"}
    result, calls = _run_with_stubs(KIND / "up.sh", tmp_path, stubs)
    assert result.returncode == 1
    assert "Docker daemon is not reachable" in result.stderr
    assert calls == ["docker info"]


def test_create_pools_rejects_unknown_pools(tmp_path: Path) -> None:
    result, calls = _run_with_stubs(
        REPO / "deployments/work-pools/create-pools.sh", tmp_path, {"prefect": "exit 0"}, "nope"
    )
    assert result.returncode == 2 and "unknown pool" in result.stderr
    result, calls = _run_with_stubs(
        REPO / "deployments/work-pools/create-pools.sh", tmp_path / "x", {"prefect": "exit 0"}
    )
    assert result.returncode == 0
    assert calls[0] == "prefect --no-prompt work-pool create local --type process --overwrite"
    assert calls[1].startswith("prefect --no-prompt work-pool create kind --type kubernetes")
    assert os.fspath(REPO / "deployments/work-pools/kubernetes.json") in calls[1]


# -- autoscaling (docs/scaling.md) ----------------------------------------------------------------
def test_prediction_service_hpa_scales_its_workload_on_cpu_requests() -> None:
    (hpa,) = docs(KIND / "manifests" / "prediction-service-hpa.yaml")
    (workload,) = [
        d
        for d in docs(KIND / "manifests" / "prediction-service.yaml")
        if d["kind"] in ("Deployment", "StatefulSet")
    ]
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["kind"] == "HorizontalPodAutoscaler"
    target = hpa["spec"]["scaleTargetRef"]
    # The service's workload, a StatefulSet (one spool volume per replica), by kind and name.
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "StatefulSet",
        "prediction-service",
    )
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        workload["apiVersion"],
        workload["kind"],
        workload["metadata"]["name"],
    )
    assert hpa["metadata"]["namespace"] == workload["metadata"]["namespace"]
    # A scale-down keeps the removed replicas' spool volumes (their unflushed rows wait there).
    assert workload["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    # Today's behaviour by default: one replica.
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 1)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # Utilisation is relative to the pods' requests: without one the HPA cannot compute it.
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"]


def _hpa_patch_block() -> str:
    text = (KIND / "up.sh").read_text()
    assert 'kubectl apply -f "$here/manifests/prediction-service-hpa.yaml"' in text
    start = text.index('if [ -n "${BRIDGEAI_PREDICTION_MIN_REPLICAS')
    return text[start : text.index("\nfi\n", start) + 4]


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"BRIDGEAI_PREDICTION_MAX_REPLICAS": "8"}, (1, 8)),
        (
            {"BRIDGEAI_PREDICTION_MIN_REPLICAS": "2", "BRIDGEAI_PREDICTION_MAX_REPLICAS": "6"},
            (2, 6),
        ),
        ({}, None),
    ],
)
def test_up_sh_sets_the_hpa_replicas_from_the_environment(
    env: dict[str, str], expected: tuple[int, int] | None
) -> None:
    import json

    script = 'kubectl() { printf "%s\\n" "$@"; }\nnamespace=bridgeai\n' + _hpa_patch_block()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGEAI_PREDICTION_")}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    args = proc.stdout.splitlines()
    if expected is None:
        assert args == []
        return
    assert args[:5] == ["-n", "bridgeai", "patch", "hpa", "prediction-service"]
    patch = json.loads(args[args.index("-p") + 1])
    assert (patch["spec"]["minReplicas"], patch["spec"]["maxReplicas"]) == expected
    (hpa,) = docs(KIND / "manifests" / "prediction-service-hpa.yaml")
    hpa["spec"].update(patch["spec"])
    validate_k8s(hpa)
