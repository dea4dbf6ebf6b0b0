"""What a user sees, in a real browser, on the local stack (issue 14's browser Show).

Headless Chromium (Playwright) opens the ``mlops-pipeline/local`` deployment in the Prefect UI,
starts a custom run from the form with ``smoke_rows`` changed from its default, waits on the
run page until it is Completed, and finds the stage summary and a plot on its Artifacts tab
(the plot's image loads, served by MLflow); then opens the MLflow UI and finds the model version
with the ``champion`` alias; then opens the drift report's presigned link and sees Evidently's
report render. Screenshots of a failure land in test-artifacts/ui/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.drift import ARTIFACTS
from tests.support.loop import deployed_stack

pytestmark = [pytest.mark.ui, pytest.mark.integration, pytest.mark.slow]

NAME = "house_price_prediction_prod"
SMOKE_ROWS = 30  # the form's default is 20


def _wait_for_state(page: Any, wanted: str, timeout: float = 1200) -> None:
    """Reload the run page until the run's own state badge (the header's, the first on the
    page: subflow badges come below it) says ``wanted``; fail early on a final bad state."""
    deadline = time.monotonic() + timeout
    while True:
        badge = page.locator(".state-badge").first
        badge.wait_for()
        state = badge.inner_text().strip()
        if state == wanted:
            return
        assert state not in ("Failed", "Crashed", "Cancelled"), f"the run is {state}"
        assert time.monotonic() < deadline, f"the run is still {state}, never {wanted}"
        time.sleep(5)
        page.reload(wait_until="networkidle")


def test_custom_run_from_the_ui_then_mlflow_and_the_drift_report(
    tmp_path: Path, shared_data: Path, page: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path / "home"
    with deployed_stack(
        home,
        BRIDGEAI_DATA_SOURCE=str(shared_data / "HousingData.csv"),
        DOCKER_HOST="unix:///nonexistent/docker.sock",  # the image step is skipped
    ) as user:
        ui = user["PREFECT_API_URL"].removesuffix("/api")

        def api() -> Any:
            return temporary_settings({PREFECT_API_URL: user["PREFECT_API_URL"]})

        with api(), get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("mlops-pipeline/local")

        # -- the Prefect UI: the deployment, a custom run with one parameter changed -------------
        page.goto(f"{ui}/deployments/deployment/{deployment.id}", wait_until="networkidle")
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("Custom run").click()
        # The form renders each parameter under its label; smoke_rows is a number field.
        label = page.get_by_text("smoke_rows (Optional)", exact=True)
        field = page.locator(".p-label").filter(has=label).locator("input[type=number]").first
        assert field.input_value() == "20"
        field.fill(str(SMOKE_ROWS))
        page.get_by_role("button", name="Submit").click()
        # The new run appears on the deployment's page (the stack has no other run yet).
        page.locator("a[href*='/runs/flow-run/']").first.click()
        page.wait_for_url("**/runs/flow-run/**")
        run_id = page.url.split("/runs/flow-run/")[1].split("?")[0]
        _wait_for_state(page, "Completed")

        with api(), get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
            assert run.parameters["smoke_rows"] == SMOKE_ROWS  # the form's value, not the default
            assert run.state.is_completed()
            (report,) = [
                a
                for a in client.read_artifacts(
                    artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["drift-report"]))
                )
            ]

        # -- its Artifacts tab: the stage summary and a plot ------------------------------------
        page.get_by_text("Artifacts", exact=True).first.click()
        page.get_by_text("mlops-pipeline", exact=True).first.wait_for()
        page.get_by_text("pipeline-feature-importance").first.click()
        plot = page.locator("img[src*='get-artifact']").first
        plot.wait_for()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 100", arg=plot.element_handle()
        )
        assert "feature_importance.png" in (plot.get_attribute("src") or "")
        _keep(page, "prefect-run-artifacts")

        # -- the MLflow UI: the registered model, its champion ----------------------------------
        # "load", not "networkidle": MLflow's single-page app keeps polling, so the network may
        # never be idle for the 500 ms networkidle needs (a CI run timed out on it after 60 s);
        # the alias on the page is what says it has rendered.
        page.goto(f"{user['MLFLOW_TRACKING_URI']}/#/models/{NAME}", wait_until="load")
        page.get_by_text("champion").first.wait_for(timeout=120_000)
        body = page.locator("body").inner_text()
        assert "Version 1" in body or "version 1" in body.lower(), body[:2000]
        _keep(page, "mlflow-model")

        # -- the drift report's link: presigned, it opens and Evidently draws it --------------
        link = re.search(r"\]\((http[^)]+)\)", report.data)
        assert link and "X-Amz-Signature=" in link.group(1), report.data
        assert "link expires" in (report.description or "")
        response = page.goto(link.group(1), wait_until="load")
        assert response is not None and response.status == 200
        page.get_by_text("Dataset Drift").first.wait_for(timeout=120_000)
        _keep(page, "drift-report")


def _keep(page: Any, name: str) -> None:
    """A screenshot of a step that passed, for people reading the run (git-ignored)."""
    folder = ARTIFACTS / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
