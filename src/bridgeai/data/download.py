"""Getting the housing CSV: an http(s) URL (streamed, with a timeout), an ``s3://`` object, a path.

:func:`download` copies the source into a folder. Failures raise :class:`DownloadError`, whose
``transient`` flag tells the flow's retry policy whether trying again may help (a server that
did not answer) or not (a 404, a missing file, a source larger than :data:`MAX_BYTES`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bridgeai.data.dvc_store import redact_url, storage_error
from bridgeai.model.errors import BridgeAIError

SOURCE_ENV = "BRIDGEAI_DATA_SOURCE"
#: The original demonstrator's public dataset (545 rows).
DEFAULT_SOURCE = (
    "https://raw.githubusercontent.com/renjith-digicat/random_file_shares/main/HousingData.csv"
)
#: A wrong URL must not fill the disk.
MAX_BYTES = 512 * 1024 * 1024
_OFFLINE_HINT = (
    "set BRIDGEAI_DATA_SOURCE or pass source= to a local CSV file path "
    "(e.g. source='/data/HousingData.csv')"
)


class DownloadError(BridgeAIError):
    """The source could not be fetched; ``transient`` says whether retrying may help."""


def default_source() -> str:
    """``$BRIDGEAI_DATA_SOURCE``, else the original's public ``HousingData.csv`` URL."""
    return os.environ.get(SOURCE_ENV) or DEFAULT_SOURCE


def download(
    source: str,
    directory: Path,
    *,
    storage: Any = None,
    timeout: float = 30.0,
    max_bytes: int = MAX_BYTES,
) -> Path:
    """Fetch ``source`` into ``directory`` and return the local file.

    Args:
        source: an http(s) URL, an ``s3://bucket/key`` URI (read with ``storage``), a
            ``file://`` URI or a local path (read in place, not copied).
        directory: where downloads are written.
        storage: the ``ObjectStorage`` block, for ``s3://`` sources.
        timeout: seconds to wait for the connection and between received chunks.
        max_bytes: refuse larger downloads.

    Raises:
        DownloadError: the source is missing, unreachable or too large; ``transient`` is True
            for connection errors, timeouts and 5xx answers only.
    """
    parts = urlsplit(source)
    scheme = parts.scheme.lower() if len(parts.scheme) > 1 else ""
    if scheme in ("http", "https"):
        return _download_http(source, directory, timeout, max_bytes)
    if scheme == "s3":
        return _download_s3(source, directory, storage, max_bytes)
    if scheme in ("", "file"):
        path = Path(unquote(parts.path) if scheme == "file" else source).expanduser()
        if not path.is_file():
            raise DownloadError(f"{path} is not a file: pass source= an existing CSV file path")
        return path
    raise DownloadError(
        f"unsupported source {redact_url(source)!r}: use an http(s) URL, an s3:// URI or a "
        f"local file path"
    )


def _download_http(url: str, directory: Path, timeout: float, max_bytes: int) -> Path:
    import httpx

    shown = redact_url(url)
    target = directory / (Path(urlsplit(url).path).name or "source.csv")
    partial = target.with_name(target.name + ".part")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                transient = response.status_code >= 500 or response.status_code in (408, 429)
                advice = (
                    "the server failed; retrying"
                    if transient
                    else "check the URL and its access rights"
                )
                raise DownloadError(
                    f"{shown} answered HTTP {response.status_code}: {advice}", transient=transient
                )
            size = 0
            with open(partial, "wb") as handle:
                for chunk in response.iter_bytes(1024 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadError(f"{shown} is larger than {max_bytes} bytes")
                    handle.write(chunk)
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"cannot download {shown} ({type(exc).__name__}: {exc}); without network access, "
            f"{_OFFLINE_HINT}",
            transient=True,
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target


def _download_s3(uri: str, directory: Path, storage: Any, max_bytes: int) -> Path:
    if storage is None or getattr(storage, "is_local", True):
        raise DownloadError(
            f"{uri} is an s3:// URI but the storage block has no S3 endpoint: pass "
            f"storage_block= the name of an S3 ObjectStorage block, or {_OFFLINE_HINT}"
        )
    fs = storage.filesystem()
    target = directory / (Path(urlsplit(uri).path).name or "source.csv")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        info = fs.info(uri)
        if int(info.get("size") or 0) > max_bytes:
            raise DownloadError(f"{uri} is larger than {max_bytes} bytes")
        with fs.open(uri, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
    except FileNotFoundError:
        raise DownloadError(f"{uri} does not exist in {storage.endpoint_url}") from None
    except PermissionError as exc:
        raise DownloadError(f"{uri}: access denied ({exc}); check the storage block") from None
    except DownloadError:
        raise
    except Exception as exc:
        error = storage_error(exc, "read", {"endpointurl": storage.endpoint_url})
        raise DownloadError(str(error), transient=error.transient) from exc
    return target
