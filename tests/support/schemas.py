"""Offline schema validation: Kubernetes objects (kubernetes-validate, strict) and KServe's
InferenceService (the schema generated from KServe's SDK, see deployments/schemas/).

Everything validates at one pinned Kubernetes version, the one the Kind cluster runs.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from tests.support.env import REPO_ROOT

REPO = REPO_ROOT
#: The Kind node image's Kubernetes version (deployments/kind/cluster.yaml pins kindest/node).
KUBERNETES_VERSION = "1.33.0"
KSERVE_SCHEMA = REPO / "deployments" / "schemas" / "kserve-v1beta1-inferenceservice.json"


@functools.cache
def _k8s_definitions() -> dict[str, Any]:
    import kubernetes_validate

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = root / f"v{KUBERNETES_VERSION}-local-strict" / "_definitions.json"
    return dict(json.loads(path.read_text()))


@functools.cache
def _registry() -> Any:
    from referencing import Registry, Resource

    definitions = Resource.from_contents(_k8s_definitions())
    kserve = Resource.from_contents(json.loads(KSERVE_SCHEMA.read_text()))
    return Registry().with_resources(
        [(definitions.id(), definitions), (kserve.id(), kserve)]  # type: ignore[list-item]
    )


def validate_k8s(obj: dict[str, Any]) -> str:
    """Validate a built-in Kubernetes object strictly; returns the version used.

    Raises:
        kubernetes_validate.ValidationError: the object breaks the schema.
        kubernetes_validate.SchemaNotFoundError: its kind is not a built-in one.
    """
    import kubernetes_validate

    return str(kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True))


def validate_definition(definition: str, value: Any) -> None:
    """Validate a fragment (e.g. Helm values that become an ``EnvVar`` list) against one
    Kubernetes definition such as ``io.k8s.api.core.v1.EnvVar``."""
    import jsonschema

    schema = {"$ref": f"https://kubernetes.io/api/_definitions.json#/$defs/{definition}"}
    jsonschema.Draft202012Validator(schema, registry=_registry()).validate(value)


def validate_inference_service(obj: dict[str, Any]) -> None:
    """Validate an InferenceService against KServe's v1beta1 schema (strict).

    Raises:
        jsonschema.ValidationError: the object breaks the schema.
    """
    import jsonschema

    schema = json.loads(KSERVE_SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema, registry=_registry()).validate(obj)
