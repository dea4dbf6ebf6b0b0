"""``data_ingestion`` on malformed CSVs: a clear validation error, bounded memory, no version.

BOM and CRLF files holding valid data are not errors: they are read as the plain file (the same
content checksum, so the same version). Everything else is refused with a message saying what
is wrong and where, before a single tag or commit is made. The two huge inputs (a million
columns, 1 GB) are refused from bounded reads; a child process measures the peak memory.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from blocks import DataRepository, ObjectStorage
from bridgeai.testing.synthetic import housing_frame
from flows.ingest import data_ingestion
from tests.support.ingest import commit_count, tags

pytestmark = [
    pytest.mark.usefixtures("prefect_harness"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dvc.*"),
]


def _plain() -> bytes:
    return housing_frame(60, seed=81).write_csv().encode()


def _lines() -> list[str]:
    return _plain().decode().rstrip("\n").split("\n")


def _extra_field() -> bytes:
    lines = _lines()
    lines[3] = lines[3].replace(",", ",semi, furnished,", 1)  # an unquoted comma in a value
    return ("\n".join(lines) + "\n").encode()


def _latin1() -> bytes:
    lines = _lines()
    header = lines[0].split(",")
    row = lines[4].split(",")
    row[header.index("furnishingstatus")] = "möbliert"
    lines[4] = ",".join(row)
    return ("\n".join(lines) + "\n").encode("latin-1")


def _quoted_comma_number() -> bytes:
    lines = _lines()
    header = lines[0].split(",")
    row = lines[2].split(",")
    row[header.index("area")] = '"7,420"'  # a thousands separator, quoted: one field, not a number
    lines[2] = ",".join(row)
    return ("\n".join(lines) + "\n").encode()


def _duplicated_header() -> bytes:
    lines = _lines()
    return ("\n".join([lines[0] + ",Price"] + [f"{line},1" for line in lines[1:]]) + "\n").encode()


MALFORMED: dict[str, tuple[Any, str]] = {
    "empty file": (lambda: b"", "is empty: no header, no rows"),
    "header only": (lambda: (_lines()[0] + "\n").encode(), "has a header but no rows"),
    "duplicated header": (_duplicated_header, "price: appears more than once in the header"),
    "non-UTF-8 (Latin-1)": (_latin1, "is not UTF-8 text: line 5 has the byte 0xf6"),
    "unquoted comma in a value": (_extra_field, "line 4 has 15 fields but the header has 13"),
    "quoted comma in a number": (_quoted_comma_number, "area: 1 row(s) not a number"),
    "BOM on a bad file": (
        lambda: b"\xef\xbb\xbf" + _duplicated_header(),
        "price: appears more than once in the header",
    ),
    "CRLF on a bad file": (
        lambda: _latin1().replace(b"\n", b"\r\n"),
        "is not UTF-8 text: line 5 has the byte 0xf6",
    ),
    "a million columns": (
        lambda: (",".join(f"c{i}" for i in range(1_000_000)) + "\n1\n").encode(),
        "has a header line longer than 1 MB",
    ),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One data repository with data-v1.0.0, shared: a refused file must leave it unchanged."""
    tmp_path = tmp_path_factory.mktemp("malformed")
    suffix = secrets.token_hex(4)
    names = {"storage_block": f"malformed-s-{suffix}", "repository_block": f"malformed-r-{suffix}"}
    ObjectStorage(local_root=str(tmp_path / "storage")).save(names["storage_block"])
    DataRepository(workdir=str(tmp_path / "data-repo")).save(names["repository_block"])
    good = tmp_path / "good.csv"
    good.write_bytes(_plain())
    first = data_ingestion(source=str(good), **names)
    assert first.tag == "data-v1.0.0"
    return {"names": names, "workdir": tmp_path / "data-repo", "first": first}


def _refused(repo: dict[str, Any], path: Path, expected: str) -> str:
    workdir = repo["workdir"]
    commits, refs = commit_count(workdir), tags(workdir)
    state = data_ingestion(source=str(path), return_state=True, **repo["names"])
    assert state.is_failed(), path.name
    with pytest.raises(ValueError) as caught:
        state.result()
    message = str(caught.value)
    assert expected in message and "nothing was versioned" in message, message
    assert "Traceback" not in message
    assert commit_count(workdir) == commits and tags(workdir) == refs
    return message


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_csv_is_refused_clearly_and_versions_nothing(
    case: str, repo: dict[str, Any], tmp_path: Path
) -> None:
    make, expected = MALFORMED[case]
    path = tmp_path / "bad.csv"
    path.write_bytes(make())
    _refused(repo, path, expected)


@pytest.mark.parametrize(
    "encode",
    [lambda b: b"\xef\xbb\xbf" + b, lambda b: b.replace(b"\n", b"\r\n")],
    ids=["BOM", "CRLF"],
)
def test_bom_and_crlf_are_read_as_the_plain_file(encode, repo: dict[str, Any], tmp_path) -> None:
    path = tmp_path / "encoded.csv"
    path.write_bytes(encode(_plain()))
    again = data_ingestion(source=str(path), **repo["names"])
    assert (again.tag, again.created) == ("data-v1.0.0", False)  # same content, same version
    assert again.checksum == repo["first"].checksum


# -- a 1 GB file and a million columns: refused from bounded reads ------------------------------
_CHILD = """
import json, resource, sys
from pathlib import Path
from bridgeai.data import validation
try:
    validation.read_csv(Path(sys.argv[1]))
    outcome = "read"
except validation.ValidationError as exc:
    outcome = str(exc)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"outcome": outcome, "peak_mb": peak_mb}))
"""


def _read_in_child(path: Path) -> dict[str, Any]:
    baseline = subprocess.run(
        [sys.executable, "-c", "import resource, polars, bridgeai.data.validation;"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    doc["baseline_mb"] = float(baseline.stdout.strip())
    return doc


@pytest.mark.slow
def test_a_1_gb_file_is_refused_without_being_loaded(repo: dict[str, Any], tmp_path: Path):
    path = tmp_path / "huge.csv"
    rows = b"\n".join(_plain().split(b"\n")[1:]).rstrip(b"\n") + b"\n"
    with open(path, "wb") as handle:
        handle.write(_plain().split(b"\n")[0] + b"\n")
        while handle.tell() < 2**30:
            handle.write(rows * 200)
    assert path.stat().st_size >= 2**30
    try:
        child = _read_in_child(path)
        assert "larger than the 512 MB a source may be" in child["outcome"]
        # Refused from its size: the reader's memory is the interpreter's and polars', + < 64 MB.
        assert child["peak_mb"] < child["baseline_mb"] + 64, child
        _refused(repo, path, "is 1,024 MB, larger than the 512 MB a source may be")
    finally:
        path.unlink()


def test_a_million_columns_are_refused_from_a_bounded_read(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_bytes(MALFORMED["a million columns"][0]())
    child = _read_in_child(path)
    assert "has a header line longer than 1 MB" in child["outcome"]
    assert child["peak_mb"] < child["baseline_mb"] + 64, child
