"""The README, executed: its shell and Python blocks, in order, on a fresh clone.

A new user's path: a ``git clone``, ``make demo``, then every command of the README exactly as
written, in one shell and one Python session, with only ``BRIDGEAI_DATA_SOURCE`` set (these
machines are offline, as the README tells such a user to do). Blocks that cannot run here (Kind,
a Docker engine, the internet, ``make test`` itself) are annotated in the README; outputs the
README quotes (data tags, metrics, promotion decisions, predictions) must still be what the
commands print. ``docs/*.md`` examples run the same way, in their own state folder.

The page runs in a private network namespace where it can, so its fixed ports (8000, 4200, ...)
never meet another process on a shared machine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import readme
from tests.support.env import REPO_ROOT

#: The docs pages whose examples run, in the order a reader builds up state.
DOCS = ("ingestion", "training", "model-server", "prediction-service", "drift")
#: The pages that do not, and why.
NOT_RUN = {
    "kind": "every example needs a Kubernetes cluster, a Docker engine or the internet",
    "scaling": "its two examples configure autoscaling on a Kubernetes cluster (KServe, Kind)",
    "loop": "its examples need the local stack with its automations on (minutes of chained runs) "
    "and a request id of your own: tests/flows/test_loop.py runs that chain, "
    "tests/bridgeai/ops/test_lineage.py the lineage command",
}
_ACTIVATE = readme.parse("```bash\nsource .venv/bin/activate\n```\n")
_STOP = readme.parse("```bash\nbridgeai down\n```\n")


def _timings(page: readme.Page) -> str:
    return ", ".join(f"line {r.block.line}: {r.seconds:.0f} s" for r in page.results)


@dataclass
class DocsRun:
    """What the docs pages ran and left running."""

    ran: list[readme.Result]
    left: list[int]


def _run_docs(fresh_clone: Any, work: Path) -> DocsRun:
    """The pages in the order of :data:`DOCS`, in one shell and one Python session (a reader
    who works through them), in a state folder of their own; what a page leaves running is
    stopped before the next (pages start servers on the same ports)."""
    # Their own Prefect profile too: the README's embedded runs, beside them, have theirs (two
    # ephemeral servers on one SQLite database lock each other out).
    env = {
        **fresh_clone.env,
        "BRIDGEAI_HOME": str(work / "docs-home"),
        "PREFECT_HOME": str(work / "docs-prefect"),
    }
    page = readme.Page(fresh_clone.path, env, work / "docs")
    ran: list[readme.Result] = []
    try:
        list(page.run(_ACTIVATE, "setup"))
        for name in DOCS:
            path = fresh_clone.path / "docs" / f"{name}.md"
            ran += list(page.run(readme.parse(path.read_text()), f"docs/{name}.md"))
            list(page.run(_STOP, f"after docs/{name}.md"))
    finally:
        left = page.close()
        print(f"docs blocks: {_timings(page)}")
    return DocsRun(ran, left)


@pytest.fixture(scope="module")
def docs_run(
    fresh_clone: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], DocsRun]]:
    """The docs pages' outcome (a function that waits for it), run in the background from the
    first test that asks for it.

    The README test asks first, so the two run at the same time: each page has its own network
    and ``/tmp`` (:class:`readme.Namespace`) and its own state folder, and much of their time is
    spent waiting on servers, so together they fit CI's 5 minutes where one after the other did
    not. Without namespaces (not root) both would want the same fixed ports: the docs then run
    when the docs test asks for their outcome, after the README's.
    """
    work = tmp_path_factory.mktemp("docs-pages")
    with ThreadPoolExecutor(1, thread_name_prefix="docs-pages") as pool:
        started = (
            pool.submit(_run_docs, fresh_clone, work) if readme.Namespace.available() else None
        )

        def outcome() -> DocsRun:
            nonlocal started
            if started is None:
                started = pool.submit(_run_docs, fresh_clone, work)
            return started.result()

        yield outcome


@pytest.mark.integration
@pytest.mark.slow
def test_the_readme_runs_as_written_on_a_fresh_clone(
    fresh_clone: Any, docs_run: Callable[[], DocsRun], tmp_path: Path
) -> None:
    # (``docs_run``: asked for here so the docs pages run beside this page; checked below.)
    blocks = readme.parse((fresh_clone.path / "README.md").read_text())
    assert sum(b.action == "expect" for b in blocks) >= 8, "the README quotes outputs to check"
    page = readme.Page(fresh_clone.path, dict(fresh_clone.env), tmp_path / "readme")
    try:
        ran = list(page.run(blocks, "README.md"))
    finally:
        left = page.close()
        print(f"README blocks: {_timings(page)}")
    commands = [r.block.code for r in ran]
    assert any("make demo" in c for c in commands) and any("bridgeai up" in c for c in commands)
    # `bridgeai down` is the page's last command: nothing it started may still run.
    assert not left, f"processes still running after the README's last `bridgeai down`: {left}"


@pytest.mark.integration
@pytest.mark.slow
def test_the_docs_examples_run_in_their_own_state_folder(docs_run: Callable[[], DocsRun]) -> None:
    """See :func:`_run_docs`; run beside the README test (:func:`docs_run`)."""
    outcome = docs_run()
    assert {r.block.lang for r in outcome.ran} >= {"python", "bash"}
    assert not outcome.left, f"still running after the last `bridgeai down`: {outcome.left}"


def test_every_docs_page_is_run_or_says_why_not() -> None:
    pages = {p.stem for p in (REPO_ROOT / "docs").glob("*.md")}
    assert pages == set(DOCS) | set(NOT_RUN)


# -- the checker itself: it must be able to fail ----------------------------------------------


def _demo_quote() -> str:
    blocks = readme.parse((REPO_ROOT / "README.md").read_text())
    return next(b.code for b in blocks if b.action == "expect" and "data-v1.0.0" in b.code)


def test_a_quoted_output_matches_despite_other_ports_times_and_paths() -> None:
    quote = _demo_quote()
    printed = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:61234", quote)
    printed = re.sub(r"finished in \d+ s", "finished in 287 s", printed)
    printed = re.sub(r"report_\d{8}_\d{6}", "report_20300101_000000", printed)
    printed = printed.replace("file:///…/", "file:///tmp/some/where/")
    printed = "12:00:00 | INFO | a log line\n" + printed.replace("\n", "\nnoise\n")
    assert readme.mismatch(quote, printed) is None


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("R2 0.657", "R2 0.658"),  # a metric
        ("data-v1.0.0 (new", "data-v1.1.0 (new"),  # a data tag
        ("promoted to champion", "not promoted"),  # a promotion decision
        ("4,683,763", "4,683,764"),  # a prediction
    ],
)
def test_a_changed_figure_in_the_readme_no_longer_matches(old: str, new: str) -> None:
    quote = _demo_quote()
    assert old in quote
    printed = quote.replace("file:///…/", "file:///tmp/x/")
    changed = quote.replace(old, new, 1)
    assert readme.mismatch(changed, printed) is not None


def test_a_skipped_section_skips_its_blocks_up_to_the_next_heading_of_its_level() -> None:
    page = (
        "## Kind\n<!-- readme-test: skip-section (needs a Kind cluster) -->\n"
        "```bash\nkind create cluster\n```\n### Sub\n```bash\nkubectl get pods\n```\n"
        "## Next\n```bash\necho runs\n```\n"
    )
    actions = [(b.code.strip(), b.action) for b in readme.parse(page)]
    assert actions == [
        ("kind create cluster", "skip"), ("kubectl get pods", "skip"), ("echo runs", "run"),
    ]  # fmt: skip


def test_the_page_has_its_own_network_and_tmp_but_sees_its_folders(tmp_path: Path) -> None:
    import subprocess

    from tests.support.env import require

    own, other = tmp_path / "page", tmp_path.parent / f"{tmp_path.name}-other"
    own.mkdir()
    other.mkdir()
    (own / "mine").write_text("page")
    inside = Path("/tmp") / f"readme-inside-{tmp_path.name}-{os.getpid()}"
    namespace = readme.Namespace(own)
    try:
        require(namespace.mount, "unshare and mount (root) for the page's private network and /tmp")
        seen = subprocess.run(
            [*namespace.prefix(), "sh", "-c", f"cat {own}/mine; ls {other}; touch {inside}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert seen.stdout.startswith("page") and "No such file" in seen.stderr, seen
        assert not inside.exists()
        ports = subprocess.run(
            [*namespace.prefix(), "ss", "-Htln"], capture_output=True, text=True, check=True
        ).stdout
        assert ports.strip() == "", ports  # nothing of the host's listens in its network
    finally:
        namespace.close()
        other.rmdir()


def test_a_failing_command_or_a_wrong_output_fails_the_page(tmp_path: Path) -> None:
    env = readme.user_environment(tmp_path, tmp_path / "HousingData.csv")
    page = readme.Page(tmp_path, env, tmp_path / "work")
    try:
        fine = "```bash\nexport GREETING=hello\n```\n"
        carried = '```bash\necho "$GREETING: R2 0.657"\n```\n'
        wrong = "<!-- readme-test: expect -->\n```text\nhello: R2 0.658\n```\n"
        list(page.run(readme.parse(fine + carried), "ok.md"))
        assert "hello: R2 0.657" in page.results[-1].output  # exports carry over
        with pytest.raises(AssertionError, match=r"does not show\n  hello: R2 0\.658"):
            list(page.run(readme.parse(carried + wrong), "wrong.md"))
        with pytest.raises(AssertionError, match="exit 3"):
            list(page.run(readme.parse("```bash\ntrue\n(exit 3)\necho never\n```\n"), "f.md"))
        with pytest.raises(AssertionError, match="a healthy run printed"):
            list(page.run(readme.parse("```bash\necho '10:00 | ERROR | boom'\n```\n"), "e.md"))
        skipped = "<!-- readme-test: skip (not here) -->\n```bash\nexit 1\n```\n"
        assert list(page.run(readme.parse(skipped), "s.md")) == []
    finally:
        page.close()
