"""Run `bridgeai up/down/...` as a user would, on free ports, in a throwaway $BRIDGEAI_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bridgeai import procs

BIN = Path(sys.executable).parent


def seaweed_base_port() -> int:
    """A base port with base..base+7 and base+7+10000 free (SeaweedFS's internal ports)."""
    for _ in range(200):
        base = procs.free_port()
        wanted = [*range(base, base + 8), base + 7 + 10000]
        if all(p < 65536 and procs.port_is_free(p) for p in wanted):
            return base
    raise RuntimeError("no free port range")


def stack_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user whose stack lives in ``home`` and uses free ports."""
    ports = procs.free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        BRIDGEAI_HOME=str(home),
        BRIDGEAI_S3_PORT=str(ports[0]),
        BRIDGEAI_MLFLOW_PORT=str(ports[1]),
        BRIDGEAI_PREFECT_PORT=str(ports[2]),
        BRIDGEAI_SEAWEED_BASE_PORT=str(seaweed_base_port()),
        **extra,
    )
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``bridgeai <args>`` in ``env``."""
    return subprocess.run(
        [str(BIN / "bridgeai"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def exported(env: dict[str, str]) -> dict[str, str]:
    """``env`` plus what ``bridgeai env`` exports for the running stack."""
    out = dict(env)
    for line in cli(env, "env").stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        out[key] = value.strip("'")
    return out
