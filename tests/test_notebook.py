"""notebooks/quickstart.ipynb executes top to bottom in a real kernel (embedded mode)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.env import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_quickstart_notebook_runs_every_flow(
    tmp_path: Path, bridgeai_home: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("BRIDGEAI_DATA_SOURCE", str(shared_data / "HousingData.csv"))
    # The kernel is this interpreter, with the repository importable as in `uv run`.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # The image step's "no engine" path (the build itself is tests/flows/test_build_image.py).
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    finally:  # kept for reading when an assertion below fails (test-artifacts/ is git-ignored)
        artifacts = REPO_ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        nbformat.write(notebook, artifacts / "quickstart.executed.ipynb")

    outputs = "".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "data-v1.0.0" in outputs
    assert "promoted: True" in outputs
    assert "GBP" in outputs  # the prediction service answered the original's example house
    assert "sent 50 held-out houses" in outputs
    assert "report: file://" in outputs
    assert "image: no Docker engine: skipped" in outputs
    frames = [
        str(output.get("data", {}).get("text/html", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    report = [f for f in frames if f.startswith("<iframe srcdoc=")]
    # Evidently's own dashboard (its renderer draws the metrics) with our report's text in it;
    # the page never spells "evidently" out.
    assert report, "the Evidently report was not shown inline"
    assert "window.drawDashboard(metric_" in report[0] and "BridgeAI drift report" in report[0]
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert images, "the feature-importance plot was not displayed"
    assert (bridgeai_home / "storage" / "evidently-reports").is_dir()
