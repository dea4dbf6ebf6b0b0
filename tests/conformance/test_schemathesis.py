"""schemathesis (the ``st`` command, as a user runs it) against both servers' OpenAPI documents.

Every check schemathesis has (``--checks all``): no 5xx, no schema-valid request rejected, no
schema-invalid request accepted, every response matching its documented status, content type,
headers and schema, authentication enforced. Stateless phases only (examples, coverage,
fuzzing), at least 300 generated cases per operation. The seed is fixed so CI is reproducible;
``BRIDGEAI_SCHEMATHESIS_SEED`` picks another.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.model_server import ModelServerProcess
from tests.support.service import API_KEY, RunningService

pytestmark = [pytest.mark.conformance, pytest.mark.integration]

MAX_EXAMPLES = 300
SEED = os.environ.get("BRIDGEAI_SCHEMATHESIS_SEED", "20261201")


def _st(location: str, report: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "run",
        location,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        SEED,
        # One worker: CPython 3.11 < 3.11.9 can fail compiling ASTs from two threads at once
        # ("AST constructor recursion depth mismatch"), which schemathesis does when generating.
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report),
        *extra,
    ]
    report.mkdir(parents=True, exist_ok=True)
    return subprocess.run(  # in the report folder: st keeps its state in ./.schemathesis
        command, capture_output=True, text=True, timeout=600, check=False, cwd=report
    )


def test_prediction_service_openapi_holds(service: RunningService, schemathesis_report: Path):
    result = _st(
        f"{service.url}/openapi.json",
        schemathesis_report / "service",
        "--header",
        f"X-API-Key: {API_KEY}",
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout, result.stdout


def test_model_server_openapi_holds(model_server: ModelServerProcess, schemathesis_report: Path):
    result = _st(f"{model_server.url}/openapi.json", schemathesis_report / "model-server")
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
