"""The data repository: a git repository whose commits hold DVC pointers to the data splits.

Each data version is one commit with ``data/{train,val,test}.parquet.dvc`` (the DVC pointers:
md5 and size of each split), ``dataset.json`` (rows, source, content checksum, split parameters,
column summary) and ``.dvc/config`` (where the bytes were pushed: non-secret settings only). The
commit is tagged ``data-vX.Y.Z``; ``data-latest`` and ``data-previous`` move with each version.
The bytes themselves live in the DVC remote (the storage block's ``data_bucket``), never in git.

:class:`DataRepo` is a working clone on this machine. Embedded mode has no git remote: the clone
is the repository. With ``remote_url`` (a bare repository path, ``file://``, ``https://`` or
``ssh://``), the clone is only a cache: it is fetched before reading moving tags and before an
ingestion, and every new version is pushed atomically (branch + tags). An https token travels to
git in the process environment (``GIT_CONFIG_*``), never in ``.git/config``. Every commit is
made under the repository's own identity, whatever the user's global git configuration says.

This module knows git and DVC, not Prefect.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bridgeai.data import dvc_store, git
from bridgeai.data.dvc_store import DataRepoError, redact_url
from bridgeai.data.git import Identity
from bridgeai.paths import home_dir

VERSION_TAG = re.compile(r"^data-v(\d+)\.(\d+)\.(\d+)$")
LATEST = "data-latest"
PREVIOUS = "data-previous"
MOVING_TAGS = (LATEST, PREVIOUS)
DATA_DIR = "data"
METADATA_FILE = "dataset.json"


def split_path(split: str) -> str:
    """The split's file inside the repository, e.g. ``data/train.parquet``."""
    return f"{DATA_DIR}/{split}.parquet"


def parse_version(tag: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` of a ``data-vX.Y.Z`` tag, or None for any other name."""
    match = VERSION_TAG.match(tag)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def default_workdir(remote_url: str | None) -> Path:
    """Where the working clone lives: ``$BRIDGEAI_HOME/data-repo`` (embedded) or one per remote."""
    if not remote_url:
        return home_dir() / "data-repo"
    safe = redact_url(remote_url)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", safe.split("://")[-1]).strip("-")[-40:] or "remote"
    digest = hashlib.sha256(safe.encode()).hexdigest()[:8]
    return home_dir("data-repos") / f"{slug}-{digest}"


class DataRepo:
    """A working clone of the data repository (see the module docstring).

    Args:
        workdir: the working clone; created (cloned or initialised) by :meth:`open`.
        remote_url: the git remote; None in embedded mode (the working clone is the repository).
        branch: the branch that carries the data commits.
        identity: author and committer of the data commits.
        auth_header: an HTTP ``Authorization`` header value for https remotes (a secret: it is
            handed to git through the environment, never written to disk or shown by ``repr``).
    """

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        remote_url: str | None = None,
        branch: str = "main",
        identity: Identity | None = None,
        auth_header: str | None = None,
    ) -> None:
        self.remote_url = remote_url or None
        self.workdir = Path(workdir).expanduser().resolve() if workdir else None
        if self.workdir is None:
            self.workdir = default_workdir(self.remote_url)
        self.branch = branch
        self.identity = identity or Identity()
        self._auth_header = auth_header
        self._fetched = False

    def __repr__(self) -> str:
        remote = redact_url(self.remote_url) if self.remote_url else None
        return f"DataRepo(workdir={str(self.workdir)!r}, remote_url={remote!r})"

    @property
    def location(self) -> str:
        """The repository as users know it: the remote (redacted) or the local folder."""
        return redact_url(self.remote_url) if self.remote_url else str(self.workdir)

    # -- git plumbing -----------------------------------------------------------------------
    def git(self, *args: str, input: bytes | None = None, cwd: Path | None = None) -> bytes:
        """Run ``git args`` in the working clone (see :func:`bridgeai.data.git.run`)."""
        assert self.workdir is not None
        return git.run(
            args,
            cwd=cwd or self.workdir,
            env=git.environment(self.identity, self.branch, self._auth_header),
            location=self.location,
            auth_header=self._auth_header,
            input=input,
        )

    def _git_text(self, *args: str) -> str:
        return self.git(*args).decode().strip()

    # -- lifecycle ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, *, shared: bool = False) -> Iterator[None]:
        """Hold the repository's file lock (exclusive for writers, shared for readers).

        Serialises ingestions that share this working clone (flows on one machine, parallel
        runs of a deployment). Ingestions on different machines are serialised by the git remote
        instead: the second atomic push is rejected and nothing of it is kept.
        """
        assert self.workdir is not None
        self.workdir.parent.mkdir(parents=True, exist_ok=True)
        path = self.workdir.parent / f".{self.workdir.name}.lock"
        with open(path, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def exists(self) -> bool:
        """True when the working clone exists on this machine."""
        assert self.workdir is not None
        return (self.workdir / ".git").is_dir()

    def open(self, *, sync: bool = True) -> DataRepo:
        """Make sure the working clone exists and (with a remote) matches it; return ``self``.

        Embedded mode initialises an empty repository on first use. With a remote, the clone is
        made on first use; later calls fetch branch and tags and reset the clone to the remote
        (it holds nothing of its own: uncommitted files are leftovers of a failed ingestion).

        Raises:
            DataRepoError: the remote is unreachable or refused access, or the folder is in use
                for another repository.
        """
        assert self.workdir is not None
        if not self.exists():
            if self.workdir.exists() and any(self.workdir.iterdir()):
                raise DataRepoError(
                    f"{self.workdir} exists but is not a git repository: move it away or point "
                    f"the DataRepository block's workdir elsewhere"
                )
            self.workdir.mkdir(parents=True, exist_ok=True)
            if self.remote_url:
                self.git("clone", "--quiet", "--origin", "origin", self.remote_url, ".")
                self._fetched = True
                if not self._has_ref(f"refs/remotes/origin/{self.branch}"):
                    if self._has_ref("HEAD"):
                        raise DataRepoError(
                            f"{self.location} has no branch {self.branch!r}: create it or set "
                            f"the DataRepository block's branch"
                        )
                    # An empty remote: the first data commit starts its branch.
                    self.git("symbolic-ref", "HEAD", f"refs/heads/{self.branch}")
                    self._initialise()
                else:
                    self.git("checkout", "--quiet", "-B", self.branch, f"origin/{self.branch}")
            else:
                self.git("init", "--quiet", "--initial-branch", self.branch)
                self._initialise()
            return self
        if self.remote_url:
            origin = self._git_text("config", "--get", "remote.origin.url")
            if origin != self.remote_url:
                raise DataRepoError(
                    f"{self.workdir} is a clone of {redact_url(origin)}, not {self.location}: "
                    f"remove it or set the DataRepository block's workdir"
                )
            if sync:
                self.fetch()
        return self

    def fetch(self, *, reset: bool = True) -> None:
        """Fetch the remote's branch and tags (moved tags included).

        Args:
            reset: also reset the branch and working tree to the remote's (writers do; readers
                only need the refs).
        """
        if not self.remote_url:
            return
        self.git("fetch", "--quiet", "--prune", "--prune-tags", "--force", "--tags", "origin")
        self._fetched = True
        if reset and self._has_ref(f"refs/remotes/origin/{self.branch}"):
            self.git("checkout", "--quiet", "-B", self.branch, f"origin/{self.branch}")
            self.git("reset", "--quiet", "--hard", f"origin/{self.branch}")

    def _has_ref(self, ref: str) -> bool:
        try:
            self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except DataRepoError:
            return False
        return True

    def _initialise(self) -> None:
        """Turn an empty git repository into a DVC repository with one initial commit."""
        assert self.workdir is not None
        dvc_store.init(self.workdir)
        (self.workdir / "README.md").write_text(_README)
        self.git("add", "--all")
        self.git("commit", "--quiet", "-m", "Initialise the BridgeAI data repository")

    # -- reading ------------------------------------------------------------------------------
    def version_tags(self) -> list[str]:
        """Every ``data-vX.Y.Z`` tag, oldest version first."""
        names = self._git_text("tag", "--list", "data-v*").split()
        versions = [(parse_version(n), n) for n in names]
        return [n for v, n in sorted((v, n) for v, n in versions if v is not None)]

    def tag_commit(self, tag: str) -> str | None:
        """The commit a tag points at, or None when the tag does not exist."""
        try:
            return self._git_text("rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
        except DataRepoError:
            return None

    def resolve(self, tag: str) -> tuple[str, str]:
        """``(concrete data-vX.Y.Z tag, commit)`` for a version or moving tag.

        Moving tags are fetched from the remote first, so they are current.

        Raises:
            DataRepoError: the tag does not exist (the message lists the versions that do).
        """
        stale = self.remote_url and not self._fetched and not self.tag_commit(tag)
        if tag in MOVING_TAGS or stale:
            self.fetch(reset=False)
        commit = self.tag_commit(tag)
        if commit is None:
            known = self.version_tags()
            listed = ", ".join(known) if known else "none yet: run the data-ingestion flow"
            if tag == PREVIOUS and len(known) == 1:
                listed += f" ({PREVIOUS} appears once a second version is ingested)"
            raise DataRepoError(f"no data version {tag!r} in {self.location}; versions: {listed}")
        if parse_version(tag):
            return tag, commit
        candidates = [t for t in self.version_tags() if self.tag_commit(t) == commit]
        if not candidates:
            raise DataRepoError(f"{tag} points at {commit[:12]}, which has no data-vX.Y.Z tag")
        return candidates[-1], commit

    def read_files(self, rev: str, paths: list[str]) -> dict[str, bytes | None]:
        """The contents of ``paths`` at ``rev`` (None for a path missing there), in one git call."""
        return dict(zip(paths, self.read_objects([f"{rev}:{p}" for p in paths]), strict=True))

    def read_objects(self, specs: list[str]) -> list[bytes | None]:
        """The contents of ``rev:path`` specs (None when missing), in one ``git cat-file``."""
        if not specs:
            return []
        out = self.git("cat-file", "--batch", input="".join(f"{s}\n" for s in specs).encode())
        result: list[bytes | None] = []
        pos = 0
        for _ in specs:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if header[-1] == b"missing":
                result.append(None)
                continue
            size = int(header[2])
            result.append(out[pos : pos + size])
            pos += size + 1
        return result

    # -- DVC ------------------------------------------------------------------------------------
    def stage(
        self, splits: Mapping[str, Any], metadata: Mapping[str, Any], remote: Mapping[str, str]
    ) -> dict[str, str]:
        """Write the splits as Parquet and ``dataset.json``, and ``dvc add`` the splits.

        Args:
            splits: split name -> polars DataFrame.
            metadata: the content of ``dataset.json``.
            remote: the DVC remote's non-secret settings (recorded in ``.dvc/config``).

        Returns:
            split name -> DVC md5 of its Parquet file.
        """
        assert self.workdir is not None
        (self.workdir / DATA_DIR).mkdir(exist_ok=True)
        targets = []
        for name, frame in splits.items():
            path = self.workdir / split_path(name)
            frame.write_parquet(path)
            targets.append(path)
        (self.workdir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        md5 = dvc_store.add(self.workdir, targets, remote)
        return dict(zip(splits, md5, strict=True))

    def push_data(self, remote_config: Mapping[str, Any]) -> int:
        """``dvc push`` the working tree's data; return how many files were uploaded.

        Raises:
            DataRepoError: the remote is unreachable or refused the upload.
        """
        assert self.workdir is not None
        return dvc_store.push(self.workdir, remote_config)

    def read_data(self, rev: str, path: str, remote_config: Mapping[str, Any]) -> bytes:
        """The bytes of a DVC-tracked ``path`` at ``rev``, from the local cache or the remote.

        Raises:
            DataRepoError: the remote is unreachable, or does not hold the data.
        """
        assert self.workdir is not None
        return dvc_store.read(self.workdir, rev, path, remote_config)

    # -- writing ------------------------------------------------------------------------------
    def head(self) -> str:
        """The commit the branch points at."""
        return self._git_text("rev-parse", "HEAD")

    def commit_version(self, tag: str, message: str) -> str:
        """Commit the staged version, tag it, move ``data-latest``/``data-previous``, push.

        All or nothing: when the push to the remote is rejected or fails, the local commit and
        tags are rolled back, so the version does not exist anywhere.

        Returns:
            The new commit.

        Raises:
            DataRepoError: git failed (``transient`` says whether a retry may help), or the tag
                already exists.
        """
        if self.tag_commit(tag):
            raise DataRepoError(f"{tag} already exists in {self.location}")
        before = {"HEAD": self.head(), **{t: self.tag_commit(t) for t in MOVING_TAGS}}
        paths = [METADATA_FILE, ".dvc/config", DATA_DIR]
        try:
            self.git("add", "--all", "--", *paths)
            self.git("commit", "--quiet", "-m", message, "--", *paths)
            commit = self.head()
            self.git("tag", "--annotate", "-m", message, tag, commit)
            if before[LATEST]:
                self.git("tag", "--force", PREVIOUS, str(before[LATEST]))
            self.git("tag", "--force", LATEST, commit)
            if self.remote_url:
                refspecs = [
                    f"refs/heads/{self.branch}:refs/heads/{self.branch}",
                    f"refs/tags/{tag}:refs/tags/{tag}",
                    f"+refs/tags/{LATEST}:refs/tags/{LATEST}",
                ]
                if before[LATEST]:
                    refspecs.append(f"+refs/tags/{PREVIOUS}:refs/tags/{PREVIOUS}")
                self.git("push", "--quiet", "--atomic", "origin", *refspecs)
        except DataRepoError as exc:
            self._roll_back(tag, before)
            if (
                "rejected" in str(exc)
                or "non-fast-forward" in str(exc)
                or "fetch first" in str(exc)
            ):
                raise DataRepoError(
                    f"{self.location} changed while this ingestion ran (another ingestion pushed "
                    f"a version first); nothing was kept: run the ingestion again",
                    # Not for a task retry: only a new run syncs and picks the next number.
                    transient=False,
                ) from exc
            raise
        return commit

    def _roll_back(self, tag: str, before: Mapping[str, str | None]) -> None:
        with contextlib.suppress(DataRepoError):
            self.git("tag", "--delete", tag)
        for moving in MOVING_TAGS:
            with contextlib.suppress(DataRepoError):
                if before[moving]:
                    self.git("tag", "--force", moving, str(before[moving]))
                else:
                    self.git("tag", "--delete", moving)
        with contextlib.suppress(DataRepoError):
            self.git("reset", "--quiet", "--soft", str(before["HEAD"]))

    def discard(self) -> None:
        """Drop uncommitted leftovers of a failed ingestion (the committed versions are kept)."""
        assert self.workdir is not None
        if not self.exists():
            return
        with contextlib.suppress(DataRepoError):
            self.git("reset", "--quiet", "--hard", "HEAD")
            # Files no commit knows yet (the first version's pointers, Parquet and record).
            self.git("clean", "-d", "-x", "--quiet", "--force", "--", DATA_DIR, METADATA_FILE)

    def remove(self) -> None:
        """Delete the working clone (only sensible with a remote: it is then only a cache)."""
        assert self.workdir is not None
        shutil.rmtree(self.workdir, ignore_errors=True)


_README = """# BridgeAI data repository

Written by the `data-ingestion` flow; do not edit by hand. Each data version is one commit tagged
`data-vX.Y.Z`, with `data-latest` / `data-previous` on the two newest versions.

- `data/{train,val,test}.parquet.dvc` - DVC pointers (md5, size) to the splits; the bytes are in
  the DVC remote named in `.dvc/config` (credentials are never committed).
- `dataset.json` - rows per split, source, content checksum, split parameters, column summary.

Read a split: `from bridgeai import load_split; load_split("data-latest", "train")`, or
`git checkout data-v1.0.0 && dvc pull` with the remote's credentials in the environment.
"""
