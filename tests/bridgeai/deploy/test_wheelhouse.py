"""The model server's wheelhouse: what goes in, and that repacked wheels are valid wheels."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from bridgeai.deploy import wheelhouse


def test_runtime_is_the_server_and_its_dependencies_only() -> None:
    names = {
        d.metadata["Name"].lower().replace("_", "-") for d in wheelhouse.runtime_distributions()
    }
    assert {"lightgbm", "numpy", "scipy", "starlette", "uvicorn", "uvloop", "orjson"} <= names
    assert {"typer", "pydantic-settings", "python-dotenv"} <= names
    assert names.isdisjoint({"prefect", "mlflow", "dvc", "evidently", "pandas", "polars", "rich"})


def _check_record(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        rows = list(csv.reader(io.StringIO(archive.read(record).decode())))
        assert {r[0] for r in rows} == set(names)
        for path, digest, size in rows:
            if path == record:
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == f"sha256={expected.decode()}"
            assert int(size) == len(data)
    return names


def test_repacked_wheel_is_reproducible_and_complete(tmp_path: Path) -> None:
    dist = metadata.distribution("orjson")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = wheelhouse.repack(dist, tmp_path / "a")
    second = wheelhouse.repack(dist, tmp_path / "b")
    assert first.name == second.name
    assert first.name.startswith(f"orjson-{dist.version}-cp311-")
    assert first.read_bytes() == second.read_bytes()  # stable bytes: Docker's cache hits
    names = _check_record(first)
    assert any(n.startswith("orjson/") and n.endswith(".so") for n in names)
    assert not any(n.endswith((".pyc", "/INSTALLER", "/direct_url.json")) for n in names)


def test_project_wheel_holds_the_library_and_its_command(tmp_path: Path) -> None:
    wheel = wheelhouse.project_wheel(tmp_path)
    names = _check_record(wheel)
    assert "bridgeai/model_server.py" in names
    assert not any(n.startswith(("flows/", "blocks/", "tests/")) for n in names)
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read(
            next(n for n in names if n.endswith("entry_points.txt"))
        ).decode()
    assert "bridgeai = bridgeai.cli:app" in entry_points


@pytest.mark.integration
def test_index_mode_downloads_the_pinned_wheels_with_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.http import serve_directory

    # A local "index": two repacked wheels served over loopback (no internet in tests).
    index = tmp_path / "index"
    index.mkdir()
    for name in ("annotated-types", "idna"):
        wheelhouse.repack(metadata.distribution(name), index)
    pins = wheelhouse.pins(
        [metadata.distribution("annotated-types"), metadata.distribution("idna")]
    )
    with serve_directory(index) as url:
        monkeypatch.setenv("PIP_NO_INDEX", "1")
        monkeypatch.setenv("PIP_FIND_LINKS", url + "/")
        wheels = wheelhouse.download(pins, tmp_path / "out", "3.11", "x86_64")
    assert sorted(w.name.split("-")[0] for w in wheels) == ["annotated_types", "idna"]

    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(wheelhouse.WheelhouseError, match="pip download failed"):
        wheelhouse.download(["no-such-package==1.0"], tmp_path / "out2", "3.11", "x86_64")
