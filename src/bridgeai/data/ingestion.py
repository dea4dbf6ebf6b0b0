"""Getting the housing CSV in: download, validate against the schema, clean, checksum.

* :func:`download` streams an http(s) URL (with a timeout), copies an ``s3://`` object through the
  storage block's filesystem, or reads a local path. Failures raise :class:`DownloadError`, whose
  ``transient`` flag tells the flow's retry policy whether trying again may help.
* :func:`parse` reads the CSV as text and checks every rule of :mod:`bridgeai.schema` at once:
  required columns, numbers where numbers belong, allowed categorical values in any case,
  ``price > 0``. Every offending column is reported, with sample lines, in one
  :class:`ValidationError`.
* :func:`clean` drops rows with no price and exact duplicates, and keeps only the schema's columns
  (never an index column). It imputes nothing: imputation is fitted by the model on train only.
* :func:`checksum` identifies the cleaned content (plus split parameters), so ingesting the same
  data twice creates one version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import polars as pl

from bridgeai import schema
from bridgeai.data.dvc_store import redact_url, storage_error

SOURCE_ENV = "BRIDGEAI_DATA_SOURCE"
#: The original demonstrator's public dataset (545 rows).
DEFAULT_SOURCE = (
    "https://raw.githubusercontent.com/renjith-digicat/random_file_shares/main/HousingData.csv"
)
#: A wrong URL must not fill the disk.
MAX_BYTES = 512 * 1024 * 1024
_SAMPLES = 3
_OFFLINE_HINT = (
    "set BRIDGEAI_DATA_SOURCE or pass source= to a local CSV file path "
    "(e.g. source='/data/HousingData.csv')"
)

#: Column types of the versioned splits.
DTYPES: dict[str, pl.DataType] = {
    "price": pl.Float64(),
    "area": pl.Float64(),
    **{c: pl.Int64() for c in schema.COUNTS},
    **{c: pl.String() for c in schema.CATEGORICAL},
}


class DownloadError(RuntimeError):
    """The source could not be fetched; ``transient`` says whether retrying may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class ColumnProblem:
    """One rule broken by one column, with a few offending lines as examples."""

    column: str
    problem: str
    count: int = 0
    #: (CSV line number, raw value) of the first offending rows.
    samples: list[tuple[int, str | None]] = field(default_factory=list)
    #: The first offending rows, every column as read.
    rows: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        text = f"{self.column}: {self.problem}"
        if self.count:
            text = f"{self.column}: {self.count} row(s) {self.problem}"
        if self.samples:
            shown = ", ".join(f"line {line}: {value!r}" for line, value in self.samples)
            text += f" (e.g. {shown})"
        return text


class ValidationError(ValueError):
    """The data breaks schema rules; ``problems`` lists every offending column."""

    def __init__(self, source: str, problems: list[ColumnProblem]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n".join(f"  - {p.describe()}" for p in problems)
        columns = ", ".join(dict.fromkeys(p.column for p in problems))
        super().__init__(
            f"{source} failed validation in column(s) {columns}; nothing was versioned. "
            f"Fix the source and ingest again:\n{listed}"
        )


@dataclass
class Cleaned:
    """The cleaned frame and what cleaning removed."""

    frame: pl.DataFrame
    rows_read: int
    duplicates: int
    missing_price: int
    dropped_columns: list[str]

    def report(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_kept": self.frame.height,
            "duplicates_dropped": self.duplicates,
            "missing_price_dropped": self.missing_price,
            "columns_dropped": self.dropped_columns,
        }


# -- download -----------------------------------------------------------------------------------
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


# -- validation ---------------------------------------------------------------------------------
def read_csv(path: Path, source: str | None = None) -> pl.DataFrame:
    """Read a CSV with every column as text (so validation sees the raw values).

    Header names are stripped and lower-cased.

    Raises:
        ValidationError: the file is empty or not a CSV.
    """
    shown = source or str(path)
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        problem = ColumnProblem("(file)", f"not a readable CSV: {first}")
        raise ValidationError(shown, [problem]) from None
    names = [c.strip().lower() for c in frame.columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems = [ColumnProblem(n, "appears more than once in the header") for n in duplicates]
        raise ValidationError(shown, problems)
    return frame.rename(dict(zip(frame.columns, names, strict=True)))


def parse(raw: pl.DataFrame, source: str = "the source") -> pl.DataFrame:
    """Check ``raw`` (all text, from :func:`read_csv`) against the schema and type it.

    Returns the schema's columns, in order, typed as in :data:`DTYPES`, categoricals
    normalised with :func:`bridgeai.schema.normalize_category`; other columns are kept after them
    (:func:`clean` drops them). Empty cells become nulls.

    Raises:
        ValidationError: listing every offending column (missing, non-numeric, negative or
            fractional counts, ``price <= 0``, categorical values outside the schema, or missing
            categorical values), with sample lines.
    """
    problems: list[ColumnProblem] = []
    missing = [c for c in schema.COLUMNS if c not in raw.columns]
    for column in missing:
        problems.append(ColumnProblem(column, "is missing from the header"))
    if raw.height == 0:
        problems.append(ColumnProblem("(file)", "has a header but no rows"))
    present = [c for c in schema.COLUMNS if c in raw.columns]
    # Strip once; empty cells are missing values.
    stripped = (pl.col(c).str.strip_chars() for c in raw.columns)
    text = raw.with_columns(pl.when(e != "").then(e).alias(e.meta.output_name()) for e in stripped)
    typed: dict[str, pl.Expr] = {}
    for column in present:
        if column in schema.CATEGORICAL:
            norm = pl.col(column).str.to_lowercase()
            allowed = list(schema.ALLOWED[column])
            listed = ", ".join(allowed)
            outside = ~norm.is_in(allowed) & norm.is_not_null()
            problems += _check(raw, text, column, outside, f"not one of {listed} (any case)")
            problems += _check(
                raw, text, column, norm.is_null(), f"with no value (allowed: {listed})"
            )
            typed[column] = norm
            continue
        number = pl.col(column).cast(pl.Float64, strict=False)
        unusable = number.is_null() | number.is_nan() | number.is_infinite()
        bad = pl.col(column).is_not_null() & unusable
        problems += _check(raw, text, column, bad, "not a number")
        fine = number.is_not_null() & number.is_finite()
        if column in (schema.TARGET, "area"):
            problems += _check(raw, text, column, fine & (number <= 0), "not greater than 0")
        else:
            problems += _check(raw, text, column, fine & (number < 0), "negative")
            problems += _check(
                raw, text, column, fine & (number != number.floor()), "not a whole number"
            )
        typed[column] = number.cast(DTYPES[column], strict=False)
    if problems:
        raise ValidationError(source, problems)
    extras = [c for c in raw.columns if c not in schema.COLUMNS]
    return text.select(
        *(typed[c].alias(c) for c in schema.COLUMNS),
        *(pl.col(c) for c in extras),
    )


def _check(
    raw: pl.DataFrame, text: pl.DataFrame, column: str, condition: pl.Expr, problem: str
) -> list[ColumnProblem]:
    hits = text.with_row_index("__row").filter(condition)
    if hits.height == 0:
        return []
    first = hits.head(_SAMPLES)["__row"].to_list()
    samples = [(int(i) + 2, raw[column][int(i)]) for i in first]  # line 1 is the header
    rows = [raw.row(int(i), named=True) for i in first]
    return [ColumnProblem(column, problem, hits.height, samples, rows)]


# -- cleaning -----------------------------------------------------------------------------------
def clean(frame: pl.DataFrame) -> Cleaned:
    """Drop rows with no price and exact duplicates; keep only the schema's columns.

    Row order is kept (the split depends on it), the first of each set of duplicates stays, and
    nothing is imputed.
    """
    dropped_columns = [c for c in frame.columns if c not in schema.COLUMNS]
    data = frame.select(schema.COLUMNS)
    priced = data.filter(pl.col(schema.TARGET).is_not_null())
    unique = priced.unique(keep="first", maintain_order=True)
    return Cleaned(
        frame=unique,
        rows_read=frame.height,
        duplicates=priced.height - unique.height,
        missing_price=data.height - priced.height,
        dropped_columns=dropped_columns,
    )


def checksum(frame: pl.DataFrame, params: dict[str, Any]) -> str:
    """sha256 of the cleaned rows (as CSV, a stable text form) and the split parameters."""
    digest = hashlib.sha256()
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(b"\n")
    digest.update(frame.write_csv().encode())
    return digest.hexdigest()


def column_summary(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """One row per column: type, missing values, and range (numeric) or value counts (text)."""
    summary = []
    for column in frame.columns:
        series = frame[column]
        row: dict[str, Any] = {
            "column": column,
            "dtype": str(series.dtype),
            "missing": series.null_count(),
        }
        if series.dtype.is_numeric():
            row.update(
                min=_number(series.min()), max=_number(series.max()), mean=_number(series.mean())
            )
            row["values"] = ""
        else:
            counts = series.drop_nulls().value_counts(sort=True)
            row.update(min=None, max=None, mean=None)
            row["values"] = ", ".join(f"{v}: {n}" for v, n in counts.iter_rows())
        summary.append(row)
    return summary


def _number(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)
