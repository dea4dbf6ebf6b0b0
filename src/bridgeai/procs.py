"""Child processes and ports: start a server, wait until it answers, stop it by PID.

Shared by the local-stack supervisor, the local model-server deployment and the tests, so every
server in this project is started, awaited and stopped the same way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"


class ServiceStartError(RuntimeError):
    """A server could not start: the message names the service and its log file."""


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on ``host:port`` and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str = LOOPBACK, avoid: Sequence[int] = ()) -> int:
    """A port the kernel says is free now (racy by nature; callers bind it soon)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port
    raise RuntimeError("no free port found")


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct free ports."""
    ports: list[int] = []
    while len(ports) < count:
        ports.append(free_port(host, avoid=ports))
    return ports


def pid_alive(pid: int | None) -> bool:
    """True when a process with this PID exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def start_process(
    command: Sequence[str],
    *,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session (so it can be stopped as a group), logging to a file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )


def stop_process(pid: int | None, timeout: float = 15.0) -> bool:
    """Stop the process group led by ``pid``: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Returns True if something was running.
    """
    if not pid_alive(pid):
        return False
    assert pid is not None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid):
                return True
            time.sleep(0.1)
    return True


def http_ok(url: str, timeout: float = 2.0, accept: Callable[[int], bool] | None = None) -> bool:
    """True when ``url`` answers with a status ``accept`` likes (default: 2xx)."""
    accept = accept or (lambda status: 200 <= status < 300)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return accept(response.status)
    except urllib.error.HTTPError as exc:
        return accept(exc.code)
    except (OSError, ValueError):
        return False


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    service: str,
    log_file: Path | None = None,
    process: subprocess.Popen[bytes] | None = None,
    interval: float = 0.2,
) -> None:
    """Poll ``check`` until it is true; fail fast with the log's tail if ``process`` exits.

    Raises:
        ServiceStartError: the process exited, or ``timeout`` passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if process is not None and process.poll() is not None:
            raise ServiceStartError(
                f"{service} exited with code {process.returncode} during start-up"
                + _log_hint(log_file)
            )
        if time.monotonic() > deadline:
            raise ServiceStartError(
                f"{service} did not become healthy within {timeout:.0f}s" + _log_hint(log_file)
            )
        time.sleep(interval)


def start_server(
    command: Sequence[str],
    *,
    log_file: Path,
    service: str,
    ready: str | Callable[[], bool],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server process and wait until it is ready; stop it again if it never is.

    Args:
        command: the server's command line.
        log_file: where its output goes (its tail is quoted when start-up fails).
        service: the server's name, for messages.
        ready: a URL that answers 2xx once the server is ready, or a check to poll.
        timeout: seconds to wait.
        env: extra environment variables.
        cwd: working directory.

    Raises:
        ServiceStartError: it exited or was not ready within ``timeout`` (it has been stopped).
    """
    process = start_process(command, log_file=log_file, env=env, cwd=cwd)
    check = (lambda: http_ok(ready)) if isinstance(ready, str) else ready
    try:
        wait_until(check, timeout=timeout, service=service, log_file=log_file, process=process)
    except BaseException:
        stop_process(process.pid)
        raise
    return process


def log_tail(log_file: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file, or an empty string."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _log_hint(log_file: Path | None) -> str:
    if log_file is None:
        return ""
    tail = log_tail(log_file)
    return f"; see its log {log_file}" + (f":\n{tail}" if tail else "")
