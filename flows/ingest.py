"""The data-ingestion flow: download, validate, clean, split and version the housing data.

From a notebook::

    from flows.ingest import data_ingestion
    version = data_ingestion(source="/data/HousingData.csv")   # -> DataVersion(tag="data-v1.0.0")

Each run downloads the CSV, validates it against :mod:`bridgeai.schema`, cleans it, splits it
64/16/20 (seed 42), and versions the splits with DVC: Parquet files pushed to the storage
block's DVC remote, their pointers committed to the data repository and tagged ``data-vX.Y.Z``,
with ``data-latest`` / ``data-previous`` moved. Ingesting content identical to an existing
version creates nothing and returns that version. The work is done by :mod:`bridgeai.data.ingestion`
and :mod:`bridgeai.data.versions`; this module only orchestrates it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import Field

from blocks import DataRepository, ObjectStorage, load_block
from bridgeai.data import cleaning, download, validation
from bridgeai.data import versions as data_versions
from bridgeai.data.repository import DataRepo, parse_version, redact_url
from bridgeai.data.split import split_frame
from bridgeai.data.versions import Bump, DataVersion, SplitParams
from flows._events import DATA_VERSIONED, emit, run_origin
from flows._tasks import IN_PROCESS, IO_RETRIES


@dataclass
class Prepared:
    """Cleaned, split data ready to version."""

    splits: dict[str, pl.DataFrame]
    checksum: str
    cleaning: dict[str, Any]
    columns: list[dict[str, Any]]


# -- I/O tasks ----------------------------------------------------------------------------------
@task(name="download-source", **IO_RETRIES, **IN_PROCESS)
def download_source(source: str, storage: ObjectStorage, directory: Path) -> Path:
    """Fetch the CSV (http(s) streamed with a timeout, s3:// via the storage block, or a path)."""
    path = download.download(source, directory, storage=storage)
    get_run_logger().info("Read %s (%d bytes)", redact_url(source), path.stat().st_size)
    return path


@task(name="check-existing-version", **IO_RETRIES, **IN_PROCESS)
def check_existing_version(repo: DataRepo, checksum: str, remote_url: str) -> DataVersion | None:
    """Sync the data repository; return the version that already holds this content, if any."""
    repo.open(sync=True)
    return data_versions.find_version(repo, checksum, remote_url=remote_url)


@task(name="stage-version", **IN_PROCESS)
def stage_version(
    repo: DataRepo, storage: ObjectStorage, prepared: Prepared, metadata: dict[str, Any]
) -> dict[str, str]:
    """Write the splits as Parquet and ``dvc add`` them; return each split's md5."""
    return repo.stage(prepared.splits, metadata, storage.dvc_remote())


@task(name="push-data", **IO_RETRIES, **IN_PROCESS)
def push_data(repo: DataRepo, storage: ObjectStorage) -> int:
    """``dvc push`` the splits to the storage's DVC remote (credentials only in memory)."""
    return repo.push_data(data_versions.remote_config(storage))


@task(name="commit-version", **IO_RETRIES, **IN_PROCESS)
def commit_version(repo: DataRepo, tag: str, message: str) -> str:
    """Commit the pointers, tag the version, move data-latest/data-previous, push (atomic)."""
    return repo.commit_version(tag, message)


# -- pure tasks ---------------------------------------------------------------------------------
@task(name="validate-source", **IN_PROCESS)
def validate_source(path: Path, source: str) -> pl.DataFrame:
    """Check every schema rule at once; on failure publish the problems and raise."""
    try:
        return validation.parse(validation.read_csv(path, source), source)
    except validation.ValidationError as exc:
        create_markdown_artifact(
            key="data-validation", markdown=_problems_markdown(exc), description=str(exc)[:200]
        )
        raise


@task(name="clean-and-split", **IN_PROCESS)
def clean_and_split(frame: pl.DataFrame, params: SplitParams) -> Prepared:
    """Drop duplicates and rows with no price, split train/val/test, checksum the content."""
    cleaned = cleaning.clean(frame)
    if cleaned.frame.height == 0:
        raise ValueError("no rows with a price are left after cleaning: check the source")
    splits = split_frame(cleaned.frame, params.test_size, params.val_size, params.seed)
    return Prepared(
        splits=splits,
        checksum=cleaning.checksum(cleaned.frame, params.model_dump()),
        cleaning=cleaned.report(),
        columns=cleaning.column_summary(cleaned.frame),
    )


# -- the flow -----------------------------------------------------------------------------------
@flow(name="data-ingestion")
def data_ingestion(
    source: Annotated[
        str | Path | None,
        Field(
            description="http(s) URL, s3:// URI or local path of the housing CSV. "
            "Default: $BRIDGEAI_DATA_SOURCE, else the original's public HousingData.csv."
        ),
    ] = None,
    bump: Annotated[
        Bump, Field(description="Which part of data-vX.Y.Z to increase for a new version.")
    ] = "minor",
    test_size: Annotated[
        float, Field(gt=0, lt=1, description="Fraction of the rows held out for test.")
    ] = 0.2,
    val_size: Annotated[
        float, Field(gt=0, lt=1, description="Fraction of the remaining rows held out for val.")
    ] = 0.2,
    seed: Annotated[int, Field(description="random_state of the split.")] = 42,
    storage_block: Annotated[
        str, Field(description="ObjectStorage block holding the DVC remote.")
    ] = "bridgeai",
    repository_block: Annotated[
        str, Field(description="DataRepository block: the git repository of the data versions.")
    ] = "bridgeai",
) -> DataVersion:
    """Download, validate, clean, split and version the housing data with DVC.

    The splits go to the storage block's DVC remote; their pointers are committed to the data
    repository and tagged data-vX.Y.Z (data-v1.0.0 first, then a minor bump), and data-latest /
    data-previous move, and the bridgeai.data.versioned event announces the new version (the
    model-training automation trains on it). Content identical to an existing version creates
    nothing, emits nothing and returns that version. A file that breaks the schema fails with
    every offending column listed, and nothing is versioned.

    Args:
        source: http(s) URL, s3:// URI or local path of the housing CSV. Default:
            $BRIDGEAI_DATA_SOURCE, else the original's public HousingData.csv.
        bump: Which part of data-vX.Y.Z to increase for a new version (major, minor, patch).
        test_size: Fraction of the rows held out for test.
        val_size: Fraction of the remaining rows held out for val.
        seed: random_state of the split.
        storage_block: ObjectStorage block holding the DVC remote.
        repository_block: DataRepository block: the git repository of the data versions.

    Returns:
        The data version (``created`` is False when identical content already existed).
    """
    logger = get_run_logger()
    started = time.perf_counter()
    source = str(source or download.default_source())
    _refuse_inline_credentials(source)
    shown = redact_url(source)
    params = SplitParams(test_size=test_size, val_size=val_size, seed=seed)
    storage = load_block(ObjectStorage, storage_block)
    repo = load_block(DataRepository, repository_block).repository()

    with tempfile.TemporaryDirectory(prefix="bridgeai-ingest-") as tmp:
        path = download_source(source, storage, Path(tmp))
        frame = validate_source(path, shown)
    prepared = clean_and_split(frame, params)
    logger.info("Cleaned %s: %s", shown, prepared.cleaning)

    with repo.lock():
        try:
            remote = storage.dvc_remote()
            existing = check_existing_version(repo, prepared.checksum, remote["url"])
            if existing is not None:
                logger.info(
                    "%s already holds this content (checksum %s): nothing to version",
                    existing.tag,
                    prepared.checksum[:12],
                )
                _publish(existing, prepared)
                return existing
            existing_tags = repo.version_tags()
            tag = data_versions.next_tag(existing_tags, bump)
            previous_tag = _latest(existing_tags)
            origin = run_origin()
            rows = {name: split.height for name, split in prepared.splits.items()}
            created_at = datetime.now(UTC)
            metadata = data_versions.metadata(
                tag=tag,
                source=shown,
                checksum=prepared.checksum,
                rows=rows,
                split=params,
                created_at=created_at,
                remote=remote,
                extra={
                    "cleaning": prepared.cleaning,
                    "columns": prepared.columns,
                    # Lineage: the flow run that made this version (None outside a flow run).
                    "prefect_flow_run_id": origin.flow_run_id,
                },
            )
            md5 = stage_version(repo, storage, prepared, metadata)
            pushed = push_data(repo, storage)
            summary = "/".join(str(rows[s]) for s in data_versions.SPLITS)
            commit = commit_version(repo, tag, f"{tag}: {summary} rows from {shown}")
        except BaseException:
            repo.discard()
            raise
    version = DataVersion(
        tag=tag,
        commit=commit,
        md5=md5,
        rows=rows,
        source=shown,
        checksum=prepared.checksum,
        split=params,
        created_at=created_at,
        created=True,
    )
    logger.info(
        "%s: train/val/test %s rows, commit %s, %d file(s) pushed to %s, in %.1f s",
        tag,
        summary,
        commit[:12],
        pushed,
        redact_url(str(storage.dvc_remote()["url"])),
        time.perf_counter() - started,
    )
    _publish(version, prepared)
    emit(
        DATA_VERSIONED,
        {"prefect.resource.id": f"bridgeai.data-version.{tag}", "prefect.resource.name": tag},
        payload={
            "tag": tag,
            "previous_tag": previous_tag,
            "rows": rows,
            "checksum": prepared.checksum,
            "commit": commit,
            "source": shown,
            # The blocks this version lives in: the training the event starts reads it there.
            "storage_block": storage_block,
            "repository_block": repository_block,
        },
        related=(
            [
                {
                    "prefect.resource.id": f"bridgeai.data-version.{previous_tag}",
                    "prefect.resource.role": "previous-version",
                }
            ]
            if previous_tag
            else []
        ),
        origin=origin,
    )
    return version


def _latest(tags: list[str]) -> str | None:
    """The highest ``data-vX.Y.Z`` of ``tags`` (the version a new one follows)."""
    versioned = [(v, t) for t in tags if (v := parse_version(t)) is not None]
    return max(versioned)[1] if versioned else None


def _refuse_inline_credentials(source: str) -> None:
    # Flow parameters are stored by the Prefect API and shown in its UI.
    if urlsplit(source).password:
        raise ValueError(
            "source must not carry a password: flow parameters are stored and shown in the "
            "Prefect UI. Put the file in object storage and pass its s3:// URI (credentials "
            "then come from the storage block)"
        )


def _publish(version: DataVersion, prepared: Prepared) -> None:
    state = "created" if version.created else "already existed"
    create_table_artifact(
        key="data-version",
        table=[
            {"split": s, "rows": version.rows[s], "dvc_md5": version.md5[s]}
            for s in data_versions.SPLITS
        ],
        description=(
            f"{version.tag} ({state}): commit {version.commit[:12]}, source {version.source}, "
            f"checksum {version.checksum[:12]}; cleaning {prepared.cleaning}"
        ),
    )
    create_table_artifact(
        key="data-columns",
        table=prepared.columns,
        description=f"Columns of the cleaned data of {version.tag}",
    )


def _problems_markdown(error: validation.ValidationError) -> str:
    lines = [
        f"# Validation failed: {error.source}",
        "",
        "Nothing was versioned. Every offending column:",
        "",
        "| column | problem | rows | examples |",
        "|---|---|---|---|",
    ]
    for p in error.problems:
        examples = "; ".join(f"line {line}: `{value!r}`" for line, value in p.samples)
        lines.append(f"| {p.column} | {p.problem} | {p.count or ''} | {examples} |")
    samples = [
        (p, line, row)
        for p in error.problems
        for (line, _), row in zip(p.samples, p.rows, strict=True)
    ]
    if samples:
        columns = list(samples[0][2])
        lines += ["", "Sample rows, as read:", ""]
        lines.append("| column: problem | line | " + " | ".join(columns) + " |")
        lines.append("|---|---|" + "---|" * len(columns))
        for p, line, row in samples:
            cells = " | ".join("" if row.get(c) is None else str(row.get(c)) for c in columns)
            lines.append(f"| {p.column}: {p.problem} | {line} | {cells} |")
    return "\n".join(lines)
