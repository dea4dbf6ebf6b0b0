"""Virtual environments for the anchors a benchmark runs beside ours, made from PyPI and cached.

MLServer cannot share an environment with Prefect 3.9, and KServe pins its own FastAPI and
uvicorn, so each anchor gets its own venv. A venv is keyed by its pinned requirements and the
Python it is made with (a hash of both), kept under ``~/.cache/bridgeai-bench/venvs/<name>-<key>``
(``$BRIDGEAI_BENCH_CACHE`` moves it), and reused until the pins change. It is made with ``uv``
when one is on PATH or in ``.tools/`` (the project's bootstrap), else with ``venv`` + pip, from
whatever index the machine's pip/uv configuration names; bytecode is compiled at install time so
the anchors start as fast as they can.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from _common import ROOT

CACHE = Path(os.environ.get("BRIDGEAI_BENCH_CACHE", Path.home() / ".cache" / "bridgeai-bench"))
_READY = ".bridgeai-bench-ready"


def ours(*names: str) -> list[str]:
    """``name==version`` pins of packages as installed here (so an anchor runs the same LightGBM,
    numpy, MLflow... as our side of the benchmark)."""
    return [f"{name}=={metadata.version(name)}" for name in names]


def _python() -> str:
    # The interpreter this venv's Python was made from: a venv of a venv has no stable base.
    return getattr(sys, "_base_executable", None) or sys.executable


def _uv() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    local = ROOT / ".tools" / "bin" / "uv"
    return str(local) if local.is_file() else None


def ensure(name: str, requirements: list[str]) -> Path:
    """The ``bin`` folder of a venv holding exactly ``requirements`` (made on first use).

    Raises:
        RuntimeError: the install failed; the message holds the installer's last lines.
    """
    python = _python()
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    text = "\n".join(sorted(requirements)) + f"\npython {version}\n"
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    venv = CACHE / "venvs" / f"{name}-{key}"
    if (venv / _READY).is_file():
        return venv / "bin"
    if venv.exists():
        shutil.rmtree(venv)  # a half-made one from an interrupted run
    venv.parent.mkdir(parents=True, exist_ok=True)
    print(f"making the {name} venv ({len(requirements)} pins) in {venv}...", flush=True)
    started = time.monotonic()
    uv = _uv()
    if uv:
        steps = [
            [uv, "venv", "--quiet", "--python", python, str(venv)],
            [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python",
             str(venv / "bin" / "python"), *requirements],
        ]  # fmt: skip
    else:
        steps = [
            [python, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements],
        ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise RuntimeError(f"making the {name} venv failed ({' '.join(step[:3])}):\n{tail}")
    (venv / "requirements.txt").write_text(text)
    (venv / _READY).write_text(f"{time.monotonic() - started:.0f} s\n")
    print(f"  {name} venv ready in {time.monotonic() - started:.0f} s", flush=True)
    return venv / "bin"
