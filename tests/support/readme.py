"""Execute a Markdown page's shell and Python blocks in order, as a user following it would.

The page is the script: fenced ``bash``/``sh``/``shell`` blocks run in one shell whose exported
variables and working directory carry over from block to block (as in one terminal), fenced
``python`` blocks run in one Python session (as in one notebook; it is restarted when a shell
block changed the environment). Other blocks are prose. An HTML comment on the line before a
fence steers the run:

* ``<!-- readme-test: skip (why) -->``: the block is not run (a Kind cluster, `make test`);
* ``<!-- readme-test: expect -->``: the block is output the last block that ran must print. Each
  of its lines must appear in that output, in order; ``…`` matches anything, and what changes
  from run to run is not compared: loopback ports, durations (``51 s``, ``8 ms``), report time
  stamps, PIDs and request ids;
* ``<!-- readme-test: background, ready URL -->``: the block runs in the background (a server
  the page starts "in a second terminal") and the run goes on once ``URL`` answers.

Anywhere in a section, ``<!-- readme-test: skip-section (why) -->`` skips every block from there
to the next heading of the same or a higher level (a whole Kind or Docker section).

Every block that runs must succeed, print no ``ERROR`` line and no progress-bar flood.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SHELLS = {"bash", "sh", "shell", "console"}
_FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*$")

# -- parsing ------------------------------------------------------------------------------------


@dataclass
class Block:
    """One fenced block and what its directive says to do with it."""

    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    directive: str = ""

    @property
    def action(self) -> str:
        """``run``, ``python``, ``background``, ``expect``, ``skip`` or ``prose``."""
        word = self.directive.split(maxsplit=1)[0].rstrip(",") if self.directive else ""
        if word in ("skip", "expect", "background"):
            return word
        if word:
            raise ValueError(f"line {self.line}: unknown readme-test directive {self.directive!r}")
        if self.lang in SHELLS:
            return "run"
        if self.lang == "python":
            return "python"
        return "prose"

    @property
    def ready_url(self) -> str:
        found = re.search(r"ready\s+(\S+)", self.directive)
        if not found:
            raise ValueError(f"line {self.line}: background needs 'ready <url>'")
        return found.group(1)


_HEADING = re.compile(r"^(#{1,6})\s")
_SKIP_SECTION = re.compile(r"^\s*<!--\s*readme-test:\s*skip-section\b\s*(.*?)\s*-->\s*$")


def parse(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the directive on the line before it (or the
    ``skip-section`` directive of the section it is in)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    level = 0  # the level of the current heading
    skipping: tuple[int, str] | None = None  # (heading level, why) of a skip-section
    i = 0
    while i < len(lines):
        heading = _HEADING.match(lines[i])
        if heading:
            level = len(heading.group(1))
            if skipping is not None and level <= skipping[0]:
                skipping = None
        section = _SKIP_SECTION.match(lines[i])
        if section:
            skipping = (level or 1, section.group(1))
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, lang = opening.groups()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        previous = lines[start - 1] if start > 0 else ""
        directive = _DIRECTIVE.match(previous)
        own = directive.group(1) if directive else ""
        if skipping is not None:
            own = f"skip (section: {skipping[1]})"
        blocks.append(
            Block(lang=lang.lower(), code="\n".join(body) + "\n", line=start + 1, directive=own)
        )
        i += 1
    return blocks


# -- comparing ----------------------------------------------------------------------------------

#: What a quoted output may differ in from run to run, and the pattern that stands for it.
_VARIABLE = re.compile(
    r"(?P<any>…)"
    r"|(?<=127\.0\.0\.1:)(?P<port>\d+)|(?<=localhost:)(?P<lport>\d+)"
    r"|(?P<duration>\b\d+(?:\.\d+)?\s?(?:s|ms)\b)"
    r"|(?P<stamp>(?<!\d)\d{8}_\d{6}(?!\d))"
    r"|(?<=pid )(?P<pid>\d+)"
    r"|(?P<hex>\b[0-9a-f]{32}\b)"
    r"|(?P<space>\s+)"
)
_STANDS_FOR = {
    "any": r".*?",
    "port": r"\d+",
    "lport": r"\d+",
    "duration": r"\d+(?:\.\d+)?\s?(?:s|ms)",
    "stamp": r"\d{8}_\d{6}",
    "pid": r"\d+",
    "hex": r"[0-9a-f]{32}",
    "space": r"\s+",
}


def line_pattern(expected: str) -> re.Pattern[str]:
    """A quoted output line as a regex: literal except for what may vary between runs."""
    parts: list[str] = []
    position = 0
    text = expected.strip()
    for match in _VARIABLE.finditer(text):
        parts.append(re.escape(text[position : match.start()]))
        parts.append(_STANDS_FOR[match.lastgroup or "any"])
        position = match.end()
    parts.append(re.escape(text[position:]))
    return re.compile("".join(parts))


def mismatch(expected: str, output: str) -> str | None:
    """None when every non-empty line of ``expected`` appears in ``output`` in order, else the
    first line that does not."""
    cursor = 0
    for line in expected.splitlines():
        if not line.strip():
            continue
        found = line_pattern(line).search(output, cursor)
        if found is None:
            return line
        cursor = found.end()
    return None


def noise(output: str) -> list[str]:
    """Lines a healthy run must not print: ERROR lines, progress-bar floods."""
    lines = output.splitlines()
    bad = [line for line in lines if re.search(r"\bERROR\b", line)]
    bars = [line for line in lines if "Downloading artifacts" in line or "%|" in line]
    if len(bars) > 3:
        bad.append(f"{len(bars)} progress-bar lines, e.g. {bars[0]!r}")
    return bad


# -- running ------------------------------------------------------------------------------------


class Namespace:
    """A private network namespace (its own loopback), so the page's fixed ports (8000, 8080,
    4200, ...) are free however busy the machine is; without ``unshare`` (not root) commands
    run in the host's network.

    It has a private ``/tmp`` too, in which only the ``keep`` folders (the page's own, and the
    data source's when it lives under ``/tmp``) are the host's:
    SeaweedFS names its Unix sockets after its ports (``/tmp/seaweedfs-filer-grpc-18334.sock``)
    and talks to itself through them, so two pages on the same fixed ports, each in its own
    network, would otherwise take over each other's sockets.
    """

    #: Run in the new namespaces before the holder sleeps: loopback up; the host's ``/tmp``
    #: bound on ``/mnt`` (private to this mount namespace), ``/tmp`` a tmpfs, each of the
    #: ``$KEEP`` folders (colon-separated) bound back into it from ``/mnt``, ``/mnt`` let go.
    _SETUP = (
        "ip link set lo up && "
        'if [ -n "$KEEP" ]; then mount --bind /tmp /mnt && '
        "mount -t tmpfs -o mode=1777 readme-tmp /tmp && IFS=: && "
        'for k in $KEEP; do mkdir -p "$k" && '
        'mount --no-canonicalize --bind "/mnt${k#/tmp}" "$k" || exit 1; done && '
        "umount -l /mnt && touch /tmp/.readme-ready; fi && exec sleep 86400"
    )

    def __init__(self, keep: Path | Sequence[Path] | None = None) -> None:
        self.holder: subprocess.Popen[bytes] | None = None
        self.mount = False
        folders = [keep] if isinstance(keep, Path) else list(keep or [])
        resolved = {f.resolve() for f in folders}
        under_tmp = sorted(f for f in resolved if f.is_relative_to("/tmp") and f != Path("/tmp"))
        if under_tmp:
            self.holder = self._start(under_tmp)
            self.mount = self.holder is not None
        if self.holder is None:  # no private /tmp possible: the network alone
            self.holder = self._start([])

    def _start(self, keep: list[Path]) -> subprocess.Popen[bytes] | None:
        command = ["unshare", "--net", *(["--mount"] if keep else []), "sh", "-c", self._SETUP]
        try:
            holder = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "KEEP": ":".join(map(str, keep))},
            )
        except OSError:
            return None
        ready = Path(f"/proc/{holder.pid}/root/tmp/.readme-ready")  # /tmp as the holder sees it
        deadline = time.monotonic() + (10 if keep else 0.5)
        while holder.poll() is None and time.monotonic() < deadline:
            if keep and ready.exists():
                break
            time.sleep(0.1)
        if holder.poll() is None and (not keep or ready.exists()):
            return holder
        if holder.poll() is None:
            holder.kill()
        holder.wait()
        return None

    @staticmethod
    def available() -> bool:
        """Whether pages get their own network and ``/tmp`` on this machine (``unshare``, root)."""
        try:
            probe = subprocess.run(
                ["unshare", "--net", "--mount", "true"], capture_output=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return probe.returncode == 0

    @property
    def isolated(self) -> bool:
        return self.holder is not None

    def prefix(self) -> list[str]:
        if self.holder is None:
            return []
        return ["nsenter", "-t", str(self.holder.pid), "-n", *(["-m"] if self.mount else []), "--"]

    def pids(self) -> list[int]:
        """Every process in the namespace except its holder (all of them started by the page)."""
        if self.holder is None:
            return []
        mine = os.readlink(f"/proc/{self.holder.pid}/ns/net")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.holder.pid:
                continue
            try:
                if os.readlink(entry / "ns" / "net") == mine:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def close(self) -> list[int]:
        """Kill what the page left running in the namespace; return those PIDs."""
        left = self.pids()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
        return left


@dataclass
class Result:
    """What one block printed and how it ended."""

    block: Block
    output: str
    returncode: int
    seconds: float


@dataclass
class Page:
    """Runs the blocks of one or more pages in one shell and one Python session."""

    root: Path
    env: dict[str, str]
    work: Path
    namespace: Namespace | None = None
    results: list[Result] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    _python: subprocess.Popen[str] | None = None
    _python_env: dict[str, str] | None = None
    _background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _count: int = 0

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        if self.namespace is None:
            page_folders = Path(os.path.commonpath([self.root, self.work]))
            data = self.env.get("BRIDGEAI_DATA_SOURCE")
            # The data source is the host's too (CI's checkout, and ../shared beside it, may
            # live under /tmp).
            data_folder = [Path(data).resolve().parent] if data and "://" not in data else []
            self.namespace = Namespace([page_folders, *data_folder])
        self._state = self.work / "shell-state.sh"
        self._state.write_text(_exports(self.env))
        self._cwd = self.work / "shell-cwd"
        self._cwd.write_text(str(self.root))

    # -- the shell -------------------------------------------------------------------------
    def _script(self, code: str, save: bool) -> str:
        lines = [
            f"__state={shlex.quote(str(self._state))}; __cwd={shlex.quote(str(self._cwd))}",
            'source "$__state"',
            'cd "$(cat "$__cwd")"',
        ]
        if save:  # what the block exported and where it cd-ed to carry over to the next one
            lines.append('trap \'export -p > "$__state"; pwd > "$__cwd"\' EXIT')
        lines.append("set -eo pipefail")
        return "\n".join(lines) + "\n" + code

    def shell_env(self) -> dict[str, str]:
        """The environment the shell has now (what a new Python session inherits)."""
        dump = subprocess.run(
            [*self.namespace.prefix(), "bash", "-c", self._script("env -0", save=False)],
            env=self.env,
            capture_output=True,
            check=True,
        ).stdout.decode()
        pairs = (item.split("=", 1) for item in dump.split("\0") if "=" in item)
        return {k: v for k, v in pairs if k not in ("_", "SHLVL", "OLDPWD")}

    def _log(self) -> Path:
        self._count += 1
        return self.work / f"block-{self._count:02d}.log"

    def run_shell(self, block: Block, timeout: float) -> Result:
        log = self._log()
        started = time.monotonic()
        with open(log, "wb") as out:
            # Output to a file, not a pipe: servers a block leaves running keep no pipe open.
            process = subprocess.run(
                [*self.namespace.prefix(), "bash", "-c", self._script(block.code, save=True)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        return self._done(block, log, process.returncode, started)

    def run_background(self, block: Block, timeout: float) -> Result:
        log = self._log()
        started = time.monotonic()
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [*self.namespace.prefix(), "bash", "-c", self._script(block.code, save=False)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._background.append(process)
        probe = f"import urllib.request as u; u.urlopen({block.ready_url!r}, timeout=2)"
        deadline = time.monotonic() + timeout
        code = 1
        while time.monotonic() < deadline and process.poll() is None:
            check = subprocess.run(
                [*self.namespace.prefix(), "python3", "-c", probe],
                capture_output=True,
                check=False,
            )
            if check.returncode == 0:
                code = 0
                break
            time.sleep(1)
        return self._done(block, log, code, started)

    # -- the Python session ----------------------------------------------------------------
    def run_python(self, block: Block, timeout: float) -> Result:
        env = self.shell_env()
        if self._python is None or env != self._python_env:
            self._stop_python()
            python = Path(env.get("VIRTUAL_ENV", self.root / ".venv")) / "bin" / "python"
            cwd = self._cwd.read_text().strip()
            # `cd` inside: entering the namespace's mounts starts in its holder's folder, `/`.
            in_cwd = ["sh", "-c", 'cd "$0" && exec "$@"', cwd]
            self._python = subprocess.Popen(
                [*self.namespace.prefix(), *in_cwd, str(python), "-u", "-c", _DRIVER],
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self._python_env = env
        log = self._log()
        started = time.monotonic()
        assert self._python.stdin is not None and self._python.stdout is not None
        self._python.stdin.write(json.dumps({"code": block.code, "log": str(log)}) + "\n")
        self._python.stdin.flush()
        code = _read_status(self._python, timeout)
        return self._done(block, log, code, started)

    def _stop_python(self) -> None:
        if self._python is not None:
            if self._python.stdin:
                self._python.stdin.close()
            try:
                self._python.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._python.kill()
            self._python = None

    # -- the page --------------------------------------------------------------------------
    def _done(self, block: Block, log: Path, code: int, started: float) -> Result:
        result = Result(block, log.read_text(errors="replace"), code, time.monotonic() - started)
        self.results.append(result)
        return result

    def run(
        self, blocks: Sequence[Block], source: str, timeout: float = 900, strict: bool = True
    ) -> Iterator[Result]:
        """Run ``blocks`` in order, checking each; yields each block's result as it finishes.

        ``strict=False`` (for writing a page) records mismatched outputs in ``mismatches``
        instead of stopping at the first.

        Raises:
            AssertionError: a block failed, printed noise, or an expected output did not match
                (the message names the page and line).
        """
        last: Result | None = None
        for block in blocks:
            where = f"{source}:{block.line}"
            action = block.action
            if action in ("skip", "prose"):
                continue
            if action == "expect":
                assert last is not None, f"{where}: expected output before any block ran"
                missing = mismatch(block.code, last.output)
                if missing is not None and not strict:
                    self.mismatches.append(f"{where}: {missing.strip()}")
                    continue
                assert missing is None, (
                    f"{where}: the output of the block at line {last.block.line} does not show\n"
                    f"  {missing.strip()}\nIt printed (last 4000 characters):\n"
                    f"{last.output[-4000:]}"
                )
                continue
            runner = {
                "run": self.run_shell,
                "background": self.run_background,
                "python": self.run_python,
            }[action]
            last = runner(block, timeout)
            assert last.returncode == 0, (
                f"{where}: the {block.lang} block failed (exit {last.returncode}):\n"
                f"{textwrap.indent(block.code, '    ')}\nIt printed (last 6000 characters):\n"
                f"{last.output[-6000:]}"
            )
            bad = noise(last.output)
            assert not bad, f"{where}: a healthy run printed:\n" + "\n".join(bad[:10])
            yield last

    def close(self) -> list[int]:
        """Stop the Python session and background blocks; kill anything left in the namespace."""
        self._stop_python()
        for process in self._background:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=30)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    process.kill()
        return self.namespace.close()


def _exports(env: dict[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items() if k.isidentifier())


def _read_status(process: subprocess.Popen[str], timeout: float) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            return 99  # the session died
        if line.startswith("@@readme-status "):
            return int(line.split()[1])
    return 98


#: The Python session: reads blocks as JSON lines, runs each in one namespace with its output
#: (fds 1 and 2, so child processes' and loggers' output too) sent to the block's log file.
_DRIVER = r"""
import json, os, sys, traceback
status = os.fdopen(os.dup(1), "w")
namespace = {"__name__": "__main__"}
for line in sys.stdin:
    request = json.loads(line)
    with open(request["log"], "wb") as log:
        saved = os.dup(1), os.dup(2)
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(log.fileno(), 1); os.dup2(log.fileno(), 2)
        code = 0
        try:
            exec(compile(request["code"], "<readme block>", "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(saved[0], 1); os.dup2(saved[1], 2)
        os.close(saved[0]); os.close(saved[1])
    status.write(f"@@readme-status {code}\n"); status.flush()
"""


def user_environment(home: Path, data_source: Path) -> dict[str, str]:
    """The environment of a new user: nothing of this project configured, no uv on ``PATH``,
    their own Prefect profile, the data source a user without internet exports."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "BRIDGEAI_", "MLFLOW_", "VIRTUAL_ENV", "DOCKER_", "UV_"))
        # What the test's own runner leaves behind: `uv run` exports UV (its own path, which
        # the Makefile's `UV ?=` would take) and `make test` its MAKEFLAGS/MAKELEVEL.
        and key not in ("PYTHONPATH", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "UV")
        and key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    }
    keep = ("python3", "git", "make", "curl")
    # This checkout's virtualenv (`uv run` puts its bin first) is not the new user's either.
    own_venv = Path(sys.prefix, "bin") if sys.prefix != sys.base_prefix else None
    env["PATH"] = os.pathsep.join(
        d
        for d in env.get("PATH", "").split(os.pathsep)
        if not (Path(d, "uv").exists() and not any(Path(d, t).exists() for t in keep))
        and (own_venv is None or Path(d) != own_venv)
    )
    # Resolved: a symlink under /tmp would point nowhere inside the page's private /tmp.
    env.update(BRIDGEAI_DATA_SOURCE=str(data_source.resolve()), PREFECT_HOME=str(home / "prefect"))
    return env
