"""The model server's wheelhouse: what goes in, and that repacked wheels are valid wheels."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import bridgeai
from bridgeai.deploy import wheelhouse
from bridgeai.model import packaging

SERVING = Path(bridgeai.__file__).resolve().parent / "serving"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_runtime_is_the_server_and_its_dependencies_only() -> None:
    names = {_canonical(d.metadata["Name"]) for d in wheelhouse.runtime_distributions()}
    assert {"lightgbm", "numpy", "scipy", "starlette", "uvicorn", "uvloop", "orjson"} <= names
    assert {"pydantic-settings", "python-dotenv", "anyio"} <= names
    assert names.isdisjoint(
        {"prefect", "mlflow", "dvc", "evidently", "pandas", "polars", "typer", "rich", "fastapi"}
    )


def test_the_server_requirements_are_what_the_server_modules_import() -> None:
    modules = packaging.closure(*wheelhouse.server_modules())
    imported = set().union(*(m.third_party for m in modules.values()))
    deferred = set().union(*(m.deferred_third_party for m in modules.values())) - imported
    distributions = metadata.packages_distributions()

    def dist(name: str) -> str:
        # ``google`` is a namespace several distributions share; the server imports
        # ``google.protobuf`` from it.
        return "protobuf" if name == "google" else _canonical(distributions[name][0])

    # What is imported when a module is imported must be in the image; what only a function
    # imports too, unless it serves registry URIs only (the image serves a baked-in directory).
    assert wheelhouse.REGISTRY_ONLY.isdisjoint(imported)
    needed = {dist(n) for n in imported | deferred if n not in wheelhouse.REGISTRY_ONLY}
    listed = {_canonical(n) for n in wheelhouse.SERVER_REQUIREMENTS}
    assert needed == listed - set(wheelhouse.UVICORN_SPEEDUPS)
    assert set(wheelhouse.UVICORN_SPEEDUPS) <= listed


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


def test_project_wheel_holds_the_server_modules_only(tmp_path: Path) -> None:
    wheel = wheelhouse.project_wheel(tmp_path)
    names = _check_record(wheel)
    modules = [n for n in names if not n.startswith("bridgeai-")]
    assert modules == [
        "bridgeai/__init__.py",
        "bridgeai/model/__init__.py",
        "bridgeai/model/errors.py",
        "bridgeai/model/fast_booster.py",
        "bridgeai/model/house_price.py",
        "bridgeai/model/mlflow_client.py",
        "bridgeai/model/mlflow_store.py",
        "bridgeai/model/source.py",
        "bridgeai/paths.py",
        "bridgeai/schema.py",
        *(f"bridgeai/serving/{p.name}" for p in sorted(SERVING.glob("*.py"))),
    ]
    assert not any(n.endswith("entry_points.txt") for n in names)  # no `bridgeai` command
    with zipfile.ZipFile(wheel) as archive:
        meta = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Name: bridgeai\n" in meta and "Requires-Dist" not in meta


@pytest.mark.integration
def test_the_wheel_alone_imports_every_server_module_and_runs_the_entrypoint(
    tmp_path: Path,
) -> None:
    # Unpacked on its own (no checkout on sys.path): every server module imports from it.
    wheel = wheelhouse.project_wheel(tmp_path)
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    source = Path(bridgeai.__file__).resolve().parent
    checkout = sorted({str(source.parent), str(source.parents[1])})
    modules = [m for m in wheelhouse.server_modules() if not m.endswith(".__main__")]
    script = (
        "import importlib, runpy, sys\n"
        f"sys.path[:] = [{str(target)!r}] + [p for p in sys.path if p not in {checkout!r}]\n"
        f"for name in {modules!r}:\n"
        f"    assert importlib.import_module(name).__file__.startswith({str(target)!r}), name\n"
        "sys.argv = ['python -m bridgeai.serving', '--help']\n"
        "runpy.run_module('bridgeai.serving', run_name='__main__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--model-uri" in result.stdout


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
