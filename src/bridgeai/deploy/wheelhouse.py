"""The model server's runtime as a folder of wheels, prepared on the host for an offline build.

The model image installs exactly these wheels with ``pip install --no-index --no-deps``, so the
``docker build`` needs no network and the image holds only what the server imports:
:data:`SERVER_REQUIREMENTS` and their dependencies, at the versions installed here, plus a wheel
of the part of ``bridgeai`` the server runs (:func:`project_wheel`: the modules
:data:`SERVER_PACKAGE` imports, transitively, found by :mod:`bridgeai.model.packaging`; no CLI,
no flows or blocks, nor Prefect, MLflow, DVC or Evidently).

Two ways to get the wheels:

* ``environment``: repack the distributions installed in this environment into wheels (from
  their ``RECORD``). Offline, fast, and the image runs the very versions the tests ran. Needs the
  base image's Python to be this Python's minor version, on the same OS and architecture.
* ``index``: ``pip download`` the same pinned versions for the base image's Python and
  architecture from the package index pip is configured for (``PIP_INDEX_URL``,
  ``PIP_FIND_LINKS``...). Use it when the versions differ.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Literal

from bridgeai.model import packaging
from bridgeai.model.errors import BridgeAIError

#: The model server: the image runs ``python -m bridgeai.serving`` and carries the ``bridgeai``
#: modules this package imports, transitively.
SERVER_PACKAGE = "bridgeai.serving"
#: The distributions those modules import (a test checks this list against their imports).
SERVER_REQUIREMENTS = (
    "numpy",
    "lightgbm",
    "starlette",
    "anyio",
    "uvicorn",
    "httptools",
    "uvloop",
    "orjson",
    "pydantic",
    "pydantic-settings",
    "grpcio",
    "protobuf",
)
#: In SERVER_REQUIREMENTS without being imported by name: uvicorn picks them up at run time
#: (its event loop and HTTP parser), and the server is much slower without them.
UVICORN_SPEEDUPS = ("httptools", "uvloop")
#: Imported by the server's modules only to resolve ``models:/`` and ``runs:/`` URIs; the image
#: serves a baked-in model directory, so it does without them.
REGISTRY_ONLY = frozenset({"mlflow"})
#: dist-info files that describe this installation, not the package.
_INSTALL_ONLY = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json"}

WheelSource = Literal["environment", "index"]


class WheelhouseError(BridgeAIError, RuntimeError):
    """The wheels cannot be prepared; the message says what to change."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _target_environment(python_version: str, machine: str) -> dict[str, str]:
    return {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_machine": machine,
        "extra": "",
    }


def runtime_distributions(
    python_version: str = "3.11", machine: str = "x86_64"
) -> list[metadata.Distribution]:
    """The installed distributions the server needs on Linux/CPython ``python_version``.

    Raises:
        WheelhouseError: a needed distribution is not installed here.
    """
    from packaging.requirements import Requirement

    environment = _target_environment(python_version, machine)
    found: dict[str, metadata.Distribution] = {}
    queue = list(SERVER_REQUIREMENTS)
    while queue:
        name = _canonical(queue.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise WheelhouseError(
                f"{name} (needed by the model server) is not installed in {sys.prefix}"
            ) from None
        found[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                queue.append(requirement.name)
    return [found[name] for name in sorted(found)]


def pins(distributions: Iterable[metadata.Distribution]) -> list[str]:
    """``name==version`` for each distribution."""
    return [f"{_canonical(d.metadata['Name'])}=={d.version}" for d in distributions]


# -- environment: repack what is installed ---------------------------------------------------------
def _record_line(arcname: str, data: bytes) -> list[str]:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [arcname, f"sha256={digest}", str(len(data))]


def _wheel_name(name: str, version: str, tags: list[str]) -> str:
    parts: list[list[str]] = [[], [], []]
    for tag in tags:
        for i, piece in enumerate(tag.split("-")):
            if piece not in parts[i]:
                parts[i].append(piece)
    compressed = "-".join(".".join(p) for p in parts)
    return f"{re.sub(r'[-_.]+', '_', name)}-{version}-{compressed}.whl"


def _write_wheel(path: Path, files: Iterable[tuple[str, bytes]], dist_info: str) -> Path:
    """Write a wheel, byte-for-byte reproducible so Docker's layer cache recognises it.

    Stored, not deflated: the build context is sent uncompressed anyway.
    """
    record: list[list[str]] = []

    def entry(arcname: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        return info

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for arcname, data in files:
            archive.writestr(entry(arcname), data)
            record.append(_record_line(arcname, data))
        record.append([f"{dist_info}/RECORD", "", ""])
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(record)
        archive.writestr(entry(f"{dist_info}/RECORD"), buffer.getvalue())
    return path


def _is_editable(dist: metadata.Distribution) -> bool:
    text = dist.read_text("direct_url.json")
    return bool(text and json.loads(text).get("dir_info", {}).get("editable"))


def repack(dist: metadata.Distribution, dest: Path) -> Path:
    """Turn an installed (non-editable) distribution back into a wheel in ``dest``.

    Only files under site-packages are kept (console scripts are regenerated by pip from
    ``entry_points.txt``); bytecode is left out (pip compiles at install).
    """
    name, version = dist.metadata["Name"], dist.version
    wheel_text = dist.read_text("WHEEL")
    if not wheel_text or dist.files is None:
        raise WheelhouseError(f"{name} {version} has no WHEEL/RECORD metadata; use wheels='index'")
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_text.splitlines() if line.startswith("Tag:")
    ]
    files: list[tuple[str, bytes]] = []
    dist_info = ""
    for entry in dist.files:
        arcname = entry.as_posix()
        if arcname.startswith("..") or "__pycache__" in entry.parts or arcname.endswith(".pyc"):
            continue
        if entry.parts[0].endswith(".dist-info"):
            dist_info = entry.parts[0]
            if len(entry.parts) == 2 and entry.name in _INSTALL_ONLY:
                continue
        files.append((arcname, Path(str(dist.locate_file(entry))).read_bytes()))
    return _write_wheel(dest / _wheel_name(name, version, tags), files, dist_info)


def server_modules() -> list[str]:
    """The ``bridgeai`` modules the model server imports, transitively (and their packages)."""
    return list(packaging.closure(*packaging.submodules(SERVER_PACKAGE)))


def project_wheel(dest: Path) -> Path:
    """A wheel of the part of ``bridgeai`` the model server runs (:func:`server_modules`).

    Built from the package's files wherever it is installed (an editable checkout included), so
    no build backend or network is needed. It has no console script: the image runs
    ``python -m bridgeai.serving``.
    """
    version = metadata.version("bridgeai")
    dist_info = f"bridgeai-{version}.dist-info"
    root = packaging.package_dir()
    files = [
        (arcname, (root.parent / arcname).read_bytes())
        for arcname in packaging.relative_files(server_modules())
    ]
    summary = "The BridgeAI model server and model, as the model image runs them."
    meta = f"Metadata-Version: 2.1\nName: bridgeai\nVersion: {version}\nSummary: {summary}\n"
    files.append((f"{dist_info}/METADATA", meta.encode()))
    wheel = (
        "Wheel-Version: 1.0\nGenerator: bridgeai.deploy.wheelhouse\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files.append((f"{dist_info}/WHEEL", wheel.encode()))
    return _write_wheel(dest / f"bridgeai-{version}-py3-none-any.whl", files, dist_info)


# -- index: pip download ---------------------------------------------------------------------------
def download(
    requirements: list[str], dest: Path, python_version: str, machine: str, timeout: float = 900
) -> list[Path]:
    """``pip download`` binary wheels of exactly ``requirements`` for Linux/CPython.

    pip reads its index settings from the environment and its config (``PIP_INDEX_URL``,
    ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``...).

    Raises:
        WheelhouseError: pip is missing, or a wheel is not available for that target.
    """
    abi = "cp" + python_version.replace(".", "")
    platforms = [f"manylinux_2_{v}_{machine}" for v in (28, 27, 17)] + [f"manylinux2014_{machine}"]
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--python-version", python_version,
        "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none",
        *[arg for p in platforms for arg in ("--platform", p)],
        "--dest", str(dest), *requirements,
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WheelhouseError(f"pip download took more than {timeout:.0f}s") from None
    if result.returncode != 0:
        if "No module named pip" in result.stderr:
            raise WheelhouseError("wheels='index' needs pip in this environment") from None
        tail = "\n".join(result.stderr.strip().splitlines()[-8:])
        raise WheelhouseError(f"pip download failed:\n{tail}")
    return sorted(dest.glob("*.whl"))


def prepare(
    dest: Path,
    *,
    source: WheelSource,
    python_version: str = "3.11",
    machine: str = "x86_64",
) -> list[Path]:
    """Fill ``dest`` with the server's wheels and the ``bridgeai`` wheel; return them.

    Raises:
        WheelhouseError: see :func:`runtime_distributions`, :func:`repack`, :func:`download`.
    """
    dest.mkdir(parents=True, exist_ok=True)
    distributions = runtime_distributions(python_version, machine)
    if source == "environment":
        wheels = [repack(d, dest) for d in distributions if not _is_editable(d)]
    else:
        wheels = download(pins(distributions), dest, python_version, machine)
    wheels.append(project_wheel(dest))
    return wheels


def environment_matches(python_version: str, machine: str) -> bool:
    """True when the installed wheels fit a Linux/CPython ``python_version`` on ``machine``."""
    import platform

    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (
        sys.platform == "linux"
        and sys.implementation.name == "cpython"
        and here == python_version
        and platform.machine() == machine
    )
