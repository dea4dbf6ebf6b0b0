"""Every deployable flow shows a described, validated form in the Prefect UI."""

from __future__ import annotations

import importlib

import pytest

FLOWS = [
    ("flows.ingest", "data_ingestion", "data-ingestion"),
    ("flows.train", "model_training", "model-training"),
    ("flows.build_image", "build_model_image", "build-model-image"),
    ("flows.deploy", "deploy_model", "deploy-model"),
    ("flows.drift", "drift_monitoring", "drift-monitoring"),
    ("flows.alert", "drift_alert", "drift-alert"),
    ("flows.pipeline", "mlops_pipeline", "mlops-pipeline"),
]


@pytest.mark.parametrize(("module", "function", "name"), FLOWS)
def test_flow_has_its_contract_name_a_docstring_and_described_parameters(
    module: str, function: str, name: str
) -> None:
    from prefect.utilities.callables import parameter_schema

    flow = getattr(importlib.import_module(module), function)
    assert flow.name == name
    assert flow.description, f"{name} has no docstring for the UI"
    properties = parameter_schema(flow.fn).model_dump()["properties"]
    assert properties, f"{name} takes no parameters"
    undescribed = [p for p, spec in properties.items() if not spec.get("description")]
    assert not undescribed, f"{name}: parameters without a description in the UI: {undescribed}"
    defaults = [p for p, spec in properties.items() if "default" not in spec]
    assert not defaults, f"{name}: parameters without an embedded-mode default: {defaults}"
