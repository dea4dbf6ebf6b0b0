"""``make test`` leaves the cluster tests out; ``make test-cluster`` runs only them; ``.ci/run``
runs both, ``make test`` first."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.env import REPO_ROOT


def _collect(*args: str) -> str:
    """``pytest --collect-only`` with the project's addopts, as ``make test`` runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 5), done.stdout + done.stderr  # 5: nothing selected
    return done.stdout


def _make_dry_run(target: str) -> str:
    done = subprocess.run(
        ["make", "-n", target], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_default_selection_deselects_every_cluster_test() -> None:
    out = _collect("tests/cluster")
    assert "tests/cluster/" not in out, out  # no test id of the cluster suite is collected
    match = re.search(r"(\d+) deselected", out)
    assert match and int(match.group(1)) >= 10, out


def test_make_test_keeps_the_default_selection_and_test_cluster_selects_the_cluster_tests() -> None:
    test_line = [line for line in _make_dry_run("test").splitlines() if "pytest" in line]
    assert test_line and all("-m" not in line.split() for line in test_line), test_line
    cluster_line = [line for line in _make_dry_run("test-cluster").splitlines() if "pytest" in line]
    assert cluster_line and "-m cluster" in cluster_line[0], cluster_line
    out = _collect("-m", "cluster", "tests/cluster")
    collected = [line for line in out.splitlines() if line.startswith("tests/cluster/")]
    assert len(collected) >= 10, out


def test_ci_runs_make_test_then_make_test_cluster() -> None:
    commands = [
        line.strip()
        for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith("make ")
    ]
    assert "make test" in commands and "make test-cluster" in commands, commands
    assert commands.index("make test") < commands.index("make test-cluster"), commands
