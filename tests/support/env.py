"""Where the tests run: CI or a developer's machine, the repository, the original's datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ``.ci/run`` sets it: a component CI provides must then be present.
IN_CI = os.environ.get("BRIDGEAI_CI") == "1"
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("BRIDGEAI_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def require(available: bool, what: str) -> None:
    """Skip (locally) or fail (in CI) when a component the test needs is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available", pytrace=False)
    pytest.skip(f"{what} is not available on this machine")
