"""The model server's logs: JSON lines on stderr, one access line per request, in batches."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from bridgeai import procs, schema
from bridgeai.model.source import ModelInfo
from bridgeai.serving import codec
from bridgeai.serving.logs import ACCESS_LOGGER, AccessLog
from tests.support.model_server import MODEL_NAME, ModelServerProcess


def test_access_lines_are_json_objects_with_the_given_fields() -> None:
    stream = io.StringIO()
    log = AccessLog(stream=stream)
    log.record({"request_id": "r-1", "status": 200})  # no event loop here: written at once
    log.record({"request_id": "r-2", "status": 400})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["request_id"], line["status"]) for line in lines] == [("r-1", 200), ("r-2", 400)]
    assert all(line["logger"] == ACCESS_LOGGER and line["level"] == "info" for line in lines)


@pytest.mark.integration
def test_logs_are_json_lines_with_request_ids(
    http: httpx.Client, server: ModelServerProcess, identity: ModelInfo
) -> None:
    body = codec.build_request([schema.EXAMPLE_HOUSE])
    http.post(f"/v2/models/{MODEL_NAME}/infer", json=body, headers={"x-request-id": "log-me-7"})
    procs.wait_until(  # access lines are written in batches, every 50 ms
        lambda: "log-me-7" in server.log_file.read_text(), timeout=10, service="access log"
    )
    records = [json.loads(line) for line in server.log_file.read_text().splitlines() if line]
    loaded = next(r for r in records if r["message"] == "model loaded")
    assert (loaded["model_version"], loaded["run_id"]) == (identity.version, identity.run_id)
    access = next(r for r in records if r.get("request_id") == "log-me-7")
    assert access["logger"] == "bridgeai.serving.app.access"
    assert (access["status"], access["method"]) == (200, "POST")
    assert access["duration_ms"] > 0
