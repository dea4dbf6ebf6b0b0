"""A throwaway PostgreSQL cluster on a free loopback port, for the tests and the benchmarks.

Uses the machine's PostgreSQL binaries (``initdb``/``pg_ctl``). PostgreSQL refuses to run as
root, so when the tests run as root the cluster is created and run as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bridgeai import procs

PASSWORD = "bridgeai-test"
DATABASE = "bridgeai"


def find_bin(name: str) -> str | None:
    """Path of a PostgreSQL server binary (PATH first, then /usr/lib/postgresql/*/bin)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def available() -> bool:
    return bool(find_bin("initdb") and find_bin("pg_ctl"))


#: Server settings per ``PostgresCluster.durability``.
DURABILITY = {
    "fast": " -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
    "committing": " -c fsync=off -c synchronous_commit=on -c full_page_writes=off",
    "durable": "",
}


@dataclass
class PostgresCluster:
    """One PostgreSQL cluster in its own temporary folder."""

    port: int = field(default_factory=procs.free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bridgeai-pg-")))
    #: The loopback address it listens on (the simulated cluster gives it a Service's address).
    host: str = procs.LOOPBACK
    #: "fast" (tests: nothing waits for the disk), "committing" (``synchronous_commit=on``: an
    #: acknowledged commit survives a SIGKILL of PostgreSQL, not a power loss) or "durable"
    #: (PostgreSQL's defaults, fsync on: what production runs and the benchmarks measure).
    durability: str = "fast"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        """A standard ``postgresql://`` URL with password, as the service expects."""
        return f"postgresql://postgres:{PASSWORD}@{self.host}:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        os.chmod(self.root, 0o755)  # noqa: S103 - the postgres user must enter it
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.root, pg.pw_uid, pg.pw_gid)
            os.chown(pwfile, pg.pw_uid, pg.pw_gid)
        self._run(
            str(find_bin("initdb")),
            "-D", str(self.data_dir),
            "-U", "postgres",
            "--pwfile", str(pwfile),
            "-A", "scram-sha-256",
            "--no-sync",
            "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        if self.durability not in DURABILITY:
            raise ValueError(f"durability must be one of {sorted(DURABILITY)}")
        if not self.data_dir.exists():
            self.init()
        options = f"-p {self.port} -c listen_addresses={self.host} -k {self.root}"
        options += DURABILITY[self.durability]
        self._run(
            str(find_bin("pg_ctl")), "-D", str(self.data_dir), "-o", options,
            "-l", str(self.root / "postgres.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        if not self._database_exists():
            self._psql(f"CREATE DATABASE {DATABASE}", database="postgres")

    def stop(self, mode: str = "fast") -> None:
        if self.data_dir.exists():
            subprocess.run(
                (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
                + [str(find_bin("pg_ctl")), "-D", str(self.data_dir), "-m", mode, "-w", "stop"],
                capture_output=True,
                timeout=60,
            )

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str) -> str:
        """Run one SQL statement in the test database and return its unaligned output."""
        return self._psql(sql, database=DATABASE)

    def create_database(self) -> str:
        """Create an empty database and return its ``postgresql://`` URL."""
        name = f"db_{secrets.token_hex(5)}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def drop_database(self, url: str) -> None:
        """Drop the database ``url`` names, closing its connections."""
        name = url.rsplit("/", 1)[1]
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def _psql(self, sql: str, database: str) -> str:
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        out = subprocess.run(
            ["psql", "-h", self.host, "-p", str(self.port), "-U", "postgres", "-d", database,
             "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
            check=True, capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        return out.stdout.strip()

    def _database_exists(self) -> bool:
        found = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", "postgres")
        return found == "1"
