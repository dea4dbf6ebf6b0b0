"""Running git for the data repository: its own identity and settings, secrets kept off disk.

Every command gets an environment that makes the data commits the repository's own, whatever
the user's global git configuration says (identity, no signing, no hooks), never prompts, gives
up on a stalled transfer, and carries an https token as an HTTP header through ``GIT_CONFIG_*``
variables (never in ``.git/config``). A failure is a :class:`DataRepoError` whose ``transient``
flag says whether trying again may help: git reports network trouble only in its stderr, so
its words are what decides, here at the boundary.
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bridgeai.data.dvc_store import DataRepoError

GIT_TIMEOUT = 300.0

_REPO_POINTERS = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR"}
)
#: git stderr fragments that mean "try again later" rather than "fix something".
_TRANSIENT_GIT = (
    "could not resolve host",
    "connection refused",
    "connection reset",
    "connection timed out",
    "operation timed out",
    "timed out",
    "the remote end hung up unexpectedly",
    "early eof",
    "rpc failed",
    "the requested url returned error: 5",
    "gnutls_handshake",
    "failed to connect",
    "temporary failure",
)


@dataclass(frozen=True)
class Identity:
    """The author and committer of every data commit (never the user's global git identity)."""

    name: str = "BridgeAI data ingestion"
    email: str = "bridgeai-data@localhost"


def basic_auth(username: str, token: str) -> str:
    """An ``Authorization`` header value for a token (GitHub: user ``x-access-token``)."""
    raw = base64.b64encode(f"{username}:{token}".encode()).decode()
    return f"Basic {raw}"


def environment(identity: Identity, branch: str, auth_header: str | None) -> dict[str, str]:
    """The environment of every git command on the data repository."""
    # Inherited repository pointers (set inside git hooks, for instance) would aim every
    # command at another repository.
    inherited = {k: v for k, v in os.environ.items() if k not in _REPO_POINTERS}
    env = {
        **inherited,
        "GIT_AUTHOR_NAME": identity.name,
        "GIT_AUTHOR_EMAIL": identity.email,
        "GIT_COMMITTER_NAME": identity.name,
        "GIT_COMMITTER_EMAIL": identity.email,
        "GIT_TERMINAL_PROMPT": "0",  # a missing credential fails instead of hanging
        "GIT_ASKPASS": "true",
        "SSH_ASKPASS": "true",
    }
    pairs = [
        # The user's global settings must not sign, hook or rewrite the data commits.
        ("commit.gpgsign", "false"),
        ("tag.gpgsign", "false"),
        ("core.hooksPath", os.devnull),
        ("advice.detachedHead", "false"),
        ("init.defaultBranch", branch),
        # Abort a stalled transfer instead of hanging a flow run forever.
        ("http.lowSpeedLimit", "1000"),
        ("http.lowSpeedTime", "30"),
    ]
    if auth_header:
        pairs.append(("http.extraHeader", f"Authorization: {auth_header}"))
    env["GIT_CONFIG_COUNT"] = str(len(pairs))
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def run(
    args: tuple[str, ...],
    *,
    cwd: Path,
    env: dict[str, str],
    location: str,
    auth_header: str | None = None,
    input: bytes | None = None,
) -> bytes:
    """Run ``git args`` in ``cwd`` and return its stdout.

    Raises:
        DataRepoError: git failed; ``transient`` says whether a retry may help.
    """
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            input=input,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DataRepoError(
            f"git {args[0]} on {location} timed out after {GIT_TIMEOUT:.0f} s",
            transient=True,
        ) from None
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        if auth_header:
            stderr = stderr.replace(auth_header, "<redacted>")
        lowered = stderr.lower()
        transient = any(fragment in lowered for fragment in _TRANSIENT_GIT)
        hint = ""
        if "authentication failed" in lowered or "returned error: 40" in lowered:
            hint = " (check the token and username of the DataRepository block)"
        raise DataRepoError(
            f"git {args[0]} on {location} failed: {stderr}{hint}", transient=transient
        )
    return result.stdout
