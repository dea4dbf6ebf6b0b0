"""Storing drift reports: ``report_<YYYYmmdd_HHMMSS>.html`` and ``.json`` in the reports bucket.

A copy is kept under ``$BRIDGEAI_HOME/drift/reports`` until both uploads succeed, so a report is
never lost to a storage outage. The bucket stays private: the link a browser opens is a presigned
URL (S3 signature version 4) that expires after ``link_seconds`` (7 days at most, SigV4's limit),
and the expiry is returned with it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bridgeai.drift.report import RenderedReport
from bridgeai.paths import home_dir

#: The longest a presigned link can live (SigV4 refuses more): 7 days.
MAX_LINK_SECONDS = 7 * 24 * 3600


class ReportLocation(BaseModel):
    """Where a stored report is."""

    report_uri: str = Field(description="fsspec URI of the HTML")
    json_uri: str = Field(description="fsspec URI of the JSON")
    report_url: str = Field(description="A link a browser can open (presigned for S3)")
    report_url_expires_at: datetime | None = Field(
        default=None, description="When the presigned link stops working (None: a local file)"
    )


def report_keys(now: datetime | None = None, attempt: int = 0) -> tuple[str, str]:
    """``report_<YYYYmmdd_HHMMSS>.html`` and ``.json`` (UTC); ``_<n>`` added on a collision."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    stem = f"report_{stamp}" + (f"_{attempt + 1}" if attempt else "")
    return f"{stem}.html", f"{stem}.json"


def upload_report(
    storage: Any,
    report: RenderedReport,
    now: datetime | None = None,
    link_seconds: int = MAX_LINK_SECONDS,
) -> ReportLocation:
    """Store the HTML and JSON in the storage block's reports bucket.

    A copy is written under ``$BRIDGEAI_HOME/drift/reports`` first and removed once both
    uploads succeed, so a report is never lost to a storage outage; its name depends only on
    the report's timestamp and content, so retrying the upload reuses the same copy.

    Args:
        storage: an ``ObjectStorage`` block (``blocks.ObjectStorage``).
        report: the rendered report.
        now: the report's timestamp (default: now, UTC).
        link_seconds: lifetime of the presigned link, 1 s to 7 days.

    Raises:
        ValueError: ``link_seconds`` is out of range.
        OSError: the storage refused or could not be reached; the message says where the
            local copy is.
    """
    _check_link_seconds(link_seconds)
    now = now or datetime.now(UTC)
    html_key, json_key = report_keys(now)
    digest = hashlib.sha256(report.html.encode()).hexdigest()[:12]
    spool = home_dir("drift", "reports")
    html_copy = spool / html_key.replace(".html", f".{digest}.html")
    json_copy = spool / json_key.replace(".json", f".{digest}.json")
    html_copy.write_text(report.html, encoding="utf-8")
    json_copy.write_text(report.json, encoding="utf-8")
    bucket = storage.reports_bucket
    try:
        fs = storage.filesystem()
        for attempt in range(1000):  # same second as an earlier report: report_<stamp>_2, ...
            html_key, json_key = report_keys(now, attempt)
            html_uri, json_uri = storage.uri(bucket, html_key), storage.uri(bucket, json_key)
            if not fs.exists(html_uri) and not fs.exists(json_uri):
                break
        _put(fs, storage, html_uri, html_copy, "text/html; charset=utf-8")
        _put(fs, storage, json_uri, json_copy, "application/json")
    except Exception as exc:
        raise OSError(
            f"could not store the drift report in {storage.uri(bucket)} "
            f"({type(exc).__name__}: {exc}); it is kept in {html_copy} and {json_copy.name}"
        ) from exc
    html_copy.unlink(missing_ok=True)
    json_copy.unlink(missing_ok=True)
    url, expires = browsable_url(storage, html_key, expires_in=link_seconds)
    return ReportLocation(
        report_uri=html_uri, json_uri=json_uri, report_url=url, report_url_expires_at=expires
    )


def _put(fs: Any, storage: Any, uri: str, source: Path, content_type: str) -> None:
    if storage.is_local:
        fs.put_file(str(source), uri)
    else:
        # The content type lets a browser open the HTML from the bucket instead of downloading it.
        fs.pipe_file(uri, source.read_bytes(), ContentType=content_type)


def browsable_url(
    storage: Any, key: str, *, expires_in: int = MAX_LINK_SECONDS
) -> tuple[str, datetime | None]:
    """A link to ``key`` in the reports bucket a browser can open, and when it expires.

    Locally that is the ``file://`` URI (no expiry). For S3 it is a presigned ``GET`` URL
    (SigV4, path-style, so it works for MinIO and SeaweedFS endpoints as for AWS): anyone with
    the link can read this one object until it expires; the bucket itself stays private.

    Raises:
        ValueError: ``expires_in`` is out of range.
    """
    _check_link_seconds(expires_in)
    if storage.is_local:
        return str(storage.uri(storage.reports_bucket, key)), None
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        **storage.boto3_kwargs(),
    )
    signed_at = datetime.now(UTC)
    url = client.generate_presigned_url(
        "get_object",
        Params={"Bucket": storage.reports_bucket, "Key": key},
        ExpiresIn=expires_in,
    )
    return str(url), (signed_at + timedelta(seconds=expires_in)).replace(microsecond=0)


def _check_link_seconds(seconds: int) -> None:
    if not 1 <= seconds <= MAX_LINK_SECONDS:
        raise ValueError(
            f"a presigned report link lives 1 s to 7 days ({MAX_LINK_SECONDS} s), not {seconds} s"
        )
