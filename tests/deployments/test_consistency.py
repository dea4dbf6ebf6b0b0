"""Cluster configuration that cannot drift apart again.

* every ``BRIDGEAI_*`` variable a template or manifest under ``deployments/`` sets is read by our
  code (a string our code uses, or a field of one of our pydantic-settings classes);
* every other variable it sets is on a short list of ones a library or an image reads;
* every variable and block the code needs in cluster mode is set (template, manifests, image) or
  saved (``configure_blocks.py``), and every Secret key anything asks for is created by ``up.sh``,
  which creates no Secret nobody reads.

(The ``BRIDGEAI_PREDICTIONS_DATABASE_URL`` and ``BRIDGEAI_REGISTRY_USERNAME/PASSWORD`` that the
work-pool template once set, and that nothing read, are what the first rule catches.)
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deployment_config import (
    DEPLOYMENTS,
    TEMPLATE,
    VALUES,
    env_entries,
    secret_refs,
    secrets_created,
    variables_set,
)
from tests.support.env import REPO_ROOT

FLOW_RUNNER_DOCKERFILE = DEPLOYMENTS / "docker" / "flow-runner.Dockerfile"

#: Variables our templates may set for a library or an image to read, and who reads them.
LIBRARY_VARIABLES = {
    "AWS_ACCESS_KEY_ID": "boto3, s3fs, DVC",
    "AWS_SECRET_ACCESS_KEY": "boto3, s3fs, DVC",
    "AWS_DEFAULT_REGION": "boto3",
    "MLFLOW_TRACKING_USERNAME": "mlflow",
    "MLFLOW_TRACKING_PASSWORD": "mlflow",
    "MLFLOW_S3_ENDPOINT_URL": "mlflow (artifact proxy)",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "mlflow server",
    "PGPASSWORD": "libpq (psycopg)",
    "POSTGRES_USER": "the postgres image",
    "POSTGRES_PASSWORD": "the postgres image",
    "PGDATA": "the postgres image",
    "PREFECT_API_URL": "prefect",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "prefect server",
    "PREFECT_WORKER_ENABLE_CANCELLATION": "prefect worker",
    "PREFECT_WORKER_CANCELLATION_POLL_SECONDS": "prefect worker",
    "DOCKER_HOST": "the docker SDK",
}

#: Where a block field the cluster's blocks leave empty is read from instead.
SECRET_FALLBACKS = {
    ("ObjectStorage", "access_key_id"): "AWS_ACCESS_KEY_ID",
    ("ObjectStorage", "secret_access_key"): "AWS_SECRET_ACCESS_KEY",
    ("MLflowServer", "username"): "MLFLOW_TRACKING_USERNAME",
    ("MLflowServer", "password"): "MLFLOW_TRACKING_PASSWORD",
    ("PredictionDatabase", "password"): "PGPASSWORD",
}

#: A flow parameter naming a block -> the block's class.
BLOCK_PARAMETERS = {
    "storage_block": "ObjectStorage",
    "mlflow_block": "MLflowServer",
    "registry_block": "ContainerRegistry",
    "repository_block": "DataRepository",
    "database_block": "PredictionDatabase",
}
#: Block parameters whose block is the user's choice of type, saved by hand: (default, the doc
#: that says how to save it).
USER_BLOCK_PARAMETERS = {"notification_block": ("bridgeai-alerts", "docs/kind.md")}


# -- what our code reads ------------------------------------------------------------------------
def _python_files() -> list[Path]:
    roots = [REPO_ROOT / "src" / "bridgeai", REPO_ROOT / "flows", REPO_ROOT / "blocks"]
    files = [p for root in roots for p in root.rglob("*.py")]
    return files + sorted(DEPLOYMENTS.rglob("*.py"))


def _code_strings(path: Path) -> set[str]:
    """String constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    }  # fmt: skip


def _settings_variables() -> set[str]:
    """``<env_prefix><FIELD>`` of every pydantic-settings class in the library."""
    from pydantic_settings import BaseSettings

    names: set[str] = set()
    for path in (REPO_ROOT / "src" / "bridgeai").rglob("*.py"):
        if "BaseSettings" not in path.read_text():
            continue
        relative = path.relative_to(REPO_ROOT / "src").with_suffix("")
        module = importlib.import_module(".".join(relative.parts))
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseSettings) and cls is not BaseSettings:
                prefix = cls.model_config.get("env_prefix", "")
                names |= {(prefix + field).upper() for field in cls.model_fields}
    return names


def variables_read() -> set[str]:
    strings: set[str] = set()
    for path in _python_files():
        strings |= _code_strings(path)
    return {s for s in strings if re.fullmatch(r"[A-Z][A-Z0-9_]+", s)} | _settings_variables()


# -- the rules --------------------------------------------------------------------------------
def test_every_bridgeai_variable_set_is_read_by_our_code() -> None:
    read = variables_read()
    unread = {
        name: sorted(where)
        for name, where in variables_set().items()
        if name.startswith("BRIDGEAI_") and name not in read
    }
    assert not unread, f"set by deployments but read by nothing: {unread}"


def test_every_other_variable_set_is_one_a_library_reads() -> None:
    unknown = {
        name: sorted(where)
        for name, where in variables_set().items()
        if not name.startswith("BRIDGEAI_") and name not in LIBRARY_VARIABLES
    }
    assert not unknown, f"set by deployments, not a BRIDGEAI_ or known library variable: {unknown}"


def test_the_rules_catch_the_variables_that_once_drifted() -> None:
    read = variables_read()
    assert "BRIDGEAI_PREDICTIONS_DATABASE_URL" not in read
    for drifted in ("BRIDGEAI_PREDICTIONS_DATABASE_URL", "BRIDGEAI_REGISTRY_PASSWORD"):
        assert drifted not in variables_set()
    # The registry's credentials reach the ContainerRegistry block from up.sh's environment.
    assert "BRIDGEAI_REGISTRY_PASSWORD" in _code_strings(DEPLOYMENTS / "kind/configure_blocks.py")
    assert {"BRIDGEAI_DATABASE_URL", "BRIDGEAI_MODEL_URL", "BRIDGEAI_HOME"} <= read
    assert {"BRIDGEAI_GIT_TOKEN", "BRIDGEAI_GIT_USERNAME"} <= read  # the git server's settings


def test_every_secret_key_asked_for_is_created_by_up_sh() -> None:
    created = secrets_created()
    missing = {(name, key) for name, key in secret_refs() if key not in created.get(name, set())}
    assert not missing, f"secretKeyRefs up.sh does not create: {sorted(missing)}"


def test_up_sh_creates_no_secret_nobody_reads() -> None:
    referenced = {name for name, _ in secret_refs()}
    values = {p.stem: yaml.safe_load(p.read_text()) for p in VALUES}
    referenced.add(values["minio"]["existingSecret"])
    referenced.add(values["prefect-server"]["secret"]["name"])
    orphans = set(secrets_created()) - referenced
    assert not orphans, f"up.sh creates Secrets nothing reads: {orphans}"


def _kind_flows() -> list[Any]:
    prefect_yaml = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    flows = []
    for deployment in prefect_yaml["deployments"]:
        if deployment["work_pool"]["name"] != "kind":
            continue
        path, name = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flows.append(getattr(module, name))
    return flows


def test_every_block_a_kind_flow_loads_is_saved_by_configure_blocks(prefect_harness) -> None:
    import blocks

    spec = importlib.util.spec_from_file_location(
        "configure_blocks", DEPLOYMENTS / "kind" / "configure_blocks.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    needed: set[str] = set()
    for flow in _kind_flows():
        for name, parameter in inspect.signature(flow.fn).parameters.items():
            if name in USER_BLOCK_PARAMETERS:
                # Prefect's own notification blocks (Slack, Teams, a webhook...): the user picks
                # the service and saves it; the docs must say under which name and how.
                default, doc = USER_BLOCK_PARAMETERS[name]
                assert parameter.default == default, f"{flow.name}: {name} default changed"
                assert f"`{default}`" in (REPO_ROOT / doc).read_text(), f"{doc} must name {default}"
                continue
            if name.endswith("_block"):
                assert name in BLOCK_PARAMETERS, f"{flow.name}: unknown block parameter {name}"
                assert parameter.default == "bridgeai"
                needed.add(BLOCK_PARAMETERS[name])
    assert needed == set(BLOCK_PARAMETERS.values())

    import os

    os.environ["BRIDGEAI_GIT_TOKEN"] = "consistency-token"
    try:
        assert module.main(["--name", "kind-consistency"]) == 0
    finally:
        os.environ.pop("BRIDGEAI_GIT_TOKEN")
    template_env = {e["name"] for e in env_entries(json.loads(TEMPLATE.read_text()))}
    for class_name in sorted(needed):
        block = getattr(blocks, class_name).load("kind-consistency")
        for field_name, value in block:
            if (class_name, field_name) in SECRET_FALLBACKS and value is None:
                variable = SECRET_FALLBACKS[(class_name, field_name)]
                assert variable in template_env, f"{class_name}.{field_name}: {variable} unset"
        if class_name == "DataRepository":
            assert block.url and block.token.get_secret_value() == "consistency-token"


def test_variables_the_flow_runner_needs_are_set_by_its_image_or_template() -> None:
    dockerfile = FLOW_RUNNER_DOCKERFILE.read_text()
    template_env = {e["name"] for e in env_entries(json.loads(TEMPLATE.read_text()))}
    # BRIDGEAI_HOME: pod-local scratch; the model image's template and base for build-model-image.
    assert "BRIDGEAI_HOME" in template_env
    for variable in ("BRIDGEAI_MODEL_IMAGE_DIR", "BRIDGEAI_BASE_IMAGE"):
        assert re.search(rf"^\s+{variable}=", dockerfile, re.M), variable
        assert variable in variables_read()


@pytest.mark.parametrize("variable", sorted(LIBRARY_VARIABLES))
def test_the_library_list_holds_only_variables_something_sets(variable: str) -> None:
    sets = variables_set()
    assert variable in sets, f"{variable} is on the list but nothing sets it: drop it"
