"""Run `bridgeai up/down/...` as a user would, on free ports, in a throwaway $BRIDGEAI_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bridgeai.ops import seaweed

BIN = Path(sys.executable).parent


#: What `bridgeai up` says when a port it was given is taken by the time it binds it.
_PORT_TAKEN = ("already in use", "cannot start on the ports", "Port allocation failed")


def stack_ports() -> dict[str, str]:
    """Every port a stack needs, allocated at once below the ephemeral range: S3, MLflow,
    Prefect, and SeaweedFS's block (base .. base+7, and base+7+10000)."""
    block = seaweed.free_port_block(11, admin_last=True)
    return {
        "BRIDGEAI_S3_PORT": str(block[0]),
        "BRIDGEAI_MLFLOW_PORT": str(block[1]),
        "BRIDGEAI_PREFECT_PORT": str(block[2]),
        "BRIDGEAI_SEAWEED_BASE_PORT": str(block[3]),
    }


def stack_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user whose stack lives in ``home`` and uses free ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(BRIDGEAI_HOME=str(home), **stack_ports(), **extra)
    return env


def up(env: dict[str, str], attempts: int = 3) -> subprocess.CompletedProcess[str]:
    """``bridgeai up``; when another process took one of its ports in the meantime, stop what
    started, allocate new ports (updating ``env``) and try again."""
    for attempt in range(1, attempts + 1):
        result = cli(env, "up")
        if result.returncode == 0 or attempt == attempts:
            return result
        if not any(marker in result.stderr for marker in _PORT_TAKEN):
            return result
        cli(env, "down")
        env.update(stack_ports())
    raise AssertionError("unreachable")


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
