"""Helpers for the drift tests: render a report in headless Chromium, read events back.

Import what a test module needs by name::

    from tests.support.drift import render_offline, wait_for_event
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.env import REPO_ROOT

#: Screenshots and other files a human may want to look at after a run (git-ignored).
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def chromium_available() -> bool:
    """True when a Chromium binary and the playwright driver are present."""
    if not Path(CHROMIUM).exists():
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class RenderedPage:
    """What the browser showed: the page's text, and every request it tried to make."""

    text: str
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


def render_offline(html_file: Path, screenshot: Path, *, wait_for: str) -> RenderedPage:
    """Open ``html_file`` in headless Chromium with every non-``file://`` request blocked.

    Every request is routed through a handler that records it; anything but the report file
    itself is aborted and listed in ``blocked``, so a report that needs the network both fails
    to render and is caught by the caller's assertion on ``blocked``.

    Args:
        html_file: the report on disk.
        screenshot: where to save a full-page PNG.
        wait_for: text that shows the report rendered (Evidently draws it with JavaScript).
    """
    from playwright.sync_api import sync_playwright

    page_url = html_file.resolve().as_uri()
    rendered = RenderedPage(text="")

    def route(request_route: Any) -> None:
        url = request_route.request.url
        rendered.requests.append(url)
        if url == page_url:
            request_route.continue_()
        else:
            rendered.blocked.append(url)
            request_route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.route("**/*", route)
            page.on(
                "console",
                lambda m: rendered.console_errors.append(m.text) if m.type == "error" else None,
            )
            page.goto(page_url, wait_until="load", timeout=120_000)
            page.get_by_text(wait_for).first.wait_for(timeout=120_000)
            page.wait_for_load_state("networkidle", timeout=60_000)
            rendered.text = page.inner_text("body")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return rendered


def wait_for_event(event_id: str, timeout: float = 90.0) -> Any:
    """Read an event back from the Prefect API by id (events are persisted asynchronously)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventIDFilter

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            # limit: the client defaults to 100, above the server's maximum of 50.
            page = client.read_events(EventFilter(id=EventIDFilter(id=[UUID(event_id)])), limit=10)
            if page.events:
                return page.events[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"event {event_id} not in the Prefect API after {timeout} s")
            time.sleep(1.0)


# -- blocks, data versions, a champion and a prediction log for the flow tests ------------------
@dataclass
class DriftEnv:
    """Saved block names the flow is called with, and the storage behind them."""

    storage_block: str
    repository_block: str
    mlflow_block: str
    storage: Any
    tracking_uri: str

    def blocks(self) -> dict[str, str]:
        return {
            "storage_block": self.storage_block,
            "repository_block": self.repository_block,
            "mlflow_block": self.mlflow_block,
        }


def save_drift_blocks(s3_server: Any, root: Path) -> DriftEnv:
    """Save an ObjectStorage (fresh buckets on ``s3_server``), a DataRepository and an MLflow
    block under unique names, so these tests never depend on what other tests saved."""
    import secrets

    from blocks import DataRepository, MLflowServer

    suffix = secrets.token_hex(3)
    storage = s3_server.storage(
        data_bucket=f"drift-data-{suffix}",
        reports_bucket=f"drift-reports-{suffix}",
        mlflow_bucket=f"drift-mlflow-{suffix}",
    )
    storage.ensure_buckets()
    storage.save(f"drift-storage-{suffix}")
    DataRepository(workdir=str(root / "data-repo")).save(f"drift-repo-{suffix}")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    MLflowServer(tracking_uri=tracking_uri).save(f"drift-mlflow-{suffix}")
    return DriftEnv(
        storage_block=f"drift-storage-{suffix}",
        repository_block=f"drift-repo-{suffix}",
        mlflow_block=f"drift-mlflow-{suffix}",
        storage=storage,
        tracking_uri=tracking_uri,
    )


def ingest(env: DriftEnv, csv: Path) -> str:
    """Version ``csv`` with the real data-ingestion flow and return its tag."""
    from flows.ingest import data_ingestion

    version = data_ingestion(
        source=str(csv), storage_block=env.storage_block, repository_block=env.repository_block
    )
    return version.tag


def register_champion(env: DriftEnv, model: Any, data_version: str) -> str:
    """Register ``model`` as a new version of the block's model, tag its data version and make
    it the champion, as the training flow does; return the version number."""
    import mlflow

    from blocks import MLflowServer
    from bridgeai.model.mlflow_client import fluent
    from bridgeai.model.pyfunc import log_model

    server = MLflowServer.load(env.mlflow_block)
    client = server.client()
    experiment = server.ensure_experiment(client)
    with fluent(server.resolved_tracking_uri()), mlflow.start_run(experiment_id=experiment):
        info = log_model(model, registered_model_name=server.registered_model)
    version = str(info.registered_model_version)
    client.set_model_version_tag(server.registered_model, version, "data_version", data_version)
    client.set_registered_model_alias(server.registered_model, server.alias, version)
    return version


def artifacts_of(flow_run_id: Any) -> dict[str, Any]:
    """The artifacts a flow run published, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}
