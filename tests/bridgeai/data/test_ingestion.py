"""Download, validation, cleaning and checksums of the housing CSV (no Prefect)."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import polars as pl
import pytest

from bridgeai import schema
from bridgeai.data import cleaning, download, validation
from bridgeai.data.download import DownloadError
from bridgeai.data.validation import ValidationError
from bridgeai.testing.synthetic import housing_frame
from tests.support.http import serve, serve_directory
from tests.support.ingest import write_csv


def _text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.all().cast(pl.String))


def _parse(frame: pl.DataFrame, tmp_path: Path) -> pl.DataFrame:
    path = write_csv(tmp_path / "in.csv", frame)
    return validation.parse(validation.read_csv(path), "in.csv")


def _problems(frame: pl.DataFrame, tmp_path: Path) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        _parse(frame, tmp_path)
    return caught.value


# -- download -----------------------------------------------------------------------------------
def test_default_source_is_the_env_var_else_the_originals_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRIDGEAI_DATA_SOURCE", "/data/x.csv")
    assert download.default_source() == "/data/x.csv"
    monkeypatch.delenv("BRIDGEAI_DATA_SOURCE")
    assert download.default_source().endswith("/random_file_shares/main/HousingData.csv")


def test_http_download_streams_the_file(tmp_path: Path, housing_csv: Path) -> None:
    with serve_directory(housing_csv.parent) as base:
        path = download.download(f"{base}/{housing_csv.name}", tmp_path / "dl")
    assert path.read_bytes() == housing_csv.read_bytes()
    assert path.parent == tmp_path / "dl"
    assert not list(path.parent.glob("*.part"))


def test_local_paths_and_file_uris_are_read_in_place(tmp_path: Path, housing_csv: Path) -> None:
    assert download.download(str(housing_csv), tmp_path) == housing_csv
    assert download.download(housing_csv.as_uri(), tmp_path) == housing_csv
    with pytest.raises(DownloadError, match="is not a file") as caught:
        download.download(str(tmp_path / "nope.csv"), tmp_path)
    assert not caught.value.transient


def test_unreachable_url_is_transient_and_says_how_to_work_offline(tmp_path: Path) -> None:
    from bridgeai import procs

    url = f"http://127.0.0.1:{procs.free_port()}/HousingData.csv"
    with pytest.raises(DownloadError) as caught:
        download.download(url, tmp_path, timeout=3)
    assert caught.value.transient
    assert "BRIDGEAI_DATA_SOURCE" in str(caught.value) and "local CSV file path" in str(
        caught.value
    )


class _Status(BaseHTTPRequestHandler):
    status = 200
    hits: list[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no")


@pytest.fixture
def status_server() -> Iterator[type[_Status]]:
    handler = type("H", (_Status,), {"hits": []})
    with serve(handler) as url:
        handler.url = url  # type: ignore[attr-defined]
        yield handler


@pytest.mark.parametrize(("status", "transient"), [(404, False), (403, False), (503, True)])
def test_http_errors_are_transient_only_for_5xx(
    tmp_path: Path, status_server: type[_Status], status: int, transient: bool
) -> None:
    status_server.status = status
    url = status_server.url + "/data.csv?token=abc"  # type: ignore[attr-defined]
    with pytest.raises(DownloadError, match=f"HTTP {status}") as caught:
        download.download(url, tmp_path)
    assert caught.value.transient is transient
    assert "abc" not in str(caught.value)  # query strings may hold secrets
    assert not list(tmp_path.glob("*.part"))


def test_oversized_download_is_refused(tmp_path: Path, housing_csv: Path) -> None:
    with serve_directory(housing_csv.parent) as base, pytest.raises(DownloadError, match="larger"):
        download.download(f"{base}/{housing_csv.name}", tmp_path / "dl", max_bytes=100)
    assert not list((tmp_path / "dl").iterdir())


def test_s3_source_needs_an_s3_storage(tmp_path: Path) -> None:
    from blocks import ObjectStorage

    with pytest.raises(DownloadError, match="storage_block"):
        download.download("s3://bucket/data.csv", tmp_path, storage=ObjectStorage())


@pytest.mark.integration
def test_s3_source_through_the_storage_block(tmp_path: Path, s3_storage, housing_csv: Path) -> None:
    uri = s3_storage.uri(s3_storage.data_bucket, "incoming/housing.csv")
    s3_storage.filesystem().put(str(housing_csv), uri)
    path = download.download(uri, tmp_path, storage=s3_storage)
    assert path.read_bytes() == housing_csv.read_bytes()
    with pytest.raises(DownloadError, match="does not exist") as caught:
        download.download(uri + ".missing", tmp_path, storage=s3_storage)
    assert not caught.value.transient


# -- validation ---------------------------------------------------------------------------------
def test_valid_data_is_typed_and_categoricals_normalised(tmp_path: Path) -> None:
    frame = _text(housing_frame(30, seed=1))
    frame = frame.with_columns(
        pl.col("mainroad").str.to_uppercase().map_elements(lambda v: f"  {v} ", pl.String),
        pl.col("furnishingstatus").str.to_titlecase(),
    )
    parsed = _parse(frame, tmp_path)
    assert parsed.columns == list(schema.COLUMNS)
    assert dict(parsed.schema) == validation.DTYPES
    assert set(parsed["mainroad"]) <= {"yes", "no"}
    assert set(parsed["furnishingstatus"]) <= set(schema.FURNISHING)


def test_header_names_are_stripped_and_lower_cased(tmp_path: Path) -> None:
    frame = housing_frame(10, seed=2)
    frame = frame.rename({"price": " Price ", "furnishingstatus": "FurnishingStatus"})
    assert _parse(frame, tmp_path).columns == list(schema.COLUMNS)


def test_missing_column_is_named(tmp_path: Path) -> None:
    error = _problems(housing_frame(10, seed=3).drop("parking"), tmp_path)
    assert [p.column for p in error.problems] == ["parking"]
    assert "parking: is missing" in str(error) and "nothing was versioned" in str(error)


def test_non_numeric_price_is_named_with_sample_lines(tmp_path: Path) -> None:
    frame = _text(housing_frame(10, seed=4))
    frame[2, "price"] = "twelve"
    error = _problems(frame, tmp_path)
    (problem,) = error.problems
    assert (problem.column, problem.count, problem.samples) == ("price", 1, [(4, "twelve")])
    assert problem.rows[0]["price"] == "twelve" and problem.rows[0]["area"] == frame[2, "area"]
    assert "price: 1 row(s) not a number (e.g. line 4: 'twelve')" in str(error)


def test_unknown_category_is_named(tmp_path: Path) -> None:
    frame = _text(housing_frame(10, seed=5))
    frame[0, "furnishingstatus"] = "palace"
    error = _problems(frame, tmp_path)
    assert "furnishingstatus: 1 row(s) not one of furnished, semi-furnished, unfurnished" in str(
        error
    )
    assert "'palace'" in str(error)


def test_every_offending_column_is_listed_at_once(tmp_path: Path) -> None:
    frame = _text(housing_frame(12, seed=6)).drop("stories")
    frame[0, "price"] = "-5"
    frame[1, "price"] = "n/a"
    frame[2, "bedrooms"] = "2.5"
    frame[3, "parking"] = "-1"
    frame[4, "area"] = "0"
    frame[5, "guestroom"] = "maybe"
    frame[6, "basement"] = ""
    frame[7, "bathrooms"] = "inf"
    error = _problems(frame, tmp_path)
    found = {(p.column, p.problem.split(" (")[0]) for p in error.problems}
    assert found == {
        ("stories", "is missing from the header"),
        ("price", "not a number"),
        ("price", "not greater than 0"),
        ("bedrooms", "not a whole number"),
        ("parking", "negative"),
        ("area", "not greater than 0"),
        ("guestroom", "not one of yes, no"),
        ("basement", "with no value"),
        ("bathrooms", "not a number"),
    }
    for column in ("stories", "price", "bedrooms", "parking", "area", "guestroom", "basement"):
        assert column in str(error).split(";")[0]


def test_unreadable_and_empty_files_fail_validation(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValidationError, match="is empty: no header, no rows"):
        validation.read_csv(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(schema.COLUMNS) + "\n")
    with pytest.raises(ValidationError, match="no rows"):
        validation.parse(validation.read_csv(header_only))
    twice = tmp_path / "twice.csv"
    twice.write_text("price,Price\n1,2\n")
    with pytest.raises(ValidationError, match="more than once"):
        validation.read_csv(twice)


# -- cleaning -----------------------------------------------------------------------------------
def test_clean_drops_duplicates_missing_prices_and_the_index_column(tmp_path: Path) -> None:
    base = _text(housing_frame(20, seed=7))
    dup = base[3].with_columns(pl.col("mainroad").str.to_uppercase())  # same row once normalised
    no_price = base[5].with_columns(pl.lit(None, pl.String).alias("price"))
    frame = pl.concat([base, dup, no_price, no_price])
    # The original wrote the pandas index as an unnamed first column; it must not survive.
    frame = frame.with_row_index("").with_columns(pl.col("").cast(pl.String))
    cleaned = cleaning.clean(_parse(frame, tmp_path))

    assert cleaned.frame.columns == list(schema.COLUMNS)
    assert cleaned.report() == {
        "rows_read": 23,
        "rows_kept": 20,
        "duplicates_dropped": 1,
        "missing_price_dropped": 2,
        "columns_dropped": [""],
    }
    # Order kept (the split depends on it); nothing imputed.
    expected = housing_frame(20, seed=7).with_columns(
        pl.col("price").cast(pl.Float64), pl.col("area").cast(pl.Float64)
    )
    assert cleaned.frame.equals(expected)


def test_clean_keeps_missing_numeric_features_unimputed(tmp_path: Path) -> None:
    frame = _text(housing_frame(10, seed=8))
    frame[4, "area"] = ""
    cleaned = cleaning.clean(_parse(frame, tmp_path))
    assert cleaned.frame.height == 10 and cleaned.frame["area"].null_count() == 1


def test_checksum_identifies_content_and_split_parameters() -> None:
    frame = cleaning.clean(validation.parse(_text(housing_frame(50, seed=9)))).frame
    params = {"test_size": 0.2, "val_size": 0.2, "seed": 42}
    assert cleaning.checksum(frame, params) == cleaning.checksum(frame.clone(), dict(params))
    assert cleaning.checksum(frame, params) != cleaning.checksum(frame, {**params, "seed": 1})
    assert cleaning.checksum(frame, params) != cleaning.checksum(frame.head(49), params)


def test_column_summary_covers_every_column() -> None:
    frame = cleaning.clean(validation.parse(_text(housing_frame(40, seed=10)))).frame
    summary = {row["column"]: row for row in cleaning.column_summary(frame)}
    assert list(summary) == list(schema.COLUMNS)
    assert summary["price"]["min"] == frame["price"].min()
    assert summary["mainroad"]["values"].startswith(("yes: ", "no: "))
