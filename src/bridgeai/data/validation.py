"""Validating the housing CSV against :mod:`bridgeai.schema`, every rule at once.

:func:`parse` reads the CSV as text and checks required columns, numbers where numbers belong,
allowed categorical values in any case, and ``price > 0``. Every offending column is reported,
with sample lines, in one :class:`ValidationError`, and nothing is versioned.
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from bridgeai import schema
from bridgeai.model.errors import InvalidInput

_SAMPLES = 3

#: Column types of the versioned splits.
DTYPES: dict[str, pl.DataType] = {
    "price": pl.Float64(),
    "area": pl.Float64(),
    **{c: pl.Int64() for c in schema.COUNTS},
    **{c: pl.String() for c in schema.CATEGORICAL},
}


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


class ValidationError(InvalidInput):
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


#: A source larger than this is refused before it is read (the same limit as a download).
MAX_SOURCE_BYTES = 512 * 1024 * 1024
#: Columns a header may have (the schema needs 13; extra columns are dropped by cleaning).
MAX_COLUMNS = 1000
#: The header line must end within this many bytes.
MAX_HEADER_BYTES = 1024 * 1024


def read_csv(path: Path, source: str | None = None) -> pl.DataFrame:
    """Read a CSV with every column as text (so validation sees the raw values).

    Header names are stripped and lower-cased. A UTF-8 byte-order mark and CRLF line ends are
    read as the plain file. Before anything is parsed, the size and the header are checked with
    bounded reads, so a huge file or a header of a million columns is refused without being
    loaded into memory.

    Raises:
        ValidationError: the file is empty, too large, not UTF-8, not a CSV, its header is
            too wide or names a column twice, or a row has more fields than the header.
    """
    shown = source or str(path)
    _check_header(path, shown)
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        problem = _locate(path) or ColumnProblem("(file)", f"not a readable CSV: {first}")
        raise ValidationError(shown, [problem]) from None
    names = [c.strip().lower() for c in frame.columns]
    return frame.rename(dict(zip(frame.columns, names, strict=True)))


def _check_header(path: Path, shown: str) -> None:
    """Size, encoding, width and duplicates of the header, from at most 1 MB of the file."""
    size = path.stat().st_size
    if size == 0:
        raise ValidationError(shown, [ColumnProblem("(file)", "is empty: no header, no rows")])
    if size > MAX_SOURCE_BYTES:
        problem = (
            f"is {size / 2**20:,.0f} MB, larger than the {MAX_SOURCE_BYTES // 2**20} MB a "
            "source may be"
        )
        raise ValidationError(shown, [ColumnProblem("(file)", problem)])
    with open(path, "rb") as handle:
        head = handle.read(MAX_HEADER_BYTES)
    line, newline, _ = head.partition(b"\n")
    if not newline and len(head) == MAX_HEADER_BYTES:
        problem = (
            f"has a header line longer than {MAX_HEADER_BYTES // 2**20} MB (at least "
            f"{head.count(b',') + 1:,} columns; at most {MAX_COLUMNS:,} are read, the schema "
            f"has {len(schema.COLUMNS)})"
        )
        raise ValidationError(shown, [ColumnProblem("(file)", problem)])
    try:
        text = line.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise ValidationError(shown, [_not_utf8(1, line, exc)]) from None
    names = [n.strip().lower() for n in next(csv.reader([text]), [])]
    if len(names) > MAX_COLUMNS:
        problem = (
            f"has {len(names):,} columns in its header; at most {MAX_COLUMNS:,} are read "
            f"(the schema has {len(schema.COLUMNS)})"
        )
        raise ValidationError(shown, [ColumnProblem("(file)", problem)])
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems = [ColumnProblem(n, "appears more than once in the header") for n in duplicates]
        raise ValidationError(shown, problems)


def _locate(path: Path) -> ColumnProblem | None:
    """The first line that is not UTF-8 or has more fields than the header (streamed)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as handle:
        number = 1
        # Bounded reads: a line of hundreds of megabytes is read in pieces, not at once.
        for raw in iter(lambda: handle.readline(MAX_HEADER_BYTES), b""):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as exc:
                return _not_utf8(number, raw, exc)
            number += raw.endswith(b"\n")
    csv.field_size_limit(MAX_SOURCE_BYTES)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        width = len(next(reader, []))
        for row in reader:
            if len(row) > width:
                return ColumnProblem(
                    "(file)",
                    f"line {reader.line_num} has {len(row)} fields but the header has {width} "
                    "(a comma inside a value must be quoted)",
                )
    return None


def _not_utf8(number: int, raw: bytes, exc: UnicodeDecodeError) -> ColumnProblem:
    byte = raw[exc.start : exc.start + 1].hex()
    return ColumnProblem(
        "(file)",
        f"is not UTF-8 text: line {number} has the byte 0x{byte} (Latin-1 or Windows-1252?); "
        "save the file as UTF-8",
    )


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
