"""Drift statistics, the Evidently report and its storage (bridgeai.drift).

The verdict tests run plain Evidently 0.7 on the same data and require equal tests, scores and
verdicts per column: the vectorised statistics must be Evidently's, not an approximation.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from bridgeai import schema
from bridgeai.drift import analysis
from bridgeai.drift import report as drift_report
from bridgeai.drift import storage as report_storage
from bridgeai.drift.result import DriftResult, column_specs
from bridgeai.drift.stats import METHODS, DriftInputError, choose_method
from bridgeai.testing.synthetic import housing_frame
from tests.support.drift import ARTIFACTS, chromium_available, render_offline
from tests.support.env import require

SPECS = column_specs(target=True)


def _analyse(reference: pl.DataFrame, current: pl.DataFrame, **kwargs) -> DriftResult:
    return analysis.analyse(
        reference, current, SPECS, reference_name="ref", current_name="cur", **kwargs
    )


def _reject_non_json(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


def _assert_same_as_evidently(
    reference: pl.DataFrame, current: pl.DataFrame, **kwargs
) -> DriftResult:
    ours = _analyse(reference, current, **kwargs)
    theirs = drift_report.evidently_verdicts(
        drift_report.evidently_run(
            reference,
            current,
            SPECS,
            threshold=kwargs.get("threshold"),
            per_column_method=kwargs.get("per_column_method"),
        )
    )
    assert set(theirs) == {c.column for c in ours.columns}
    for column in ours.columns:
        other = theirs[column.column]
        expected_method = (
            column.method_label if column.method_chosen_by == "auto" else column.method
        )
        assert other["method"] == expected_method, column.column
        assert column.threshold == pytest.approx(other["threshold"]), column.column
        assert column.score == pytest.approx(other["score"], rel=1e-9, abs=1e-300), column.column
        assert column.drifted == other["drifted"], column.column
    return ours


# -- Evidently's choice of test -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("rows", "values", "kind", "expected"),
    [
        (1000, 6, "num", "ks"),
        (1000, 5, "num", "chisquare"),
        (1000, 2, "num", "z"),
        (1000, 3, "cat", "chisquare"),
        (1000, 2, "cat", "z"),
        (1001, 6, "num", "wasserstein"),
        (1001, 5, "num", "jensenshannon"),
        (1001, 40, "cat", "jensenshannon"),
    ],
)
def test_test_choice_follows_evidentlys_rules(rows: int, values: int, kind, expected: str) -> None:
    assert choose_method(rows, values, kind) == expected


def test_old_vs_new_housing_data_gives_evidentlys_verdicts(shared_data: Path) -> None:
    old = pl.read_csv(shared_data / "HousingData-old.csv")
    new = pl.read_csv(shared_data / "HousingData-new.csv")
    result = _assert_same_as_evidently(old, new)
    assert "price" in result.drifted_columns
    assert result.column("price").method == "ks"
    assert result.column("price").p_value is not None and result.column("price").p_value < 0.05
    assert result.column("mainroad").method == "z"
    assert result.column("furnishingstatus").method == "chisquare"


def test_large_reference_with_missing_values_gives_evidentlys_verdicts() -> None:
    reference = housing_frame(3000, seed=11)
    current = housing_frame(4000, seed=12, area_shift=1.15)
    # Missing values are dropped per column, as Evidently does.
    current = current.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("area")).alias("area"),
        pl.when(pl.int_range(pl.len()) % 5 == 0)
        .then(None)
        .otherwise(pl.col("basement"))
        .alias("basement"),
    )
    result = _assert_same_as_evidently(reference, current)
    assert result.column("area").method == "wasserstein"
    assert result.column("area").current_rows == 4000 - len(range(0, 4000, 7))
    assert result.column("basement").method == "jensenshannon"
    assert "area" in result.drifted_columns
    assert "price" not in result.drifted_columns  # price does not depend on the area shift


def test_chosen_tests_and_thresholds_give_evidentlys_verdicts() -> None:
    reference = housing_frame(2500, seed=21)
    current = housing_frame(2500, seed=22, area_shift=1.03)
    result = _assert_same_as_evidently(
        reference,
        current,
        threshold=0.02,
        per_column_method={
            "area": "jensenshannon",  # numeric, binned (Sturges) path
            "bedrooms": "jensenshannon",  # numeric, value-by-value path
            "stories": "ks",
            "mainroad": "chisquare",
            "price": "psi",  # not vectorised here: Evidently's own implementation
        },
    )
    assert result.column("price").method == "psi"
    assert result.column("price").method_chosen_by == "user"
    assert result.column("stories").method_label == "K-S p_value"
    assert all(c.threshold == 0.02 for c in result.columns)


def test_a_version_against_itself_has_no_drift() -> None:
    frame = housing_frame(400, seed=5)
    result = _analyse(frame, frame)
    assert result.drifted_columns == []
    assert result.drift_share == 0
    assert not result.drift_detected
    assert result.column("area").p_value == pytest.approx(1.0)


def test_same_single_value_on_both_sides_is_not_drift() -> None:
    frame = housing_frame(200, seed=1).with_columns(pl.lit("no").alias("hotwaterheating"))
    column = _analyse(frame, frame).column("hotwaterheating")
    assert (column.method, column.p_value, column.drifted) == ("z", 1.0, False)


def test_a_category_the_reference_never_saw_is_drift() -> None:
    reference = housing_frame(300, seed=1).with_columns(
        pl.lit("unfurnished").alias("furnishingstatus")
    )
    current = housing_frame(300, seed=2)
    column = _analyse(reference, current).column("furnishingstatus")
    assert column.method == "chisquare"
    assert column.statistic == float("inf")
    assert column.p_value == 0.0
    assert column.drifted


def test_thresholds_decide_the_verdicts() -> None:
    reference = housing_frame(400, seed=1)
    current = housing_frame(400, seed=2, area_shift=1.1)
    default = _analyse(reference, current)
    p_area = default.column("area").p_value
    assert default.column("area").drifted and p_area is not None and p_area > 1e-12
    strict = _analyse(reference, current, threshold=p_area / 10)
    assert not strict.column("area").drifted
    per_column = _analyse(
        reference, current, threshold=p_area / 10, per_column_threshold={"area": 0.05}
    )
    assert per_column.column("area").drifted  # the per-column threshold wins
    assert per_column.column("area").threshold == 0.05


def test_dataset_drift_is_the_share_of_drifted_columns() -> None:
    reference = housing_frame(400, seed=1)
    current = housing_frame(400, seed=2, area_shift=1.3, price_shift=1.5)
    result = _analyse(reference, current, drift_share_threshold=0.1)
    assert {"area", "price"} <= set(result.drifted_columns)
    assert result.drift_share == pytest.approx(len(result.drifted_columns) / 13)
    assert result.drift_detected
    lenient = _analyse(reference, current, drift_share_threshold=0.9)
    assert not lenient.drift_detected


# -- errors a user can cause --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("methods", "message"),
    [
        ({"area": "no-such-test"}, "not an Evidently drift test"),
        ({"mainroad": "ks"}, "does not apply to categorical"),
        ({"area": "chisquare"}, "does not apply to numerical"),
        ({"id": "ks"}, "not compared"),
    ],
)
def test_unusable_test_choices_name_the_column(methods: dict, message: str) -> None:
    frame = housing_frame(50, seed=1)
    with pytest.raises(DriftInputError, match=message):
        _analyse(frame, frame, per_column_method=methods)


def test_missing_or_empty_columns_are_named() -> None:
    frame = housing_frame(50, seed=1)
    with pytest.raises(DriftInputError, match="current data has no 'price' column"):
        _analyse(frame, frame.drop("price"))
    empty_area = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("area"))
    with pytest.raises(DriftInputError, match="area: the current column has no values"):
        _analyse(frame, empty_area)
    text_area = frame.with_columns(pl.col("area").cast(pl.String))
    with pytest.raises(DriftInputError, match="area: the current column should hold numbers"):
        _analyse(frame, text_area)
    with pytest.raises(DriftInputError, match="drift_share_threshold"):
        _analyse(frame, frame, drift_share_threshold=0)


def test_column_specs_come_from_the_schema_without_ids() -> None:
    target = column_specs(target=True)
    production = column_specs(prediction=True)
    assert [s.name for s in target] == ["price", *schema.FEATURES]
    assert [s.name for s in production] == [*schema.FEATURES, "prediction"]
    kinds = {s.name: s.kind for s in target}
    assert {c for c, k in kinds.items() if k == "cat"} == set(schema.CATEGORICAL)
    assert not any(re.search(r"(^|_)id$|index", s.name) for s in target + production)
    assert set(METHODS) == {"ks", "chisquare", "z", "wasserstein", "jensenshannon"}


# -- the report ---------------------------------------------------------------------------------
def test_sampled_report_shows_the_full_data_verdicts() -> None:
    from evidently.legacy.calculations.stattests import registry

    reference = housing_frame(3000, seed=1)
    current = housing_frame(30_000, seed=2, area_shift=1.05)
    result = _analyse(reference, current)
    before = set(registry._registered_stat_tests)
    report = drift_report.render_report(reference, current, result, SPECS, sample_rows=1000)
    assert set(registry._registered_stat_tests) == before  # nothing left registered

    assert report.sample_rows == 1000
    document = json.loads(report.json)
    assert document["summary"]["drifted_columns"] == result.drifted_columns
    assert [c["column"] for c in document["columns"]] == [s.name for s in SPECS]
    metrics = document["evidently"]["metrics"]
    count = next(m for m in metrics if "DriftedColumnsCount" in m["config"]["type"])
    assert count["value"]["count"] == len(result.drifted_columns)
    scores = {
        m["config"]["column"]: m["value"] for m in metrics if m["config"]["type"].endswith("Drift")
    }
    assert scores == pytest.approx({c.column: c.score for c in result.columns})
    assert "BridgeAI drift report" in report.html
    assert "random sample of 1,000 rows per side" in report.html


def test_report_is_stored_locally_with_timestamped_keys() -> None:
    from blocks import ObjectStorage

    storage = ObjectStorage()  # embedded: a folder under $BRIDGEAI_HOME
    frame = housing_frame(100, seed=1)
    result = _analyse(frame, frame)
    report = drift_report.RenderedReport(
        html="<html>report</html>", json='{"a": 1}', sample_rows=None
    )
    now = datetime(2025, 5, 17, 8, 30, 5, tzinfo=UTC)
    first = report_storage.upload_report(storage, report, now=now)
    second = report_storage.upload_report(storage, report, now=now)  # same second: not overwritten
    assert first.report_uri.endswith("/evidently-reports/report_20250517_083005.html")
    assert first.json_uri.endswith("/evidently-reports/report_20250517_083005.json")
    assert second.report_uri.endswith("/report_20250517_083005_2.html")
    assert first.report_url == first.report_uri and first.report_url.startswith("file://")
    assert first.report_url_expires_at is None  # a local file does not expire
    assert Path(first.report_uri.removeprefix("file://")).read_text() == report.html
    assert result.status == "compared"


@pytest.mark.integration
def test_a_refused_upload_keeps_the_report_locally(s3_server, bridgeai_home: Path) -> None:
    from pydantic import SecretStr

    storage = s3_server.storage(secret_access_key=SecretStr("not-the-secret-key"))
    report = drift_report.RenderedReport(html="<html>kept</html>", json="{}", sample_rows=None)
    with pytest.raises(OSError, match="could not store the drift report in s3://") as failure:
        report_storage.upload_report(storage, report)
    kept = sorted((bridgeai_home / "drift" / "reports").glob("report_*"))
    assert [p.suffix for p in kept] == [".html", ".json"]
    assert kept[0].read_text() == "<html>kept</html>"
    assert str(kept[0]) in str(failure.value)
    assert "not-the-secret-key" not in str(failure.value)


@pytest.mark.integration
def test_report_is_uploaded_to_s3_and_opens_in_a_browser_offline(
    s3_storage, shared_data: Path
) -> None:
    require(chromium_available(), "Chromium and the playwright package")
    old = pl.read_csv(shared_data / "HousingData-old.csv")
    new = pl.read_csv(shared_data / "HousingData-new.csv")
    result = _analyse(old, new)
    location = report_storage.upload_report(
        s3_storage, drift_report.render_report(old, new, result, SPECS)
    )

    key = location.report_uri.rsplit("/", 1)[1]
    assert re.fullmatch(r"report_\d{8}_\d{6}\.html", key)
    assert location.report_uri == f"s3://{s3_storage.reports_bucket}/{key}"
    # The bucket is private: the bare object URL is refused, the presigned link opens (for a
    # week, as it says), served as HTML.
    import httpx

    bare = f"{s3_storage.endpoint_url}/{s3_storage.reports_bucket}/{key}"
    assert location.report_url.startswith(f"{bare}?") and "X-Amz-Signature=" in location.report_url
    assert "X-Amz-Expires=604800" in location.report_url
    expires = location.report_url_expires_at
    assert expires is not None
    assert (
        timedelta(days=7) - timedelta(minutes=5) < expires - datetime.now(UTC) <= timedelta(days=7)
    )
    assert httpx.get(bare, timeout=30).status_code == 403
    opened = httpx.get(location.report_url, timeout=30)
    assert opened.status_code == 200 and opened.headers["content-type"].startswith("text/html")
    assert s3_storage.secret_access_key.get_secret_value() not in location.report_url
    import boto3

    s3 = boto3.client("s3", **s3_storage.boto3_kwargs())
    head = s3.head_object(Bucket=s3_storage.reports_bucket, Key=key)
    assert head["ContentType"].startswith("text/html")
    body = s3.get_object(Bucket=s3_storage.reports_bucket, Key=key.replace(".html", ".json"))
    stored = json.loads(body["Body"].read(), parse_constant=_reject_non_json)  # strict JSON
    assert "price" in stored["summary"]["drifted_columns"]
    bathrooms = next(c for c in stored["columns"] if c["column"] == "bathrooms")
    assert bathrooms["statistic"] == "Infinity"  # a value "old" never had

    html_file = ARTIFACTS / "drift" / "old-vs-new.html"
    html_file.parent.mkdir(parents=True, exist_ok=True)
    html_file.write_bytes(s3.get_object(Bucket=s3_storage.reports_bucket, Key=key)["Body"].read())
    page = render_offline(
        html_file, ARTIFACTS / "drift" / "old-vs-new.png", wait_for="Dataset Drift"
    )
    assert page.blocked == [], f"the report tried to reach the network: {page.blocked}"
    assert page.requests == [html_file.resolve().as_uri()]
    assert "BridgeAI drift report" in page.text
    assert "Drifted Columns" in page.text
    assert re.search(r"price\s+target\s+K-S p_value", page.text)
    assert (ARTIFACTS / "drift" / "old-vs-new.png").stat().st_size > 20_000


def test_a_report_link_lives_one_second_to_seven_days() -> None:
    from blocks import ObjectStorage

    report = drift_report.RenderedReport(html="<html>r</html>", json="{}", sample_rows=None)
    for seconds in (0, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError, match="a presigned report link lives 1 s to 7 days"):
            report_storage.upload_report(ObjectStorage(), report, link_seconds=seconds)
