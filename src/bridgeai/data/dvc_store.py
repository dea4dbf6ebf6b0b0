"""DVC on the data repository's working clone: init, add, push and read, secrets in memory only.

Everything goes through DVC's Python API in the calling process: on this project's machines it
is several times faster than spawning the ``dvc`` CLI per step (see ``bench/bench_ingest.py``),
and credentials travel as ``remote_config`` in memory instead of ``.dvc/config.local`` or the
environment. The committed ``.dvc/config`` holds only the remote's non-secret settings.

Failures become :class:`DataRepoError` with a ``transient`` flag, so the flow retries a dead or
overloaded S3 server but not rejected credentials or a missing bucket.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridgeai.model.errors import BridgeAIError

#: The DVC remote's name in ``.dvc/config``.
REMOTE = "storage"
#: The in-memory remote every transfer uses: the current storage block's full settings. A new
#: name, not an override of ``storage``, because DVC merges overrides key by key and the version
#: being read may have been pushed to another kind of remote (a folder, where this is S3).
_RUNTIME_REMOTE = "bridgeai-runtime"

_AUTH_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken")
#: Exception class names (from botocore, aiohttp and DVC) that mean "the network failed".
_TRANSIENT_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "UploadError",  # DVC: some files failed to upload (each after the client's own retries)
        "DownloadError",
    }
)


class DataRepoError(BridgeAIError):
    """A git or DVC operation on the data repository failed; the message says what to do.

    ``transient`` is True when retrying later may succeed (network trouble, a 5xx, a server that
    is down); False when something must be fixed first (credentials, a missing tag).
    """


def redact_url(url: str) -> str:
    """``url`` without user, password or query string (pre-signed URLs carry secrets there)."""
    parts = urlsplit(url)
    if not parts.scheme or parts.scheme == "file" or len(parts.scheme) == 1:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = "?<redacted>" if parts.query else ""
    return f"{parts.scheme}://{host}{parts.path}{query}"


# -- DVC ------------------------------------------------------------------------------------------
def _repo_class() -> Any:
    """DVC's ``Repo``, imported on first use with DVC's console chatter turned off.

    ``import dvc`` attaches INFO handlers that print "To track the changes with git..." hints to
    stdout; in a flow those hints are noise (the flow commits the files itself).
    """
    import logging

    from dvc.repo import Repo

    logging.getLogger("dvc").setLevel(logging.WARNING)
    return Repo


def _site_cache(workdir: Path) -> str:
    # DVC's default (/var/tmp/dvc) is shared by every repository on the machine; keeping it
    # inside the clone means removing the clone removes every local cache of the data.
    return str(workdir / ".dvc" / "tmp" / "site-cache")


@contextlib.contextmanager
def _open(workdir: Path, remote_config: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A DVC ``Repo`` on ``workdir``; ``remote_config`` (secrets included) stays in memory."""
    kwargs: dict[str, Any] = {"config": {"core": {"site_cache_dir": _site_cache(workdir)}}}
    if remote_config:
        kwargs.update(remote=_RUNTIME_REMOTE, remote_config=dict(remote_config))
    with _repo_class()(str(workdir), **kwargs) as repo:
        repo.scm_context.quiet = True
        yield repo


def init(workdir: Path) -> None:
    """``dvc init`` in a git working tree: default remote ``storage``, no analytics/updater."""
    _repo_class().init(str(workdir))
    with _open(workdir) as repo, repo.config.edit() as conf:
        conf["core"]["remote"] = REMOTE
        conf["core"]["analytics"] = False
        conf["core"]["check_update"] = False


def add(workdir: Path, targets: Sequence[Path], remote: Mapping[str, str]) -> list[str]:
    """Record ``remote`` (non-secret settings) in ``.dvc/config`` and ``dvc add`` the targets.

    Returns:
        The md5 of each target, in order.
    """
    with _open(workdir) as repo:
        with repo.config.edit() as conf:
            conf["remote"][REMOTE] = dict(remote)
        stages = repo.add([str(t) for t in targets])
    return [str(stage.outs[0].hash_info.value) for stage in stages]


def push(workdir: Path, remote_config: Mapping[str, Any]) -> int:
    """``dvc push`` everything the working tree tracks; return how many files were uploaded.

    Raises:
        DataRepoError: the remote is unreachable or refused the upload.
    """
    try:
        with _open(workdir, remote_config) as repo:
            return int(repo.push())
    except Exception as exc:
        raise storage_error(exc, "push the data to", remote_config) from exc


def read(workdir: Path, rev: str, path: str, remote_config: Mapping[str, Any]) -> bytes:
    """The bytes of DVC-tracked ``path`` at ``rev``: from the local cache, else the remote.

    Raises:
        DataRepoError: the remote is unreachable, or does not hold the data.
    """
    _repo_class()
    import dvc.api

    try:
        data = dvc.api.read(
            path,
            repo=str(workdir),
            rev=rev,
            remote=_RUNTIME_REMOTE,
            remote_config=dict(remote_config),
            config={"core": {"site_cache_dir": _site_cache(workdir)}},
            mode="rb",
        )
    except Exception as exc:
        raise storage_error(exc, f"read {path} at {rev} from", remote_config) from exc
    return bytes(data)


# -- errors ---------------------------------------------------------------------------------------
def storage_error(exc: BaseException, action: str, remote: Mapping[str, Any]) -> DataRepoError:
    """A :class:`DataRepoError` for a failed transfer, saying what to fix or that a retry helps."""
    where = redact_url(str(remote.get("endpointurl") or remote.get("url") or "the DVC remote"))
    text = f"{type(exc).__name__}: {exc}"
    code = _client_error_code(exc)
    if code in _AUTH_CODES:
        return DataRepoError(
            f"could not {action} {where}: the storage rejected the credentials ({code}); check "
            f"the access_key_id and secret_access_key of the ObjectStorage block"
        )
    if code == "NoSuchBucket":
        return DataRepoError(
            f"could not {action} {where}: the bucket does not exist; create it "
            f"(ObjectStorage.ensure_buckets(), or `bridgeai up`)"
        )
    if type(exc).__name__ in ("FileMissingError", "PathMissingError", "FileNotFoundError"):
        return DataRepoError(
            f"could not {action} {where}: the data is not there ({text}); was this version "
            f"pushed to another storage? Its .dvc/config records where it went"
        )
    transient = is_transient(exc) or (code is not None and code.startswith(("5", "Slow")))
    advice = " (is the S3 server running? `bridgeai status`)" if transient else ""
    return DataRepoError(f"could not {action} {where}: {text}{advice}", transient=transient)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _client_error_code(exc: BaseException) -> str | None:
    """The S3 error code (or the HTTP status of a 5xx) anywhere in the exception chain."""
    for current in _chain(exc):
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status and int(status) >= 500:
                return str(status)
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
    return None


def is_transient(exc: BaseException) -> bool:
    """Connection failures and timeouts anywhere in the exception chain."""
    return any(
        type(current).__name__ in _TRANSIENT_NAMES
        or isinstance(current, ConnectionError | TimeoutError)
        for current in _chain(exc)
    )
