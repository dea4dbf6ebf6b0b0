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

REPO_ROOT = Path(__file__).resolve().parents[2]
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
            page = client.read_events(EventFilter(id=EventIDFilter(id=[UUID(event_id)])))
            if page.events:
                return page.events[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"event {event_id} not in the Prefect API after {timeout} s")
            time.sleep(1.0)
