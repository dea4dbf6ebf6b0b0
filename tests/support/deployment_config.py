"""What the cluster's templates, manifests and up.sh say: the variables they set, the Secrets and
keys they reference and create. Read by the consistency test and by the simulated cluster (which
creates exactly the Secrets up.sh creates)."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.support.env import REPO_ROOT

DEPLOYMENTS = REPO_ROOT / "deployments"
TEMPLATE = DEPLOYMENTS / "work-pools" / "kubernetes.json"
MANIFESTS = sorted((DEPLOYMENTS / "kind" / "manifests").glob("*.yaml"))
VALUES = sorted((DEPLOYMENTS / "kind" / "values").glob("*.yaml"))
UP_SH = DEPLOYMENTS / "kind" / "up.sh"


def documents() -> list[tuple[str, Any]]:
    docs: list[tuple[str, Any]] = [(TEMPLATE.name, json.loads(TEMPLATE.read_text()))]
    for path in [*MANIFESTS, *VALUES]:
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    prefect_yaml = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    for deployment in prefect_yaml["deployments"]:
        env = (deployment["work_pool"].get("job_variables") or {}).get("env") or {}
        docs.append((f"prefect.yaml {deployment['entrypoint']}", {"env": [
            {"name": k, "value": v} for k, v in env.items()
        ]}))  # fmt: skip
    return docs


def env_entries(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("env", "extraEnvVars") and isinstance(value, list):  # Helm values too
                found += [e for e in value if isinstance(e, dict) and "name" in e]
            else:
                found += env_entries(value)
    elif isinstance(node, list):
        for value in node:
            found += env_entries(value)
    return found


def variables_set() -> dict[str, set[str]]:
    """Variable name -> the files that set it."""
    out: dict[str, set[str]] = {}
    for where, doc in documents():
        for entry in env_entries(doc):
            out.setdefault(entry["name"], set()).add(where)
    return out


def secret_refs(optional: bool | None = None) -> set[tuple[str, str]]:
    """(Secret, key) of every ``secretKeyRef``; ``optional`` filters on the flag."""
    refs: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("secretKeyRef")
            if isinstance(ref, dict) and (
                optional is None or bool(ref.get("optional")) == optional
            ):
                refs.add((ref["name"], ref["key"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for _, doc in documents():
        walk(doc)
    return refs


def secrets_created() -> dict[str, set[str]]:
    """Secret -> keys, as ``up.sh``'s ``apply_secret`` lines create them."""
    created: dict[str, set[str]] = {}
    text = UP_SH.read_text().replace("\\\n", " ")  # join continued lines
    for match in re.finditer(r"^\s*apply_secret (\S+)((?: +\"[^\"]*\")+)", text, re.M):
        created.setdefault(match[1], set()).update(re.findall(r'"([\w.-]+)=', match[2]))
    return created
