"""A headless Chromium page for the UI tests (Playwright driving Debian's chromium), with a
screenshot of whatever it showed when a test fails, under test-artifacts/ui/ (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.drift import ARTIFACTS, CHROMIUM, chromium_available
from tests.support.env import require

#: What these machines need for headless Chromium (ARCHITECTURE.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page in headless Chromium; screenshotted to test-artifacts/ui/ on failure."""
    require(chromium_available(), "Chromium (/usr/bin/chromium) and the playwright package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(60_000)
            page = context.new_page()
            yield page
            report = getattr(request.node, "report_call", None)
            if report is not None and report.failed:
                folder = ARTIFACTS / "ui"
                folder.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(folder / f"{request.node.name}.png"), full_page=True)
                (folder / f"{request.node.name}.txt").write_text(
                    f"{page.url}\n\n{page.inner_text('body')}"
                )
        finally:
            browser.close()
